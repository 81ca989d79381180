"""PSNR and SSIM of a super-resolution model, against bicubic upscaling as the baseline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric

from adtool.evaluation.task_report import (
    fmt,
    format_table,
    plot_value_histogram,
    results_header,
    write_results_txt,
)
from adtool.registry import METRICS
from adtool.visualization.canvas import new_figure, save_figure

#: PSNR of identical images is infinite; per-image values are capped here (dB) so that
#: means stay finite and results.json stays valid JSON (1e-10 MSE on a [0, 1] range).
PSNR_CAP = 100.0


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) BT.601 luma in [16/255, 235/255]."""
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=img.dtype, device=img.device)
    return (16.0 + torch.einsum("nchw,c->nhw", img, weights))[:, None] / 255.0


def psnr_per_image(pred: torch.Tensor, target: torch.Tensor, cap: float = PSNR_CAP) -> torch.Tensor:
    """(N, C, H, W) images in [0, 1] -> (N,) PSNR in dB, capped at ``cap``."""
    # Imported here: torchmetrics imports transformers (seconds) when it is installed.
    from torchmetrics.functional.image import peak_signal_noise_ratio

    psnr = peak_signal_noise_ratio(
        pred.double(), target.double(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    return psnr.clamp(max=cap).float()


def ssim_per_image(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images in [0, 1] -> (N,) SSIM (11x11 Gaussian window, sigma 1.5)."""
    # Imported here: torchmetrics imports transformers (seconds) when it is installed.
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(
        pred.float(), target.float(), data_range=1.0, reduction="none"
    ).reshape(-1)


def bicubic_upscale(lr: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, 3, h, w) uint8 or [0, 1] float -> (N, 3, *size) bicubic upscale in [0, 1]."""
    lr = lr.float() / 255.0 if not lr.is_floating_point() else lr.float()
    up = F.interpolate(lr, size=tuple(size), mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)


@METRICS.register_module()
class SuperResolutionMetric(BaseMetric):
    """Mean per-image PSNR and SSIM (torchmetrics), and the same for bicubic upscaling.

    ``compute_metrics`` returns ``PSNR`` (dB, per-image values capped at
    :data:`PSNR_CAP`) and ``SSIM``. ``last_report["thresholds"]`` holds the per-image
    PSNR distribution (quantiles), the bicubic baseline, the gain over it and the worst
    images. Computed on RGB by default; SR papers report the Y channel with ``scale``
    border pixels cropped (``y_channel=True, crop_border=2`` for x2).

    Args:
        crop_border: Pixels removed on each side before scoring. Defaults to 0.
        y_channel: Score the BT.601 luma instead of RGB. Defaults to False.
        n_pictures: Side-by-side pictures (bicubic | model | ground truth) kept.
            Defaults to 6.
        collect_device: mmengine's gather device. Defaults to ``'cpu'``.
        prefix: Logger key prefix. Defaults to None.
    """

    # Logged keys are the contract's names as they are (PSNR, SSIM; no prefix).
    default_prefix = ""

    def __init__(
        self,
        crop_border: int = 0,
        y_channel: bool = False,
        n_pictures: int = 6,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.crop_border = int(crop_border)
        self.y_channel = bool(y_channel)
        self.n_pictures = int(n_pictures)
        self.last_report: dict = {}
        self.last_arrays: dict = {}
        self._pictures: list[dict] = []

    def _prepare(self, img: torch.Tensor) -> torch.Tensor:
        if self.y_channel:
            img = rgb_to_y(img)
        b = self.crop_border
        if b:
            img = img[..., b:-b, b:-b]
        return img

    def scores(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (PSNR, SSIM) of (N, 3, H, W) images in [0, 1] after crop / Y."""
        pred, target = self._prepare(pred), self._prepare(target)
        return psnr_per_image(pred, target), ssim_per_image(pred, target)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        inputs = data_batch["inputs"] if isinstance(data_batch, dict) else None
        for i, sample in enumerate(data_samples):
            pred = torch.as_tensor(sample["pred_img"]).float().cpu().clamp(0, 1)[None]
            gt = torch.as_tensor(sample["gt_img"]).float().cpu()[None]
            if pred.shape != gt.shape:
                raise ValueError(
                    f"prediction {tuple(pred.shape[1:])} and HR target {tuple(gt.shape[1:])} "
                    f"differ for {sample.get('img_path')}"
                )
            entry = {"img_path": sample.get("img_path")}
            psnr, ssim = self.scores(pred, gt)
            entry.update(psnr=float(psnr[0]), ssim=float(ssim[0]))
            bicubic = None
            if inputs is not None:
                lr = torch.as_tensor(inputs[i])[None]
                bicubic = bicubic_upscale(lr, gt.shape[-2:])
                b_psnr, b_ssim = self.scores(bicubic, gt)
                entry.update(bicubic_psnr=float(b_psnr[0]), bicubic_ssim=float(b_ssim[0]))
            self.results.append(entry)
            if len(self._pictures) < self.n_pictures:
                self._pictures.append(
                    {
                        **entry,
                        "model": _to_uint8(pred[0]),
                        "gt": _to_uint8(gt[0]),
                        "bicubic": None if bicubic is None else _to_uint8(bicubic[0]),
                    }
                )

    def compute_metrics(self, results: list) -> dict:
        psnr = np.array([r["psnr"] for r in results], np.float64)
        ssim = np.array([r["ssim"] for r in results], np.float64)
        metrics = {"PSNR": float(psnr.mean()), "SSIM": float(ssim.mean())}
        thresholds: dict = {
            "psnr_cap_dB": PSNR_CAP,
            "scored_on": ("Y" if self.y_channel else "RGB")
            + (f", {self.crop_border} px border cropped" if self.crop_border else ""),
            "psnr_per_image": _distribution(psnr),
        }
        if all("bicubic_psnr" in r for r in results):
            b_psnr = np.array([r["bicubic_psnr"] for r in results], np.float64)
            b_ssim = np.array([r["bicubic_ssim"] for r in results], np.float64)
            thresholds["bicubic"] = {"PSNR": float(b_psnr.mean()), "SSIM": float(b_ssim.mean())}
            thresholds["gain_over_bicubic_dB"] = float(psnr.mean() - b_psnr.mean())
            thresholds["fraction_better_than_bicubic"] = float((psnr > b_psnr).mean())
        order = np.argsort(psnr)[:5]
        thresholds["worst_images"] = [
            {
                "img_path": results[i]["img_path"],
                "PSNR": float(psnr[i]),
                "bicubic_PSNR": results[i].get("bicubic_psnr"),
            }
            for i in order
        ]
        self.last_report = {"metrics": metrics, "thresholds": thresholds, "n_test": len(results)}
        self.last_arrays = {
            "psnr": psnr,
            "ssim": ssim,
            "bicubic_psnr": np.array([r.get("bicubic_psnr", np.nan) for r in results]),
            "img_paths": [r["img_path"] for r in results],
            "pictures": self._pictures,
        }
        self._pictures = []
        return dict(metrics)

    def write_outputs(self, work_dir: Path, results: dict) -> None:
        """results.txt, psnr_histogram.png and pictures/<stem>.png (bicubic | model | GT)."""
        work_dir = Path(work_dir)
        th = results.get("thresholds") or self.last_report.get("thresholds", {})
        lines = results_header(results)
        lines.append(
            f"  (scored on {th.get('scored_on')}; per-image PSNR capped at {PSNR_CAP:g} dB)"
        )
        if "bicubic" in th:
            lines += [
                "",
                f"bicubic baseline: PSNR {fmt(th['bicubic']['PSNR'])}  SSIM "
                f"{fmt(th['bicubic']['SSIM'])}",
                f"gain over bicubic: {fmt(th['gain_over_bicubic_dB'], 3)} dB; model better on "
                f"{fmt(100 * th['fraction_better_than_bicubic'], 1)}% of images",
            ]
        dist = th["psnr_per_image"]
        lines += ["", "per-image PSNR distribution (dB):"]
        lines += format_table(list(dist), [list(dist.values())])
        lines += ["", "worst images:"]
        lines += format_table(
            ["image", "PSNR", "bicubic PSNR"],
            [[r["img_path"], r["PSNR"], r["bicubic_PSNR"]] for r in th["worst_images"]],
        )
        write_results_txt(work_dir, lines)
        arrays = self.last_arrays
        series = {"model": arrays.get("psnr", [])}
        if np.isfinite(arrays.get("bicubic_psnr", np.array([np.nan]))).any():
            series["bicubic"] = arrays["bicubic_psnr"]
        plot_value_histogram(series, work_dir / "psnr_histogram.png", "PSNR (dB)", "Per-image PSNR")
        for picture in arrays.get("pictures", []):
            stem = Path(str(picture["img_path"])).stem
            _side_by_side(picture, work_dir / "pictures" / f"{stem}.png")


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    return (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)


def _distribution(values: np.ndarray) -> dict:
    if values.size == 0:
        return {}
    q = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "p05": float(q[0]),
        "p25": float(q[1]),
        "median": float(q[2]),
        "p75": float(q[3]),
        "p95": float(q[4]),
        "max": float(values.max()),
    }


def _side_by_side(picture: dict, path: Path) -> None:
    panels = [
        ("bicubic", picture.get("bicubic_psnr")),
        ("model", picture["psnr"]),
        ("ground truth", None),
    ]
    images = [picture.get("bicubic"), picture["model"], picture["gt"]]
    fig = new_figure(9.0, 3.4)
    for k, ((title, psnr), img) in enumerate(zip(panels, images)):
        ax = fig.add_subplot(1, 3, k + 1)
        if img is not None:
            ax.imshow(img, interpolation="nearest")
        ax.set_title(title if psnr is None else f"{title}: {psnr:.2f} dB", fontsize="small")
        ax.set_axis_off()
    fig.tight_layout()
    save_figure(fig, path)
