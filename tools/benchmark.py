"""Benchmark configs over categories: python tools/benchmark.py --configs A.py B.py [options].

Writes <work-dir>/benchmark.{md,csv,json} and benchmark_heatmap.png; see `--help`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adtool.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["benchmark", *sys.argv[1:]], prog_name="tools/benchmark.py")
