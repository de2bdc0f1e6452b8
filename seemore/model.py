"""The SeemoRe reference network (Zamfir et al., ICML 2024).

Module and parameter names follow the official BasicSR implementation exactly, so an
official ``.pth`` loads with ``strict=True``. The only behavioural difference is that the
mixture-of-experts layer always computes routing densely (every expert runs and is
weighted by the top-k-masked softmax). In training mode this *is* the official code path;
in eval mode it equals the official per-image expert selection exactly (the unselected
experts are multiplied by zero), but it also works at batch > 1 and under ``torch.export``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seemore.config import SeemoReConfig


class LayerNorm2d(nn.Module):
    """Channel LayerNorm on NCHW tensors: per pixel over channels, biased variance."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class StripedConv2d(nn.Module):
    """Depthwise 1xK followed by depthwise Kx1 convolution (keys ``conv.0``, ``conv.1``)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, (1, kernel_size), padding=(0, pad), groups=channels),
            nn.Conv2d(channels, channels, (kernel_size, 1), padding=(pad, 0), groups=channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class GatedFFN(nn.Module):
    """Gated feed-forward: ``GELU(fn_2(a * gate(g)))`` with ``a, g = split(GELU(fn_1(x)))``."""

    def __init__(self, channels: int, mlp_ratio: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        hidden = channels * mlp_ratio
        self.fn_1 = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.GELU())
        self.fn_2 = nn.Sequential(nn.Conv2d(hidden // 2, channels, 1), nn.GELU())
        self.gate = nn.Conv2d(
            hidden // 2, hidden // 2, kernel_size, padding=kernel_size // 2, groups=hidden // 2
        )

    def forward(self, x: Tensor) -> Tensor:
        a, g = torch.chunk(self.fn_1(x), 2, dim=1)
        return self.fn_2(a * self.gate(g))


class Expert(nn.Module):
    """Low-rank expert: ``conv_3(conv_1(x) * conv_2(k))``, all 1x1 convs with bias."""

    def __init__(self, channels: int, rank: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(channels, rank, 1)
        self.conv_2 = nn.Conv2d(channels, rank, 1)
        self.conv_3 = nn.Conv2d(rank, channels, 1)

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        return self.conv_3(self.conv_1(x) * self.conv_2(k))


class Router(nn.Module):
    """Global average pool, then a bias-free linear layer to one logit per expert."""

    def __init__(self, channels: int, num_experts: int) -> None:
        super().__init__()
        # Index 2 is the linear layer, as in the official Sequential(pool, rearrange, linear).
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_experts, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def topk_mask(probs: Tensor, k: int) -> Tensor:
    """Zero every probability outside the per-row top ``k`` (no renormalisation)."""
    if k == probs.shape[1]:
        return probs
    _, index = torch.topk(probs, k, dim=1)
    return torch.zeros_like(probs).scatter(1, index, probs.gather(1, index))


class MoELayer(nn.Module):
    """Mixture of low-rank experts with image-level top-k routing, computed densely."""

    def __init__(self, channels: int, ranks: tuple[int, ...], topk: int) -> None:
        super().__init__()
        self.experts = nn.ModuleList(Expert(channels, r) for r in ranks)
        self.gate = Router(channels, len(ranks))
        self.topk = topk

    def routing_weights(self, x: Tensor) -> Tensor:
        """Per-image expert weights (B, E): softmax in fp32, masked to the top-k."""
        probs = F.softmax(self.gate(x), dim=1, dtype=torch.float32).to(x.dtype)
        return topk_mask(probs, self.topk)

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        weights = self.routing_weights(x)
        out = x
        for i, expert in enumerate(self.experts):
            out = out + expert(x, k) * weights[:, i, None, None, None]
        return out


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet channel shuffle; with 2 groups it interleaves the two channel halves."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MoEBlock(nn.Module):
    """Mixture of rank-modulating experts (MoRE), ``local_block.block`` in the official code."""

    def __init__(self, cfg: SeemoReConfig) -> None:
        super().__init__()
        c = cfg.embedding_dim
        self.use_shuffle = cfg.use_shuffle
        self.recursive = cfg.recursive
        self.conv_1 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, 2 * c, 1))
        self.agg_conv = nn.Sequential(nn.Conv2d(c, c, 4, stride=4, groups=c), nn.GELU())
        self.conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, c, 1))
        self.conv_2 = nn.Sequential(StripedConv2d(c, 3), nn.GELU())
        self.moe_layer = MoELayer(c, cfg.expert_ranks, cfg.topk)
        self.proj = nn.Conv2d(c, c, 1)

    def calibrate(self, k: Tensor) -> Tensor:
        """Low-resolution context: recursive stride-4 aggregation, conv, bilinear back up."""
        h, w = k.shape[-2:]
        ctx = k
        for _ in range(self.recursive):
            ctx = self.agg_conv(ctx)
        ctx = self.conv(ctx)
        ctx = F.interpolate(ctx, size=(h, w), mode="bilinear", align_corners=False)
        return k + ctx

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_1(x)
        if self.use_shuffle:
            x = channel_shuffle(x, 2)
        x, k = torch.chunk(x, 2, dim=1)
        x = self.conv_2(x)
        k = self.calibrate(k)
        x = self.moe_layer(x, k)
        return self.proj(x)


class StripedConvFormer(nn.Module):
    """Spatial expert (SE): ``proj(striped_conv(q) * v)`` with ``q, v = split(GELU(to_qv(x)))``."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.to_qv = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.GELU())
        self.attn = StripedConv2d(channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        q, v = torch.chunk(self.to_qv(x), 2, dim=1)
        return self.proj(self.attn(q) * v)


class PreNormExpertBlock(nn.Module):
    """``x + block(norm_1(x))`` then ``x + ffn(norm_2(x))``: the shape shared by RME and SME.

    Takes its parts as modules so that the deploy form (:mod:`seemore.deploy`) reuses it with
    delegate-friendly parts under the same parameter names.
    """

    def __init__(self, norm_1: nn.Module, block: nn.Module, norm_2: nn.Module, ffn: nn.Module) -> None:
        super().__init__()
        self.norm_1 = norm_1
        self.block = block
        self.norm_2 = norm_2
        self.ffn = ffn

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.block(self.norm_1(x))
        return x + self.ffn(self.norm_2(x))


class RME(PreNormExpertBlock):
    """Rank modulating expert block: pre-norm MoRE then pre-norm gated FFN, both residual."""

    def __init__(self, cfg: SeemoReConfig) -> None:
        c = cfg.embedding_dim
        super().__init__(LayerNorm2d(c), MoEBlock(cfg), LayerNorm2d(c), GatedFFN(c, cfg.mlp_ratio, 3))


class SME(PreNormExpertBlock):
    """Spatial modulating expert block: pre-norm striped conv former then pre-norm FFN."""

    def __init__(self, cfg: SeemoReConfig) -> None:
        c = cfg.embedding_dim
        super().__init__(
            LayerNorm2d(c), StripedConvFormer(c, cfg.global_kernel_size), LayerNorm2d(c),
            GatedFFN(c, cfg.mlp_ratio, 3),
        )


class ResGroup(nn.Module):
    """One residual group: RME (``local_block``) then SME (``global_block``)."""

    def __init__(self, local_block: nn.Module, global_block: nn.Module) -> None:
        super().__init__()
        self.local_block = local_block
        self.global_block = global_block

    def forward(self, x: Tensor) -> Tensor:
        return self.global_block(self.local_block(x))


class SeemoRe(nn.Module):
    """SeemoRe super-resolution network. Input RGB in [0, 1], NCHW; output ``scale`` times larger."""

    def __init__(self, cfg: SeemoReConfig) -> None:
        super().__init__()
        self.config = cfg
        c = cfg.embedding_dim
        self.img_range = cfg.img_range
        # Not persistent: official checkpoints carry no mean, and neither do ours.
        self.register_buffer("mean", torch.tensor(cfg.rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = nn.Conv2d(cfg.in_chans, c, 3, padding=1)
        self.body = nn.Sequential(*(ResGroup(RME(cfg), SME(cfg)) for _ in range(cfg.num_layers)))
        self.norm = LayerNorm2d(c)
        self.conv_2 = nn.Conv2d(c, c, 3, padding=1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(c, cfg.in_chans * cfg.scale**2, 3, padding=1), nn.PixelShuffle(cfg.scale)
        )

    @property
    def scale(self) -> int:
        """Upscaling factor."""
        return self.config.scale

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        x = self.conv_1(x)
        res = x
        x = self.body(x)
        x = self.conv_2(self.norm(x)) + res
        x = self.upsampler(x)
        return x / self.img_range + mean
