"""Export a trained model to ONNX: python tools/export.py CONFIG CHECKPOINT --format onnx.

One graph from a raw uint8 (N, 3, H, W) image to raw and normalised score, anomaly map and
label; run it with tools/infer.py --backend onnxruntime. See `--help`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adtool.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["export", *sys.argv[1:]], prog_name="tools/export.py")
