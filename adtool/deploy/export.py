"""ONNX export of an anomaly model: one graph from raw image to calibrated outputs.

:class:`DeployGraph` wraps a built model so that the exported graph does what
``model.test_step`` does to a batch, and what a deployment needs after it:

1. the data preprocessor's normalisation (``(x - mean) / std``, channel flip if any),
2. ``model.outputs`` (``anomaly_outputs``, through the tiler when the config tiles),
3. the :class:`~adtool.models.postprocess.PostProcessor` (normalised scores and maps,
   the label at the chosen threshold), with its buffers folded into the graph.

The graph's input ``image`` is an ``(N, 3, H, W)`` tensor on the 0-255 scale, ``uint8``
by default (``input_dtype='float32'`` exports a float input instead, for pipelines that
resize in float). Its outputs, in order (the ones that cannot exist are left out):
``score`` (raw, N), ``score_normalized`` (N, [0, 1], the threshold at 0.5; when the model
holds normalisation statistics), ``label`` (N, bool; when it holds a chosen threshold),
``anomaly_map`` (N, H, W raw) and ``anomaly_map_normalized`` (when it holds map
statistics); image-only methods have no map output. Everything the deploy inferencer needs
(config, input size and dtype, mean/std, thresholds, output names) is stored as JSON in
the ONNX ``metadata_props`` under :data:`METADATA_KEY`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import warnings
from pathlib import Path

import torch
from mmengine.config import Config
from torch import nn

from adtool.errors import ConfigError
from adtool.fileio import atomic_write_bytes
from adtool.models.fast_inference import reference_inference
from adtool.models.postprocess import PostProcessor

#: Key of the JSON metadata in the ONNX file's ``metadata_props``.
METADATA_KEY = "adtool"
#: Version of the metadata layout.
METADATA_VERSION = 1
INPUT_NAME = "image"
INPUT_DTYPES = ("uint8", "float32")
DEFAULT_OPSET = 17


def export_blocker(model: nn.Module) -> str | None:
    """Why ``model`` cannot be exported (its class's ``export_blocker``), or None."""
    if getattr(type(model), "exportable", True):
        return None
    return getattr(type(model), "export_blocker", None) or "the method does not support export"


def _nested_models(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(label, module) of the anomaly models inside ``model`` (an ensemble's members),
    outermost first; the label is the member's name when the model lists
    ``member_names`` for its ``members``, else the module path."""
    from adtool.models.anomaly.base import BaseAnomalyModel

    names = list(getattr(model, "member_names", None) or [])
    found = []
    for path, module in model.named_modules():
        if not path or not isinstance(module, BaseAnomalyModel):
            continue
        if any(path.startswith(f"{p}.") for p, *_ in found):
            continue  # inside a nested model already listed (it checks its own)
        head, _, index = path.partition(".")
        label = path
        if head == "members" and index.isdigit() and int(index) < len(names):
            label = names[int(index)]
        found.append((path, module, label))
    return [(label, module) for _, module, label in found]


def check_exportable(model: nn.Module) -> None:
    """One line naming the model (or the member of an ensemble) and the reason when it
    cannot be exported.

    Raises:
        ConfigError: for a model whose class says ``exportable = False``, or one holding
            such a model (an ensemble member).
    """
    reason = export_blocker(model)
    if reason is not None:
        raise ConfigError(f"{type(model).__name__} cannot be exported to ONNX: {reason}")
    for label, member in _nested_models(model):
        reason = export_blocker(member)
        if reason is not None:
            raise ConfigError(
                f"{type(model).__name__} cannot be exported to ONNX: its member {label} "
                f"({type(member).__name__}) cannot: {reason}; leave that member out"
            )


@contextlib.contextmanager
def _export_modes(model: nn.Module):
    """``model``'s ``export_mode()`` and that of every anomaly model inside it (an
    ensemble's members: PatchCore's faiss search swapped for torch's, ...)."""
    with contextlib.ExitStack() as stack:
        for module in [model, *(m for _, m in _nested_models(model))]:
            stack.enter_context(getattr(module, "export_mode", contextlib.nullcontext)())
        yield


def _resize_matrix(n_in: int, n_out: int, align_corners: bool) -> torch.Tensor:
    """(n_out, n_in) matrix of PyTorch's antialiased bilinear resampling along one axis:
    the resampled identity (the resize is linear and separable)."""
    eye = torch.eye(n_in, dtype=torch.float64)[None, None]
    out = torch.nn.functional.interpolate(
        eye, size=(n_out, n_in), mode="bilinear", align_corners=align_corners, antialias=True
    )
    return out[0, 0].float()


def _antialiased_bilinear_symbolic(g, x, output_size, align_corners, *scales):
    """TorchScript-exporter symbolic of ``F.interpolate(..., 'bilinear', antialias=True)``
    (an ensemble resizing its input to a smaller member's size): two MatMuls by the
    constant resampling matrices, exact for the static spatial sizes a graph has."""
    from torch.onnx import symbolic_helper as sh

    sizes = sh._get_tensor_sizes(x) or []
    out = sh._maybe_get_const(output_size, "is")
    corners = bool(sh._maybe_get_const(align_corners, "b"))
    if len(sizes) != 4 or None in sizes[2:] or not isinstance(out, list | tuple):
        return sh._unimplemented("_upsample_bilinear2d_aa", "dynamic spatial size", x)
    rows = _resize_matrix(int(sizes[2]), int(out[0]), corners)  # (H', H)
    cols = _resize_matrix(int(sizes[3]), int(out[1]), corners).T.contiguous()  # (W, W')
    y = g.op("MatMul", g.op("Constant", value_t=rows), x)
    return g.op("MatMul", y, g.op("Constant", value_t=cols))


def _searchsorted_symbolic(g, table, x, out_int32, right, *rest):
    """TorchScript-exporter symbolic of ``torch.searchsorted`` on a 1-D sorted table (an
    ensemble's ``rank`` rule on maps): the count of table entries ``<= x`` (``right``) or
    ``< x``, one comparison per (value, entry) pair, since ONNX has no binary search."""
    from torch.onnx import symbolic_helper as sh

    if len(sh._get_tensor_sizes(table) or []) != 1:
        return sh._unimplemented("searchsorted", "a table of more than one dimension", table)
    side = sh._maybe_get_const(rest[0], "s") if rest and not sh._is_none(rest[0]) else None
    use_right = bool(sh._maybe_get_const(right, "b")) or side == "right"
    axis = g.op("Constant", value_t=torch.tensor([-1], dtype=torch.int64))
    column = g.op("Unsqueeze", x, axis)
    hit = g.op("LessOrEqual" if use_right else "Less", table, column)
    count = g.op("ReduceSum", g.op("Cast", hit, to_i=7), axis, keepdims_i=0)  # 7: int64
    if bool(sh._maybe_get_const(out_int32, "b")):
        return g.op("Cast", count, to_i=6)  # 6: int32
    return count


_SYMBOLICS = {
    "aten::_upsample_bilinear2d_aa": _antialiased_bilinear_symbolic,
    "aten::searchsorted": _searchsorted_symbolic,
}


@contextlib.contextmanager
def _export_symbolics(opset: int):
    """Symbolics this package adds to the TorchScript exporter while it runs (ops it has
    none for), removed afterwards."""
    for name, fn in _SYMBOLICS.items():
        torch.onnx.register_custom_op_symbolic(name, fn, opset)
    try:
        yield
    finally:
        for name in _SYMBOLICS:
            torch.onnx.unregister_custom_op_symbolic(name, opset)


class DeployGraph(nn.Module):
    """``model`` as one module from a raw image batch to its calibrated outputs.

    Args:
        model: A built anomaly model (``BaseAnomalyModel``), in eval mode.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        pre = model.data_preprocessor
        self.flip = bool(getattr(pre, "_channel_conversion", False))
        self.normalize = bool(getattr(pre, "_enable_normalize", False))
        if self.normalize:
            self.register_buffer("mean", pre.mean.detach().clone().float().view(1, -1, 1, 1))
            self.register_buffer("std", pre.std.detach().clone().float().view(1, -1, 1, 1))
        # The post-processor's buffers as Python numbers: constants of the graph (also
        # for torch.export, which would treat a buffer read by float() as data).
        post = model.postprocessor
        stats = [float(v) for v in post.score_stats]
        self.threshold = post.image_threshold
        self.pixel_threshold = float(post.pixel_threshold) if bool(post.pixel_known) else None
        self.score_range = tuple(stats[:2]) if post.has_normalization else None
        self.map_range = tuple(stats[2:]) if bool(post.stats_known[1]) else None
        self.has_label = self.threshold is not None
        self.has_score_norm = self.score_range is not None
        self.has_map_norm = self.map_range is not None

    def output_names(self, has_map: bool) -> list[str]:
        """Names of :meth:`forward`'s outputs, in order."""
        names = ["score"]
        if self.has_score_norm:
            names.append("score_normalized")
        if self.has_label:
            names.append("label")
        if has_map:
            names.append("anomaly_map")
            if self.has_map_norm:
                names.append("anomaly_map_normalized")
        return names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = image.float()
        if self.flip:
            x = x[:, [2, 1, 0], ...]
        if self.normalize:
            x = (x - self.mean) / self.std
        scores, maps = self.model.outputs(x)
        # PostProcessor's own rules (min-max around the threshold; score >= threshold).
        outs = [scores]
        if self.score_range is not None:
            outs.append(PostProcessor._min_max(scores, *self.score_range, self.threshold))
        if self.threshold is not None:
            outs.append(scores >= self.threshold)
        if maps is not None:
            outs.append(maps)
            if self.map_range is not None:
                outs.append(PostProcessor._min_max(maps, *self.map_range, self.pixel_threshold))
        return tuple(outs)


def pipeline_input_size(cfg: Config) -> tuple[int, int] | None:
    """(H, W) the test pipeline gives the model: its last ``Resize`` / ``CenterCrop`` size."""
    steps = ((cfg.get("test_dataloader") or {}).get("dataset") or {}).get("pipeline") or []
    size = None
    for step in steps:
        if isinstance(step, dict) and step.get("type") in ("Resize", "CenterCrop"):
            size = step.get("size", size)
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


def _require(module: str, extra: str = "deploy") -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"{module} is not installed; install the deploy extra: pip install -e '.[{extra}]'"
        )


#: Smallest float32 initializer (elements) stored as float16; smaller ones are not worth it.
FP16_MIN_ELEMENTS = 16


def to_float16(onnx_model):
    """Store the float32 weights as float16, computed in float32: each initializer of at
    least :data:`FP16_MIN_ELEMENTS` values that float16 can hold (finite, no overflow) is
    replaced by its float16 copy and a ``Cast`` back to float32, which ONNX Runtime and
    OpenVINO fold when they load the file. The file is about half the size; the
    arithmetic, inputs and outputs stay float32 (float16 arithmetic on a CPU is not faster
    and onnxconverter-common's conversion breaks the graph's uint8 input ``Cast``).

    Returns:
        The same model, changed in place.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = onnx_model.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            kept.append(init)
            continue
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if values.size < FP16_MIN_ELEMENTS or not np.isfinite(half).all():
            kept.append(init)
            continue
        stored = numpy_helper.from_array(half, f"{init.name}__fp16")
        kept.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return onnx_model


def export_onnx(
    model: nn.Module,
    cfg: Config,
    out: str | os.PathLike,
    *,
    input_size: int | tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    batch_size: int = 1,
    fp16: bool = False,
    input_dtype: str = "uint8",
    opset: int = DEFAULT_OPSET,
    thresholds: dict | None = None,
    config_name: str | None = None,
) -> dict:
    """Export ``model`` (built from ``cfg``) to one ONNX file; returns its metadata.

    Args:
        model: The anomaly model, with its weights and post-processor buffers.
        cfg: Its config (stored in the metadata: the deploy pipeline reads it).
        out: The ``.onnx`` file to write (atomically: temp file, then rename).
        input_size: (H, W) or one int of the graph's input. Defaults to the model's
            ``input_size``, else the test pipeline's last Resize/CenterCrop size.
        dynamic_batch: Leave the batch dimension free. Defaults to False (fixed at
            ``batch_size``).
        batch_size: The batch of a fixed-batch graph. Defaults to 1.
        fp16: Store the weights as float16 (half the file), computed in float32
            (:func:`to_float16`). Defaults to False.
        input_dtype: ``'uint8'`` or ``'float32'`` (0-255 scale either way). Defaults to
            ``'uint8'``.
        opset: ONNX opset. Defaults to 17.
        thresholds: The threshold record to store (``stored_thresholds``); defaults to
            the post-processor's.
        config_name: Name stored in the metadata. Defaults to the config's filename stem.

    Raises:
        ConfigError: for a model that cannot be exported (one line with the model and
            the reason), an input size the model was not built for, an unknown
            ``input_dtype``, or onnx missing.
    """
    _require("onnx")

    check_exportable(model)
    if input_dtype not in INPUT_DTYPES:
        raise ConfigError(f"unknown input dtype '{input_dtype}'; use one of {INPUT_DTYPES}")
    size = _resolve_size(model, cfg, input_size)
    model = model.cpu().eval()
    graph = DeployGraph(model).eval()
    dtype = torch.uint8 if input_dtype == "uint8" else torch.float32
    example = torch.randint(0, 256, (batch_size, 3, *size), dtype=torch.uint8).to(dtype)
    # The graph is the reference path: the folded channels-last copies and the pruned
    # k-NN of adtool/models/fast_inference.py live outside the module tree and would be
    # traced as constants (ONNX Runtime does its own folding).
    with reference_inference(), _export_modes(model), torch.no_grad():
        probe = graph(example)
    has_map = len(probe) > 1 + graph.has_score_norm + graph.has_label
    names = graph.output_names(has_map)
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}}
    args = dict(input_names=[INPUT_NAME], output_names=names, dynamic_axes=dynamic_axes)
    with warnings.catch_warnings(), reference_inference(), _export_modes(model), torch.no_grad():
        warnings.simplefilter("ignore")
        # The legacy (TorchScript) exporter first: it traces the FrEIA flows, kornia's blur
        # and the k-NN heads into small graphs. torch.export (dynamo) second, for the ops
        # only it maps (the antialiased resize of timm's ViT position embeddings).
        try:
            onnx_model, exporter = _export_torchscript(graph, example, opset, args), "torchscript"
        except Exception as first:  # noqa: BLE001 - the exporter's many error types
            try:
                onnx_model = _export_dynamo(graph, example, max(opset, 18), args)
                exporter = "dynamo"
            except Exception:  # noqa: BLE001
                line = (str(first).strip().splitlines() or [type(first).__name__])[0]
                raise ConfigError(
                    f"{type(model).__name__} could not be exported to ONNX ({line[:200]}); "
                    "mark the class exportable = False with a reason, or report it"
                ) from first
    if fp16:
        onnx_model = to_float16(onnx_model)
    pre = model.data_preprocessor
    post = model.postprocessor
    meta = {
        "version": METADATA_VERSION,
        "config_name": config_name or Path(cfg.filename or "config").stem,
        "model": type(model).__name__,
        "input_name": INPUT_NAME,
        "input_size": list(size),
        "input_dtype": input_dtype,
        "dynamic_batch": bool(dynamic_batch),
        "batch_size": None if dynamic_batch else int(batch_size),
        "mean": [float(v) for v in pre.mean.flatten()] if graph.normalize else None,
        "std": [float(v) for v in pre.std.flatten()] if graph.normalize else None,
        "bgr_to_rgb": graph.flip,
        "fp16": bool(fp16),
        "opset": _opset_of(onnx_model),
        "exporter": exporter,
        "outputs": names,
        "threshold_name": (post.thresholds() or {}).get("chosen"),
        "threshold_value": post.image_threshold,
        "pixel_threshold": (post.thresholds() or {}).get("pixel_threshold"),
        "thresholds": thresholds if thresholds is not None else post.thresholds(),
        "config": cfg.pretty_text,
    }
    del onnx_model.metadata_props[:]
    entry = onnx_model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, default=_jsonable)
    atomic_write_bytes(out, onnx_model.SerializeToString())
    return meta


def _jsonable(value):
    if hasattr(value, "tolist"):  # a tensor or NumPy scalar in a threshold record
        return value.tolist()
    return str(value)


def _export_torchscript(graph: nn.Module, example: torch.Tensor, opset: int, args: dict):
    import onnx

    buf = io.BytesIO()
    with _export_symbolics(opset):
        torch.onnx.export(
            graph,
            (example,),
            buf,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
            **args,
        )
    return onnx.load_from_string(buf.getvalue())


def _export_dynamo(graph: nn.Module, example: torch.Tensor, opset: int, args: dict):
    program = torch.onnx.export(
        graph, (example,), None, opset_version=opset, dynamo=True, verbose=False, **args
    )
    return program.model_proto


def _opset_of(onnx_model) -> int:
    return max(int(o.version) for o in onnx_model.opset_import if o.domain in ("", "ai.onnx"))


def _resolve_size(model: nn.Module, cfg: Config, input_size) -> tuple[int, int]:
    if isinstance(input_size, int):
        input_size = (input_size, input_size)
    built = getattr(model, "input_size", None)
    if isinstance(built, int):
        built = (built, built)
    built = tuple(int(s) for s in built) if built is not None else None
    size = tuple(input_size) if input_size else built or pipeline_input_size(cfg)
    if size is None:
        raise ConfigError(
            "the config's test pipeline has no Resize or CenterCrop size; pass --input-size N"
        )
    if built is not None and tuple(size) != built and model.tiler is None:
        raise ConfigError(
            f"{type(model).__name__} was built for {built[0]}x{built[1]} images, not "
            f"{size[0]}x{size[1]}; drop --input-size or set model.input_size={size[0]}"
        )
    return (int(size[0]), int(size[1]))


def read_metadata(path: str | os.PathLike) -> dict:
    """The adtool metadata of an exported file (without loading its weights into memory
    twice: onnx reads the protobuf once).

    Raises:
        DataError: for a missing file, or an ONNX file not exported by adtool.
    """
    from adtool.errors import DataError

    _require("onnx")
    import onnx

    path = Path(path)
    if not path.is_file():
        raise DataError(f"ONNX file {path} not found; export one with tools/export.py")
    try:
        onnx_model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf decode errors
        raise DataError(f"{path} is not a readable ONNX file ({type(e).__name__})") from None
    for entry in onnx_model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    raise DataError(f"{path} has no adtool metadata; export it with tools/export.py")


def export_checkpoint(
    config,
    checkpoint: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    fmt: str = "onnx",
    cfg_options=None,
    **kwargs,
) -> tuple[Path, dict]:
    """``tools/export.py``: build ``config``'s model with ``checkpoint`` and export it.

    Args:
        config: Config path, stem or model name, or a loaded ``Config``.
        checkpoint: A checkpoint written by training (its post-processor buffers give the
            thresholds and normalisation of the graph).
        out: The file to write. Defaults to the checkpoint's path with ``.onnx``.
        fmt: Export format; only ``'onnx'``. Defaults to ``'onnx'``.
        cfg_options: ``--cfg-options`` overrides. Defaults to None.
        **kwargs: :func:`export_onnx`'s keyword arguments (``input_size``,
            ``dynamic_batch``, ``fp16``, ``input_dtype``, ``opset``, ``batch_size``).

    Returns:
        (the file written, its metadata).

    Raises:
        ConfigError: for another format, a task config, or a model that cannot export.
        DataError: for a missing or foreign checkpoint.
    """
    from adtool.apis.checkpoints import load_model
    from adtool.apis.core import load_config
    from adtool.apis.thresholds import stored_thresholds

    if fmt != "onnx":
        raise ConfigError(f"unknown export format '{fmt}'; use --format onnx")
    cfg = config if isinstance(config, Config) else load_config(config, cfg_options)
    if cfg.get("task", "anomaly") != "anomaly":
        raise ConfigError(
            f"export is for anomaly models; this config's task is '{cfg.get('task')}'"
        )
    out = Path(out) if out is not None else Path(checkpoint).with_suffix(".onnx")
    model, loaded = load_model(cfg, checkpoint, "cpu")
    record, _ = stored_thresholds(model, loaded, checkpoint)
    name = Path(cfg.filename).stem if cfg.filename else None
    meta = export_onnx(model, cfg, out, thresholds=record, config_name=name, **kwargs)
    return out, meta
