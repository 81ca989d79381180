"""Optimised test-time path: batch-norm folded into convolutions, channels-last layout.

A model in eval mode runs its CNN backbones through a folded copy built on the first
forward: every ``Conv2d`` whose output feeds only a ``BatchNorm2d`` gets the
normalisation folded into its weights (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`),
the batch-norm is replaced by what follows it (timm's ``BatchNormAct2d`` keeps its
activation), and the copy runs in channels-last memory format (oneDNN's fast kernels for
1x1 and depthwise convolutions on CPU). The registered module is never changed, so
training, ``state_dict`` keys and checkpoints are exactly as before; the copy is rebuilt
when any parameter or buffer changes (load, optimiser step, ``.to()``).

:func:`reference_inference` turns the optimised path off (the benchmark's reference
mode); so does ``model.inference_optimized = False`` on a :class:`BaseAnomalyModel`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_ENABLED: ContextVar[bool] = ContextVar("adtool_fast_inference", default=True)

#: Largest allowed |folded - original| relative to the largest |original| feature value
#: in the check run after folding; beyond it the copy is not used (one warning).
FOLD_TOLERANCE = 1e-4


def fast_inference_enabled() -> bool:
    """False inside :func:`reference_inference`."""
    return _ENABLED.get()


@contextlib.contextmanager
def reference_inference() -> Iterator[None]:
    """Run the reference (unoptimised) test path inside the block."""
    token = _ENABLED.set(False)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def _conv_bn_pairs(net: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv, bn) module names where the bn's input is the conv's output, in one forward."""
    produced: dict[int, str] = {}
    pairs: list[tuple[str, str]] = []
    hooks = []

    def after_conv(name):
        def hook(_module, _inputs, output):
            produced[id(output)] = name

        return hook

    def before_bn(name):
        def hook(_module, inputs):
            conv = produced.pop(id(inputs[0]), None)
            if conv is not None:
                pairs.append((conv, name))

        return hook

    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(after_conv(name)))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_pre_hook(before_bn(name)))
    try:
        with torch.no_grad():
            net(example)
    finally:
        for hook in hooks:
            hook.remove()
    # A conv feeding several batch-norms (or run twice) cannot be folded into each.
    convs = [c for c, _ in pairs]
    bns = [b for _, b in pairs]
    return [(c, b) for c, b in pairs if convs.count(c) == 1 and bns.count(b) == 1]


def _set_submodule(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, module)


def _bn_tail(bn: nn.Module) -> nn.Module:
    """What a batch-norm module runs after normalising (timm's ``BatchNormAct2d``)."""
    tail = [getattr(bn, n) for n in ("drop", "act") if isinstance(getattr(bn, n, None), nn.Module)]
    return nn.Sequential(*tail) if tail else nn.Identity()


def fold_batchnorm(net: nn.Module, example: torch.Tensor) -> tuple[nn.Module, int]:
    """A copy of ``net`` (eval) with each conv -> batch-norm pair folded into the conv.

    Pairs are found by running ``example`` once and matching each batch-norm's input
    tensor to the conv output it is (so execution order, not module order, decides).

    Returns:
        (folded copy in eval mode, number of folded pairs).
    """
    folded = copy.deepcopy(net).eval()
    pairs = _conv_bn_pairs(folded, example)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        _set_submodule(folded, conv_name, fuse_conv_bn_eval(conv, bn))
        _set_submodule(folded, bn_name, _bn_tail(bn))
    return folded, len(pairs)


def _flat(outputs) -> list[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return [t for o in outputs for t in _flat(o)]


def _state_key(net: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced or modified in place."""
    return tuple(
        (id(t), t._version, t.device, t.dtype) for t in (*net.parameters(), *net.buffers())
    )


class FoldedNetwork:
    """Lazily built folded, channels-last copy of a CNN, kept outside the module tree.

    Held in a plain attribute (not an ``nn.Module`` child), so it never appears in
    ``state_dict``, ``parameters()`` or ``.to()``; :meth:`get` rebuilds it when the
    original's tensors change.
    """

    def __init__(self) -> None:
        self._net: nn.Module | None = None
        self._key: tuple | None = None
        self._failed_key: tuple | None = None

    def clear(self) -> None:
        self._net = self._key = self._failed_key = None

    def get(self, net: nn.Module, example: torch.Tensor) -> nn.Module | None:
        """The folded copy for ``net``'s current weights, or None if it does not match."""
        key = _state_key(net)
        if key == self._key:
            return self._net
        if key == self._failed_key:
            return None
        self.clear()
        was_training = net.training
        net.eval()
        try:
            folded, _ = fold_batchnorm(net, example[:1])
            folded = folded.to(memory_format=torch.channels_last)
            with torch.no_grad():
                ref = _flat(net(example[:1]))
                got = _flat(folded(example[:1].contiguous(memory_format=torch.channels_last)))
        finally:
            net.train(was_training)
        scale = max(float(r.abs().max()) for r in ref) if ref else 1.0
        err = max((float((r - g).abs().max()) for r, g in zip(ref, got)), default=0.0)
        if len(ref) != len(got) or err > FOLD_TOLERANCE * max(scale, 1.0):
            logging.getLogger("adtool").warning(
                "folded %s differs from the original by %.3g; using the original",
                type(net).__name__,
                err,
            )
            self._failed_key = key
            return None
        self._net, self._key = folded, key
        return folded

    def __deepcopy__(self, memo):
        return FoldedNetwork()  # a copy rebuilds its own (its weights may diverge)

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()


def run_folded(cache: FoldedNetwork, net: nn.Module, x: torch.Tensor):
    """``net(x)`` through the folded channels-last copy; outputs back to contiguous."""
    folded = cache.get(net, x)
    if folded is None:
        return net(x)
    out = folded(x.contiguous(memory_format=torch.channels_last))
    if isinstance(out, torch.Tensor):
        return out.contiguous()
    return [o.contiguous() for o in out]


class FoldedNetworks:
    """One :class:`FoldedNetwork` per named part, for a model with several CNNs of its own.

    Named ``_folded`` on the model, so :meth:`BaseAnomalyModel.train` clears it like a
    backbone's; copies and pickles start empty.
    """

    def __init__(self) -> None:
        self._nets: dict[str, FoldedNetwork] = {}

    def clear(self) -> None:
        for net in self._nets.values():
            net.clear()

    def run(self, name: str, net: nn.Module, x: torch.Tensor):
        """``net(x)`` through the folded channels-last copy kept under ``name``."""
        return run_folded(self._nets.setdefault(name, FoldedNetwork()), net, x)

    def __deepcopy__(self, memo):
        return FoldedNetworks()

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.__init__()
