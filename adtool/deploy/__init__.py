"""Deployment: ONNX export of a calibrated model and an ONNX Runtime inferencer.

``pip install -e ".[deploy]"`` installs onnx and onnxruntime. :func:`export_onnx` writes
one graph (normalisation -> model -> post-processor) with its metadata;
:class:`OnnxInferencer` runs it without PyTorch model code.
"""

from adtool.deploy.export import (
    METADATA_KEY,
    DeployGraph,
    check_exportable,
    export_blocker,
    export_onnx,
)
from adtool.deploy.inferencer import OnnxInferencer

__all__ = [
    "METADATA_KEY",
    "DeployGraph",
    "OnnxInferencer",
    "check_exportable",
    "export_blocker",
    "export_onnx",
]
