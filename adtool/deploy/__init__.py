"""Deployment: ONNX export of a calibrated model and an ONNX Runtime inferencer.

``pip install -e ".[deploy]"`` installs onnx, onnxruntime and openvino. :func:`export_onnx`
writes one graph (normalisation -> model -> post-processor) with its metadata;
:class:`OnnxInferencer` (ONNX Runtime) and :class:`OpenVinoInferencer` (OpenVINO) run it
without PyTorch model code.
"""

from adtool.deploy.export import (
    METADATA_KEY,
    DeployGraph,
    check_exportable,
    export_blocker,
    export_onnx,
)
from adtool.deploy.inferencer import INFERENCERS, OnnxInferencer, OpenVinoInferencer

__all__ = [
    "METADATA_KEY",
    "DeployGraph",
    "INFERENCERS",
    "OnnxInferencer",
    "OpenVinoInferencer",
    "check_exportable",
    "export_blocker",
    "export_onnx",
]
