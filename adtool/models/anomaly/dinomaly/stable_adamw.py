"""StableAdamW: AdamW with AdaFactor-style update clipping (Dinomaly's optimiser).

"Stable and low-precision training for large-scale vision-language models", Wortsman et
al., NeurIPS 2023, https://arxiv.org/abs/2304.13013, Algorithm 2. Each tensor's learning
rate is divided by ``max(1, RMS_t)``, ``RMS_t = sqrt(mean(g_t^2 / max(v_hat_t, eps^2)))``:
when a gradient is much larger than its running second moment (a loss spike), the step
shrinks instead of exploding. Dinomaly uses it with ``amsgrad=True``. Neither timm,
torch-optimizer, pytorch-optimizer nor torch-optimi offers the AMSGrad variant, hence this
implementation (registered with mmengine's optimizers: ``dict(type='StableAdamW', ...)``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim import Optimizer

from adtool.registry import OPTIMIZERS


@OPTIMIZERS.register_module()
class StableAdamW(Optimizer):
    """AdamW (decoupled weight decay, optional AMSGrad) with update clipping.

    With ``RMS_t <= 1`` (e.g. a constant gradient) a step is exactly
    ``torch.optim.AdamW``'s; otherwise the learning rate of that tensor, for the
    decay and the update alike, is ``lr / RMS_t``.

    Args:
        params: Parameters or parameter groups.
        lr: Learning rate. Defaults to 1e-3.
        betas: Coefficients of the running first and second moments. Defaults to
            (0.9, 0.999).
        eps: Added to the denominator; ``eps^2`` floors ``v_hat`` in ``RMS_t``.
            Defaults to 1e-8.
        weight_decay: Decoupled weight decay. Defaults to 1e-2.
        amsgrad: Divide by the running maximum of the second moment. Defaults to False.
        clip_threshold: RMS above which the step is scaled down. Defaults to 1.0.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        clip_threshold: float = 1.0,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or clip_threshold <= 0:
            raise ValueError(
                f"StableAdamW: lr {lr}, eps {eps}, weight_decay {weight_decay} must be >= 0 "
                f"and clip_threshold {clip_threshold} > 0"
            )
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"StableAdamW: betas {betas} must be in [0, 1)")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            clip_threshold=clip_threshold,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            eps = group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("StableAdamW does not support sparse gradients")
                grad = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(
                            p, memory_format=torch.preserve_format
                        )
                state["step"] += 1
                t = state["step"]
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias1 = 1 - beta1**t
                bias2 = 1 - beta2**t
                v_hat = exp_avg_sq / bias2
                rms = (grad.square() / v_hat.clamp(min=eps**2)).mean().sqrt().item()
                lr = group["lr"] / max(1.0, rms / group["clip_threshold"])
                if group["amsgrad"]:
                    torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
                    second = state["max_exp_avg_sq"]
                else:
                    second = exp_avg_sq
                denom = (second.sqrt() / math.sqrt(bias2)).add_(eps)
                p.mul_(1 - lr * group["weight_decay"])
                p.addcdiv_(exp_avg, denom, value=-lr / bias1)
        return loss
