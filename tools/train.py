"""Fit or train a config, test it, write results: python tools/train.py CONFIG [options]."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adtool.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["train", *sys.argv[1:]], prog_name="tools/train.py")
