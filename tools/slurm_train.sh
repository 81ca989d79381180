#!/usr/bin/env bash
# Train (then test) CONFIG on a Slurm cluster, one task per GPU:
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options]
# e.g. GPUS=16 tools/slurm_train.sh gpu ad-bottle patchcore_wrn50_mvtec work_dirs/wrn50 \
#          --data-root data/mvtec --category bottle
# Environment: GPUS (tasks in all, 8), GPUS_PER_NODE (8), TASKS_PER_NODE (GPUS_PER_NODE),
# CPUS_PER_TASK (5), SRUN_ARGS (extra srun options), PYTHON (python), MASTER_PORT (29500).
# CPU-only nodes: GPUS_PER_NODE=0 (no --gres) and TASKS_PER_NODE=N.
set -euo pipefail
if [ "$#" -lt 4 ]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
TOOLS=$(cd "$(dirname "$0")" && pwd)
TASKS_PER_NODE=${TASKS_PER_NODE:-$GPUS_PER_NODE}
GRES=()
if [ "$GPUS_PER_NODE" -gt 0 ]; then
    GRES=(--gres="gpu:$GPUS_PER_NODE")
fi
if [ "$TASKS_PER_NODE" -lt 1 ]; then
    echo "set TASKS_PER_NODE (tasks per CPU-only node)" >&2
    exit 2
fi
# shellcheck disable=SC2086  # SRUN_ARGS is a list of options
PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${GRES[@]}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} \
    "${PYTHON:-python}" -u "$TOOLS/train.py" "$CONFIG" --work-dir "$WORK_DIR" \
    --launcher slurm "$@"
