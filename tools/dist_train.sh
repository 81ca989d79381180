#!/usr/bin/env bash
# Train (then test) CONFIG with NPROC processes on this machine via torchrun:
#   tools/dist_train.sh CONFIG NPROC [tools/train.py options]
# e.g. tools/dist_train.sh stfpm_r18_mvtec 4 --data-root data/mvtec --category bottle
# One process per GPU (nccl); without CUDA the processes share the CPU (gloo).
# Environment: PORT (29500), NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1),
# PYTHON (python). With NNODES > 1, run this on every node with its NODE_RANK.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC [tools/train.py options]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
TOOLS=$(cd "$(dirname "$0")" && pwd)
PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$TOOLS/train.py" "$CONFIG" --launcher pytorch "$@"
