"""Ensemble the top-k models of a finished benchmark:
python tools/ensemble.py --from-benchmark D --top-k 3 [--rule mean|max|rank|weighted]
    [--categories a,b].

Writes D/ensemble_top<k>_<rule>.py, fits and tests it per category (results in
D/ensemble_top<k>_<rule>/<category>/) and adds it as one more row of D/benchmark.md; see `--help`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adtool.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["ensemble", *sys.argv[1:]], prog_name="tools/ensemble.py")
