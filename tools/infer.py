"""Score images with a trained model: python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_DIR --out D.

Writes D/predictions.csv (path, score, label at the threshold stored at test time) and an
anomaly-map overlay per image under D/maps/; see `--help`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adtool.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["infer", *sys.argv[1:]], prog_name="tools/infer.py")
