"""Run an exported adtool ONNX file with ONNX Runtime or OpenVINO.

:class:`OnnxInferencer` (ONNX Runtime) and :class:`OpenVinoInferencer` (OpenVINO, which
reads the same ``.onnx`` file) read the graph and its metadata (``adtool`` in the file's
``metadata_props``, written by :func:`adtool.deploy.export_onnx`) and need nothing else:
no checkpoint, no model code. ``tools/infer.py --backend onnxruntime|openvino`` scores
folders with them through :func:`adtool.apis.inference.infer`, the same code as the
PyTorch path.
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


def _require(module: str, extra: str = "deploy") -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"{module} is not installed; install the {extra} extra: pip install -e '.[{extra}]'"
        )


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


class _GraphInferencer:
    """What both runtimes share: the metadata, input checks, batching of a fixed-batch
    graph. A subclass loads the file in :meth:`_load` (returning the metadata JSON) and
    runs one batch in :meth:`_run_batch`."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"ONNX file {self.path} not found; export one with tools/export.py")
        text = self._load(threads)
        if text is None:
            raise DataError(
                f"{self.path} has no adtool metadata; export the model with tools/export.py"
            )
        self.metadata: dict = json.loads(text)
        self.outputs: list[str] = list(self.metadata["outputs"])
        self.input_name: str = self.metadata["input_name"]
        self.input_size: tuple[int, int] = tuple(self.metadata["input_size"])
        self.input_dtype = np.dtype(self.metadata["input_dtype"])
        self.batch_size: int | None = self.metadata.get("batch_size")

    def _load(self, threads: int | None) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_batch(self, batch: np.ndarray) -> list[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

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
            outs = self._run_batch(chunk)
            parts.append([o[: step - pad] for o in outs])
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(self.outputs)}


class OnnxInferencer(_GraphInferencer):
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
        _require("onnxruntime")
        self.providers = providers or ["CPUExecutionProvider"]
        super().__init__(path, threads)

    def _load(self, threads: int | None) -> str | None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime's error types
            raise DataError(f"{self.path} is not a loadable ONNX file ({_first_line(e)})") from None
        return self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)

    def _run_batch(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.outputs, {self.input_name: batch})


class OpenVinoInferencer(_GraphInferencer):
    """An exported anomaly model on OpenVINO (CPU by default): the same file, interface
    and outputs as :class:`OnnxInferencer`.

    OpenVINO reads the ``.onnx`` file itself (its ONNX front end keeps the file's
    ``metadata_props`` in the model's ``rt_info``). The inference precision is pinned to
    float32 (on CPUs with bfloat16 units OpenVINO would otherwise pick bf16 and the
    scores would drift from the PyTorch ones).

    Args:
        path: The ``.onnx`` file.
        threads: OpenVINO inference threads; None lets it choose. Defaults to None.
        device: OpenVINO device. Defaults to ``'CPU'``.

    Raises:
        ConfigError: when openvino is not installed.
        DataError: for a missing file or one not exported by adtool.
    """

    def __init__(
        self, path: str | os.PathLike, threads: int | None = None, device: str = "CPU"
    ) -> None:
        _require("openvino")
        self.device = device
        super().__init__(path, threads)

    def _load(self, threads: int | None) -> str | None:
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as e:  # noqa: BLE001 - OpenVINO's error types
            raise DataError(f"{self.path} is not a loadable ONNX file ({_first_line(e)})") from None
        key = ["framework", METADATA_KEY]
        if not model.has_rt_info(key):
            return None
        text = model.get_rt_info(key).astype(str)
        names = [sorted(o.get_names()) for o in model.outputs]
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = core.compile_model(model, self.device, config)
        except Exception as e:  # noqa: BLE001
            raise DataError(
                f"OpenVINO cannot compile {self.path} for {self.device} ({_first_line(e)})"
            ) from None
        # The compiled model's outputs, in the metadata's order (matched by name: OpenVINO
        # may add names of its own to an output port).
        wanted = json.loads(text)["outputs"]
        ports = []
        for name in wanted:
            index = next((i for i, n in enumerate(names) if name in n), None)
            if index is None:
                raise DataError(f"{self.path} has no output '{name}'; export it again")
            ports.append(self.compiled.outputs[index])
        self._ports = ports
        self.request = self.compiled.create_infer_request()
        return text

    def _run_batch(self, batch: np.ndarray) -> list[np.ndarray]:
        result = self.request.infer({0: batch})
        outs = [np.array(result[port], copy=True) for port in self._ports]
        for name, out in zip(self.outputs, outs):
            # OpenVINO 2026.4 shapes DFKDE's score as a scalar: refuse, never mislabel.
            if out.ndim == 0 or out.shape[0] != len(batch):
                raise DataError(
                    f"OpenVINO gives output '{name}' of {self.path.name} the shape "
                    f"{tuple(out.shape)} for a batch of {len(batch)}; run this model with "
                    "--backend onnxruntime"
                )
        return outs


#: Runtime name -> inferencer class (``tools/infer.py --backend``).
INFERENCERS: dict[str, type[_GraphInferencer]] = {
    "onnxruntime": OnnxInferencer,
    "openvino": OpenVinoInferencer,
}
