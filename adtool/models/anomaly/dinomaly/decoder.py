"""Dinomaly's decoder: transformer blocks whose attention is linear (softmax-free)."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from adtool.registry import MODELS


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Linear attention of Katharopoulos et al. 2020 with the feature map ``elu(x) + 1``.

    ``out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j))`` for
    (..., N, d) queries, keys and values: every query spreads its attention over all keys
    (no softmax sharpening), at cost linear in N.
    """
    q = F.elu(q) + 1.0
    k = F.elu(k) + 1.0
    kv = k.transpose(-2, -1) @ v  # (..., d, d_v)
    normaliser = q @ k.sum(dim=-2, keepdim=True).transpose(-2, -1)  # (..., N, 1)
    return (q @ kv) / normaliser


def init_dinomaly_weights(module: nn.Module) -> None:
    """The official initialisation of Dinomaly's trained parts: linear weights truncated
    normal (std 0.01, cut at +-0.03), biases 0, layer norms weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.01, a=-0.03, b=0.03)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@MODELS.register_module()
class LinearAttention(nn.Module):
    """Multi-head linear attention (:func:`linear_attention`) with qkv and output projections.

    Args:
        dim: Token width.
        num_heads: Attention heads. Defaults to 8.
        qkv_bias: Bias in the qkv projection. Defaults to True (paper's decoder).
        proj_drop: Dropout after the output projection. Defaults to 0.
    """

    def __init__(
        self, dim: int, num_heads: int = 8, qkv_bias: bool = True, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(
                f"LinearAttention: dim {dim} is not divisible by num_heads {num_heads}"
            )
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, d)
        out = linear_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(out))


@MODELS.register_module()
class LinearAttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, norm_eps: float = 1e-8
    ) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=norm_eps)
        self.norm1 = norm(dim)
        self.attn = LinearAttention(dim, num_heads=num_heads, qkv_bias=True)
        self.norm2 = norm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


@MODELS.register_module()
class LinearAttentionDecoder(nn.Module):
    """``depth`` linear-attention blocks; returns every block's output (Dinomaly Sec. 3.3).

    Weights start as the official code's: linear layers truncated normal with std 0.01
    (cut at +-0.03) and zero bias, layer norms at weight 1 and bias 0.

    Args:
        in_channels: Token width (the encoder's embedding width).
        num_heads: Attention heads (the encoder's: 6 / 12 / 16 for ViT-S / B / L).
        depth: Number of blocks. Defaults to 8 (paper).
        mlp_ratio: MLP width over token width. Defaults to 4.
        norm_eps: Layer-norm epsilon. Defaults to 1e-8 (official code).
    """

    def __init__(
        self,
        in_channels: int,
        num_heads: int,
        depth: int = 8,
        mlp_ratio: float = 4.0,
        norm_eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"LinearAttentionDecoder depth must be >= 1, got {depth}")
        self.blocks = nn.ModuleList(
            LinearAttentionBlock(in_channels, num_heads, mlp_ratio, norm_eps) for _ in range(depth)
        )
        init_dinomaly_weights(self)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """(B, N, C) -> one (B, N, C) output per block, first block first."""
        outputs = []
        for block in self.blocks:
            tokens = block(tokens)
            outputs.append(tokens)
        return outputs
