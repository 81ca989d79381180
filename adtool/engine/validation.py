"""Cheap per-epoch validation: compute what the checkpoint and early-stop rules monitor.

Validation after an epoch exists to pick the best checkpoint and to stop early; both read
one or two flat keys (``image_AUROC`` by default). :class:`AnomalyValLoop` asks the
registered hooks which keys they monitor (``CheckpointHook(save_best=...)``,
``EarlyStoppingHook(monitor=...)``), adds the config's ``extra_metrics``, and has the
evaluator's :class:`~adtool.evaluation.AnomalyMetric` compute only those: no AUPRO,
per-defect table, thresholds or plots, and, when no ``pixel_*`` key is wanted, no map is
copied or kept (the model's ``predict_maps`` is off while it runs). The full report still
runs once at test (``TestLoop``), so ``results.json`` is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import ValLoop

from adtool.errors import ConfigError
from adtool.registry import LOOPS

#: What validation computes when no hook monitors a key of the anomaly metric.
DEFAULT_KEYS = ("image_AUROC",)


def monitored_keys(hooks: Sequence, known: Sequence[str]) -> list[str]:
    """Metric keys the hooks read from validation, in hook order, among ``known``.

    ``CheckpointHook`` keeps them in ``save_best`` / ``key_indicators`` (``'auto'``
    means the first key the metric returns, ``image_AUROC``), ``EarlyStoppingHook`` in
    ``monitor``. Keys not in ``known`` (the metric's ``METRIC_KEYS``; another metric's or
    a loss) are left out.
    """
    keys: list[str] = []
    for hook in hooks:
        best = getattr(hook, "key_indicators", None) or getattr(hook, "save_best", None)
        found = [best] if isinstance(best, str) else list(best or [])
        monitor = getattr(hook, "monitor", None)
        if isinstance(monitor, str):
            found.append(monitor)
        for key in found:
            key = DEFAULT_KEYS[0] if key == "auto" else key.split("/")[-1]
            if key in known and key not in keys:
                keys.append(key)
    return keys


@LOOPS.register_module()
class AnomalyValLoop(ValLoop):
    """mmengine's ``ValLoop`` computing only the monitored metrics.

    Args:
        runner: The runner.
        dataloader: The validation dataloader (or its config).
        evaluator: The validation evaluator (or its config).
        fp16: mmengine's. Defaults to False.
        metrics: ``'monitored'``: the keys the hooks monitor (see :func:`monitored_keys`;
            ``image_AUROC`` when none), plus ``extra_metrics``; ``'all'``: the full report
            every validation (the behaviour before this loop). Defaults to 'monitored'.
        extra_metrics: Keys to compute besides the monitored ones (e.g.
            ``['pixel_AUROC']`` to log it every epoch). Defaults to ().
    """

    def __init__(
        self,
        runner,
        dataloader,
        evaluator,
        fp16: bool = False,
        metrics: str = "monitored",
        extra_metrics: Sequence[str] = (),
    ) -> None:
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        if metrics not in ("monitored", "all"):
            raise ConfigError(
                f"val_cfg.metrics={metrics!r} is not a choice; use 'monitored' (only what the "
                "checkpoint/early-stop rules read) or 'all' (the full report every validation)"
            )
        self.metrics = metrics
        self.extra_metrics = (
            [extra_metrics] if isinstance(extra_metrics, str) else list(extra_metrics)
        )
        self._announced = False

    def selected_keys(self, known: Sequence[str]) -> list[str] | None:
        """The keys this validation computes, or None for the full report."""
        if self.metrics == "all":
            return None
        unknown = [k for k in self.extra_metrics if k not in known]
        if unknown:
            raise ConfigError(
                f"val_cfg.extra_metrics {unknown} are not metrics of the validation "
                f"evaluator; choose from {list(known)}"
            )
        keys = monitored_keys(self.runner.hooks, known) or list(DEFAULT_KEYS)
        return keys + [k for k in self.extra_metrics if k not in keys]

    def run(self) -> dict:
        # Metrics that can compute a subset (AnomalyMetric) say which keys they know.
        cheap = [m for m in self.evaluator.metrics if hasattr(m, "set_keys")]
        known = [k for m in cheap for k in m.METRIC_KEYS]
        keys = self.selected_keys(known) if cheap else None
        for metric in cheap:
            metric.set_keys(keys)
        model = (
            self.runner.model.module if is_model_wrapper(self.runner.model) else self.runner.model
        )
        needs_maps = any(m.needs_maps for m in cheap) or len(cheap) < len(self.evaluator.metrics)
        previous = getattr(model, "predict_maps", None)
        if previous is not None:
            model.predict_maps = needs_maps
        if not self._announced and cheap:
            self._announced = True
            what = "the full report" if keys is None else ", ".join(keys)
            maps = "with" if needs_maps else "without"
            print_log(
                f"validation computes {what} ({maps} anomaly maps); the full report runs "
                "at test (val_cfg.metrics='all' validates with it)",
                logger="current",
            )
        try:
            return super().run()
        finally:
            if previous is not None:
                model.predict_maps = previous
