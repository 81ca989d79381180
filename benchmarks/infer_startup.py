"""Wall time of ``tools/infer.py`` on one image with a PatchCore checkpoint, and its imports.

    python benchmarks/infer_startup.py [--repeats 3] [--work DIR] [--threads 1]

Trains ``patchcore_effnetlite0_sample`` on the generated sample data (category ``disk``,
real bundled EfficientNet-Lite0 weights) once into ``--work`` (reused when its checkpoint
exists), then runs ``tools/infer.py`` on one test image in a fresh process ``--repeats``
times and prints each run's wall, user and system seconds (the whole process: interpreter
start, imports, model build, checkpoint load, scoring, CSV and overlay). One more run
under ``python -X importtime`` gives the import split: the total, the packages whose
modules took longest to import (self times summed per top-level package) and what remains
for the work itself. The load
average is printed with the numbers: on a shared machine wall time follows the load.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "patchcore_effnetlite0_sample"


def run(cmd: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, **kwargs)


def prepare(work: Path, env: dict) -> tuple[Path, Path]:
    """(checkpoint, one test image); trains on the sample data when needed."""
    data, ckpt = work / "data", work / "train" / "disk" / "epoch_1.pth"
    if not (data / "disk").is_dir():
        run([sys.executable, "tools/make_sample_data.py", "--out", str(data)], env, check=True)
    if not ckpt.is_file():
        cmd = [sys.executable, "tools/train.py", CONFIG, "--data-root", str(data)]
        cmd += ["--category", "disk", "--work-dir", str(work / "train"), "--no-report"]
        proc = run(cmd, env)
        if proc.returncode:
            sys.exit(f"training failed:\n{proc.stderr[-2000:]}")
    image = sorted((data / "disk" / "test" / "chip").glob("*.png"))[0]
    return ckpt, image


def timed_infer(ckpt: Path, image: Path, out: Path, env: dict, extra=()) -> tuple[float, ...]:
    """(wall, user, sys) seconds of one ``tools/infer.py`` process, and its stderr."""
    cmd = [sys.executable, *extra, "tools/infer.py", CONFIG, str(ckpt), str(image)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = run(cmd + ["--out", str(out)], env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        sys.exit(f"infer failed:\n{proc.stderr[-2000:]}")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, proc.stderr


def import_split(stderr: str, top: int = 12) -> tuple[float, list[tuple[str, float]]]:
    """(total import seconds, [(package, seconds)]) from ``-X importtime`` output.

    Each module's own (self) time is added to its top-level package, so a package's
    number is what importing its modules cost, whoever imported them.
    """
    packages: dict[str, float] = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line)
        if m:
            name = m.group(2).split(".")[0]
            packages[name] = packages.get(name, 0.0) + int(m.group(1)) / 1e6
    ranked = sorted(packages.items(), key=lambda kv: -kv[1])
    return sum(packages.values()), ranked[:top]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("/tmp/adtool_infer_startup"))
    args = parser.parse_args(argv)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    ckpt, image = prepare(args.work, env)
    timed_infer(ckpt, image, args.work / "out", env)  # warm the file cache
    print(f"tools/infer.py {CONFIG} on one image; {args.threads} thread(s)")
    walls = []
    for i in range(args.repeats):
        load = os.getloadavg()[0]
        wall, user, sys_s, _ = timed_infer(ckpt, image, args.work / "out", env)
        walls.append(wall)
        print(
            f"run {i + 1}: wall {wall:.2f} s, user {user:.2f} s, sys {sys_s:.2f} s "
            f"(load {load:.2f})"
        )
    print(f"best wall {min(walls):.2f} s")
    extra = ("-X", "importtime")
    wall, *_, stderr = timed_infer(ckpt, image, args.work / "out", env, extra=extra)
    total, packages = import_split(stderr)
    print(f"with -X importtime: wall {wall:.2f} s, imports {total:.2f} s, rest {wall - total:.2f}")
    for name, seconds in packages:
        print(f"  {name:40s} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
