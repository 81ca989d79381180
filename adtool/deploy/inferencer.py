"""Run an exported adtool ONNX file with ONNX Runtime.

:class:`OnnxInferencer` reads the graph and its metadata (``adtool`` in the file's
``metadata_props``, written by :func:`adtool.deploy.export_onnx`) and needs nothing else:
no checkpoint, no model code. ``tools/infer.py --backend onnxruntime`` scores folders with
it through :func:`adtool.apis.inference.infer`, the same code as the PyTorch path.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
from mmengine.config import Config

from adtool.errors import ConfigError, DataError

METADATA_KEY = "adtool"


class OnnxInferencer:
    """An exported anomaly model on ONNX Runtime (CPU by default).

    Input: ``(N, 3, H, W)`` images on the 0-255 scale, a NumPy array or a torch tensor, in
    the graph's input size. A uint8 graph (the default export) takes uint8, and float
    0..255 arrays are rounded to the nearest integer and clipped (export with
    ``--input-dtype float32`` to keep fractional values); a float32 graph takes either.
    A fixed-batch graph runs any ``N``: the images go through in its batch size.

    Args:
        path: The ``.onnx`` file.
        threads: ONNX Runtime intra-op threads; None lets it choose. Defaults to None.
        providers: Execution providers. Defaults to ``['CPUExecutionProvider']``.

    Raises:
        ConfigError: when onnxruntime is not installed.
        DataError: for a missing file or one not exported by adtool.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        if importlib.util.find_spec("onnxruntime") is None:
            raise ConfigError(
                "onnxruntime is not installed; install the deploy extra: pip install -e '.[deploy]'"
            )
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"ONNX file {self.path} not found; export one with tools/export.py")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as e:  # noqa: BLE001 - onnxruntime's error types
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise DataError(f"{self.path} is not a loadable ONNX file ({first[:200]})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in props:
            raise DataError(
                f"{self.path} has no adtool metadata; export the model with tools/export.py"
            )
        self.metadata: dict = json.loads(props[METADATA_KEY])
        self.outputs: list[str] = list(self.metadata["outputs"])
        self.input_name: str = self.metadata["input_name"]
        self.input_size: tuple[int, int] = tuple(self.metadata["input_size"])
        self.input_dtype = np.dtype(self.metadata["input_dtype"])
        self.batch_size: int | None = self.metadata.get("batch_size")

    @property
    def has_maps(self) -> bool:
        """True when the graph outputs anomaly maps."""
        return "anomaly_map" in self.outputs

    @property
    def thresholds(self) -> dict | None:
        """The threshold record stored at export (as a checkpoint's), or None."""
        return self.metadata.get("thresholds")

    def config(self) -> Config:
        """The config the model was exported from (its test pipeline prepares images)."""
        return Config.fromstring(self.metadata["config"], file_format=".py")

    def _prepare(self, images) -> np.ndarray:
        if hasattr(images, "detach"):  # a torch tensor
            images = images.detach().cpu().numpy()
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] != 3:
            raise DataError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        if tuple(images.shape[-2:]) != self.input_size:
            h, w = self.input_size
            raise DataError(
                f"{self.path.name} takes {h}x{w} images, got {images.shape[-2]}x"
                f"{images.shape[-1]}; resize them (the config's test pipeline) or export "
                "with --input-size"
            )
        if self.input_dtype == np.uint8 and images.dtype != np.uint8:
            images = np.clip(np.rint(images), 0, 255)
        return np.ascontiguousarray(images.astype(self.input_dtype, copy=False))

    def run(self, images) -> dict[str, np.ndarray]:
        """Outputs of the graph for ``images``: name (see ``self.outputs``) -> array.

        ``score`` (N,), ``score_normalized`` (N,), ``label`` (N,) bool, ``anomaly_map``
        and ``anomaly_map_normalized`` (N, H, W), those the model has.
        """
        batch = self._prepare(images)
        n = len(batch)
        step = self.batch_size or n
        parts: list[list[np.ndarray]] = []
        for start in range(0, n, max(step, 1)):
            chunk = batch[start : start + step]
            pad = step - len(chunk)
            if pad:  # a fixed-batch graph: repeat the last image, drop its outputs
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            outs = self.session.run(self.outputs, {self.input_name: chunk})
            parts.append([o[: step - pad] for o in outs])
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(self.outputs)}
