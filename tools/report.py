"""Write one self-contained report.html for a run: python tools/report.py WORK_DIR.

WORK_DIR is a category folder (results.json), a work dir of several categories, or a
tools/benchmark.py work dir (benchmark.json); see `--help`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adtool.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["report", *sys.argv[1:]], prog_name="tools/report.py")
