"""Export-friendly form of SeemoRe: same weights, same outputs, one delegate-friendly graph.

The reference network (:mod:`seemore.model`) keeps the official module names and
formulation. Mobile delegates (XNNPACK, Vulkan, Core ML, LiteRT) reject or split on a few
of its ops, so this module rebuilds the network from the same weights with exact
rewrites (docs/TOOLCHAIN.md, "Delegation pitfalls"):

* top-k routing from subtraction, multiplication, clamp and addition only (no ``topk``,
  ``scatter`` or ``ones_like``); equal to ``torch.topk`` except on exact ties, where
  every tied expert is kept;
* channel LayerNorm whose channel means (and variance) come from a 1x1 conv with a
  fixed ``1/C`` weight buffer, because XNNPACK delegates no ``mean`` over channels;
* plain slicing instead of ``chunk``/``split`` (``split_with_sizes_copy`` is not delegated);
* one copy of the stride-4 depthwise aggregation conv per application, because INT8
  XNNPACK refuses a weight shared by two inputs with different scales;
* the channel shuffle folded into the output channels of the preceding 1x1 conv, and the
  input/output colour normalisation folded into the first and last convs;
* a 1x1 conv whose output is split in two (``to_qv``, ``fn_1``, the MoRE block's
  ``conv_1[2]``) becomes two 1x1 convs, one per half: no channel slice of a full-resolution
  tensor is left (XNNPACK copies each slice, and in INT8 they are fp32 copies behind GELU);
* a LayerNorm's affine ``weight``/``bias`` folded into the 1x1 convs it feeds (``W diag(w)``,
  ``b + W bias``), so the norm ends at the normalisation; the two norms that feed a 3x3
  conv keep theirs (zero padding makes that fold inexact at the border). In INT8 this
  also means the conv's input is quantized before the per-channel affine, whose
  spread would otherwise widen the activation range;
* for Core ML only (:data:`CONTEXT_UPSAMPLE`), the context branch's bilinear upsample
  (about x16, fractional in general: 11x20 -> 180x320) is two matrix products with
  bilinear interpolation matrices built from the runtime shape (:class:`ContextUpsample`),
  because the Neural Engine's upsample takes only a factor of 2 and the x16 one falls back
  to the CPU/GPU; coremltools folds the matrices into constants at a fixed shape. Every
  other backend keeps ``F.interpolate``;
* for LiteRT only (:data:`UNIT_CLAMP`), the top-k mask's clamps to [0, 1] are
  ``min(relu6(x), 1)``: LiteRT's converter turns a plain clamp into RELU_0_TO_1, which its
  XNNPACK delegate does not take;
* the two residual additions of every pre-norm block are :class:`ResidualAdd` modules,
  so that INT8 quantizers can keep the residual stream in float by module type (see
  :data:`FLOAT_MODULES` below). The long skip before the
  upsampler stays a plain (quantized) add: in float, with both inputs coming from int8
  convs, XNNPACK's partitioner groups it like a quantized add together with the first
  conv's output, which the whole body also reads, and lowering fails with a
  dependency cycle.

Every rewrite is exact in real arithmetic; in floating point the outputs differ from the
reference only by rounding (tested <= 1e-5 on real images).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seemore.checkpoint import load_model
from seemore.config import SeemoReConfig
from seemore.model import Expert, MoELayer, PreNormExpertBlock, ResGroup, Router, SeemoRe, StripedConv2d

# Gain of one step of the arithmetic Heaviside function below. A power of two, so that
# ``diff * gain`` is exact in fp32 and fp16; 2**13 keeps every product (|diff| <= 1 times the
# gain, at most 8192) below a quarter of fp16's largest value (65504 / 4 = 16376), the bar of
# ``benchmarks/fp16_safety.py``. 2**15 reached 32768, half the fp16 limit.
_STEP_GAIN = 2.0**13


# How the top-k mask clamps to [0, 1], per backend (:func:`unit_clamp`). LiteRT's converter fuses
# every spelling of clamp(x, 0, 1) (clamp, hardtanh, min/max in either order, relu then min) into
# RELU_0_TO_1, which LiteRT's XNNPACK delegate does not take: each one split the CPU graph
# (5 partitions with 10 of them outside on a one-group model). ``min(relu6(x), 1)`` is the same
# function, exactly (min(min(max(x, 0), 6), 1)), and lowers to RELU6 (or a fused activation) and
# MINIMUM, which XNNPACK delegates. Every other backend keeps ``clamp``.
UNIT_CLAMP: dict[str, str] = {"litert": "relu6_min"}


def unit_clamp(x: Tensor, mode: str = "clamp") -> Tensor:
    """``clamp(x, 0, 1)``, spelled ``mode``'s way (:data:`UNIT_CLAMP`); the same values either way."""
    if mode == "relu6_min":
        return torch.clamp_max(F.relu6(x), 1.0)
    return torch.clamp(x, 0.0, 1.0)


def _positive_step(diff: Tensor, stages: int, clamp_mode: str = "clamp") -> Tensor:
    """1 where ``diff > 0``, 0 where ``diff <= 0``, built from mul and clamp only.

    Each stage scales by ``_STEP_GAIN`` and clamps to [0, 1]; a positive ``diff`` reaches
    exactly 1 once ``diff * _STEP_GAIN**stages >= 1``. Callers pick ``stages`` so that
    the smallest difference that can matter does.
    """
    out = diff
    for _ in range(stages):
        out = unit_clamp(out * _STEP_GAIN, clamp_mode)
    return out


def step_stages(num_experts: int, k: int) -> int:
    """Number of gain stages that make the top-``k`` mask exact in fp32 and fp16.

    After ``s`` stages the step of ``diff`` is ``min(1, diff * G**s)`` exactly for
    ``diff > 0`` and 0 for ``diff <= 0`` (``G`` = ``_STEP_GAIN``): multiplying by a power of
    two is exact below overflow, every stage's input is in [-1, 1] so no product exceeds
    ``G`` (8192 < 65504), and clamp is exact. A step is therefore exactly 1 once
    ``diff * G**s >= 1``, and what remains is the smallest positive ``diff`` that can decide
    the mask. (A computed ``p_j - p_i`` is never 0 for ``p_j != p_i``: IEEE subtraction with
    gradual underflow.)

    For top-1 the only differences that decide the mask are ``p_max - p_i`` with
    ``p_max >= 1/E`` (the winner's own steps are all of non-positive differences); two
    distinct fp32 numbers that large differ by at least ``2**-24 / (2E)``, so a total gain
    of ``2**25 * 2E`` is enough (``2**(26 + log2 E)``: 3 stages of 2**13 for E = 3). In fp16
    the spacing there is ``2**-11 / (2E)``, and an fp16 softmax may put ``p_max`` a rounding
    below ``1/E``, which the factor-2 margin covers. For k > 1 the k-th largest
    probability can be tiny, so the gain must cover fp32's smallest subnormal (2**-149;
    fp16's is 2**-24): ``G**s >= 2**150``, 12 stages of 2**13. (Hardware that flushes
    subnormals to zero turns such a difference into a tie, where every tied expert is kept.)
    """
    if k == 1:
        needed_log2 = 26 + math.log2(num_experts)
        return max(1, math.ceil(needed_log2 / math.log2(_STEP_GAIN)))
    return math.ceil(150 / math.log2(_STEP_GAIN))


class TopKRoutingMask(nn.Module):
    """Zero every probability outside the per-row top ``k`` with delegate-friendly ops.

    ``count_i`` = number of experts with a strictly larger probability than expert ``i``
    (a sum of exact 0/1 steps); expert ``i`` is kept when ``count_i < k``. Exactly equal
    to :func:`seemore.model.topk_mask` unless probabilities tie at the k-th place, where
    this keeps all tied experts and ``topk`` keeps the lower index.
    """

    def __init__(self, num_experts: int, k: int) -> None:
        super().__init__()
        if not 1 <= k <= num_experts:
            raise ValueError(f"k must be in [1, {num_experts}], got {k}")
        self.num_experts = num_experts
        self.k = k
        self.stages = step_stages(num_experts, k)
        self.clamp_mode = "clamp"  # set per backend by DeploySeemoRe.from_reference (UNIT_CLAMP)

    def forward(self, probs: Tensor) -> Tensor:
        if self.k == self.num_experts:
            return probs
        count: Tensor | None = None
        for j in range(self.num_experts):
            # (B, 1) - (B, E): 1 where expert j beats expert i, 0 otherwise (and for j == i).
            beaten = _positive_step(probs[:, j : j + 1] - probs, self.stages, self.clamp_mode)
            count = beaten if count is None else count + beaten
        assert count is not None
        keep = unit_clamp(float(self.k) - count, self.clamp_mode)
        return probs * keep


class ConvLayerNorm2d(nn.Module):
    """Channel LayerNorm whose channel statistics are 1x1 convs with a fixed 1/C weight.

    With ``affine=True`` the parameters (``weight``, ``bias``) have the reference names and
    shapes; with ``affine=False`` they have been folded into the convs that follow
    (:func:`convert_state_dict`). The averaging kernel is a non-persistent buffer.
    """

    def __init__(self, channels: int, eps: float = 1e-6, affine: bool = True) -> None:
        super().__init__()
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.register_buffer("mean_kernel", torch.full((1, channels, 1, 1), 1.0 / channels), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        mean = F.conv2d(x, self.mean_kernel)
        centred = x - mean
        # Multiplication instead of pow: pow is not delegated everywhere.
        var = F.conv2d(centred * centred, self.mean_kernel)
        normed = centred * torch.rsqrt(var + self.eps)
        if not self.affine:
            return normed
        return normed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ResidualAdd(nn.Module):
    """``x + update``, as a module so that quantizers can single out the residual stream.

    Requantizing the residual stream to int8 after every block costs about as much
    Set5 PSNR as all other activations together (PTQ on our 6k-iteration x4 checkpoint:
    0.17 dB drop with it quantized, 0.08 dB without), while the blocks' convs, which carry
    all the MACs, stay int8 either way.
    """

    def forward(self, x: Tensor, update: Tensor) -> Tensor:
        return x + update


class DeployPreNormExpertBlock(PreNormExpertBlock):
    """:class:`seemore.model.PreNormExpertBlock` with its two additions as :class:`ResidualAdd`."""

    def __init__(self, norm_1: nn.Module, block: nn.Module, norm_2: nn.Module, ffn: nn.Module) -> None:
        super().__init__(norm_1, block, norm_2, ffn)
        self.add_1 = ResidualAdd()
        self.add_2 = ResidualAdd()

    def forward(self, x: Tensor) -> Tensor:
        x = self.add_1(x, self.block(self.norm_1(x)))
        return self.add_2(x, self.ffn(self.norm_2(x)))


# Per backend, how the context branch is upsampled (:class:`ContextUpsample` modes); a backend
# not named here (XNNPACK, Vulkan, LiteRT, ONNX Runtime's CPU) keeps ``F.interpolate``. The
# Neural Engine runs ``upsample_bilinear`` only at a factor of 2 (seemore/export/ane.py), and
# the context comes back up by about 16.
CONTEXT_UPSAMPLE: dict[str, str] = {"coreml": "matmul"}
CONTEXT_UPSAMPLE_MODES: tuple[str, ...] = ("bilinear", "matmul")


def context_upsample_mode(backend: str | None) -> str:
    """The :class:`ContextUpsample` mode of ``backend``'s deploy form (``None``: the default, bilinear)."""
    return CONTEXT_UPSAMPLE.get(backend, "bilinear") if backend else "bilinear"


def bilinear_matrix(out_size: int, in_size: int, like: Tensor) -> Tensor:
    """The (out_size, in_size) matrix of 1-D bilinear resizing, PyTorch's ``align_corners=False``.

    Row ``i`` holds the weights that ``F.interpolate(..., mode="bilinear",
    align_corners=False)`` (with ``size`` given, no ``scale_factor``) gives the input pixels for
    output pixel ``i``. PyTorch (``_upsample_linear`` in ``torch/_decomp/decompositions.py``,
    and the ATen kernels) computes, in the input's float type:

    * ``scale = in / out`` and ``src = (i + 0.5) * scale - 0.5``, clamped below at 0;
    * ``i0 = floor(src)``, ``i1 = min(i0 + 1, in - 1)``, ``t = src - i0``;
    * ``out[i] = (1 - t) x[i0] + t x[i1]``.

    Here ``src`` is clamped to ``[0, in - 1]`` and the weight of input pixel ``j`` is the hat
    function ``max(0, 1 - |src - j|)``. The two agree everywhere:

    * inside, ``i0 <= src < i0 + 1 <= in - 1``: the hat gives ``1 - t`` at ``i0``, ``t`` at
      ``i0 + 1`` and 0 at every other ``j`` (``|src - j| >= 1``); at an integer ``src`` it gives
      1 at ``src`` alone, as PyTorch's ``t = 0`` does;
    * lower border (``src < 0`` before the clamp, the first output pixels when upsampling):
      both clamp to 0, all weight on pixel 0;
    * upper border: ``src <= in - 0.5 - 0.5 * in / out < in``, so PyTorch's ``i0`` is at most
      ``in - 1``; when it is ``in - 1``, ``i1 = i0`` and the two weights sum to 1 on pixel
      ``in - 1``. Clamping ``src`` to ``in - 1`` puts the same weight 1 there (without the clamp
      the hat would give ``1 - t`` only, since pixel ``in`` does not exist);
    * ``in == out``: ``src = i``, the identity; ``in == 1``: ``src`` clamps to 0, a column of ones.

    So ``A @ x @ B.T`` with ``A = bilinear_matrix(H, h)``, ``B = bilinear_matrix(W, w)`` is the
    bilinear resize of ``x`` to ``(H, W)``, exactly in real arithmetic (the 2-D resize is
    separable); in floating point the two differ by rounding (of ``src``, since ``in / out`` is
    inexact, and of the sums): at most 1e-6 on inputs in [0, 1], 1e-12 in fp64. Built from ``arange``, mul, add, clamp, abs and relu on the
    sizes, so it follows symbolic sizes under ``torch.export`` and folds to a constant when
    the sizes are fixed (coremltools' constant elimination). Computed in fp32 (fp64 for an
    fp64 ``like``), returned in ``like``'s dtype and on its device.
    """
    dtype = torch.promote_types(like.dtype, torch.float32)
    dst = torch.arange(out_size, dtype=dtype, device=like.device)
    src = torch.clamp((dst + 0.5) * (in_size / out_size) - 0.5, min=0.0, max=in_size - 1)
    j = torch.arange(in_size, dtype=dtype, device=like.device)
    weights = torch.relu(1.0 - torch.abs(src.unsqueeze(1) - j.unsqueeze(0)))
    return weights.to(like.dtype)


class ContextUpsample(nn.Module):
    """Bilinear upsample (``align_corners=False``) of the context branch back to ``size``.

    ``mode="bilinear"`` is ``F.interpolate``; ``mode="matmul"`` is ``A @ ctx @ B.T`` with the
    matrices of :func:`bilinear_matrix`, built from the runtime shape (no stored buffers: the
    same module is captured with dynamic height and width for quantization and at a fixed
    shape for export). Equal in real arithmetic; the matmul form is for Core ML, whose Neural
    Engine runs ``upsample_bilinear`` only at a factor of 2 (:data:`CONTEXT_UPSAMPLE`). A
    module, so that INT8 quantizers keep it in float (:data:`FLOAT_MODULES`).
    """

    def __init__(self, mode: str = "bilinear") -> None:
        super().__init__()
        if mode not in CONTEXT_UPSAMPLE_MODES:
            raise ValueError(f"unknown context upsample mode {mode!r}; choose from {', '.join(CONTEXT_UPSAMPLE_MODES)}")
        self.mode = mode

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

    def forward(self, ctx: Tensor, size: tuple[int, int]) -> Tensor:
        h, w = size
        if self.mode == "bilinear":
            return F.interpolate(ctx, size=(h, w), mode="bilinear", align_corners=False)
        rows = bilinear_matrix(h, ctx.shape[-2], ctx)  # (H, h)
        cols = bilinear_matrix(w, ctx.shape[-1], ctx)  # (W, w)
        # Height first: (H, h) @ (B, C, h, w), then (B, C, H, w) @ (w, W): about 2% of SeemoRe-T's
        # MACs at 180x320. The other order costs less on wide images (about 1%), but its first
        # matmul folds the batch into a (B*C*h, w) view whose guard torch.export cannot decide
        # with a fixed batch and a dynamic height (Core ML's enumerated sizes).
        return torch.matmul(torch.matmul(rows, ctx), cols.transpose(0, 1))


def pointwise_gelu(in_channels: int, out_channels: int) -> nn.Sequential:
    """``GELU(conv1x1(x))``: one half of a split ``Sequential(Conv2d(1x1), GELU)``."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.GELU())


class DeployGatedFFN(nn.Module):
    """Gated FFN of the reference with ``fn_1`` split into its two halves (``fn_1a``, ``fn_1b``)."""

    def __init__(self, channels: int, mlp_ratio: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        half = channels * mlp_ratio // 2
        self.fn_1a = pointwise_gelu(channels, half)
        self.fn_1b = pointwise_gelu(channels, half)
        self.fn_2 = nn.Sequential(nn.Conv2d(half, channels, 1), nn.GELU())
        self.gate = nn.Conv2d(half, half, kernel_size, padding=kernel_size // 2, groups=half)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn_2(self.fn_1a(x) * self.gate(self.fn_1b(x)))


class DeployMoELayer(nn.Module):
    """Dense mixture of low-rank experts with the arithmetic top-k mask."""

    def __init__(self, channels: int, ranks: tuple[int, ...], topk: int) -> None:
        super().__init__()
        self.experts = nn.ModuleList(Expert(channels, r) for r in ranks)
        self.gate = Router(channels, len(ranks))
        self.mask = TopKRoutingMask(len(ranks), topk)

    def routing_weights(self, x: Tensor) -> Tensor:
        """Per-image expert weights (B, E), equal to the reference's except on exact ties."""
        return self.mask(torch.softmax(self.gate(x), dim=1))

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        weights = self.routing_weights(x)
        out = x
        for i, expert in enumerate(self.experts):
            w = weights[:, i : i + 1].unsqueeze(-1).unsqueeze(-1)
            out = out + expert(x, k) * w
        return out


class DeployMoEBlock(nn.Module):
    """MoRE block: ``conv_1[2]`` split into ``to_x``/``to_k`` (shuffle folded in), one agg conv per repeat.

    ``context_upsample`` is the :class:`ContextUpsample` mode of the context branch.
    """

    def __init__(self, cfg: SeemoReConfig, context_upsample: str = "bilinear") -> None:
        super().__init__()
        c = cfg.embedding_dim
        self.conv_1 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GELU())
        # The reference conv_1[2] (c -> 2c, then channel shuffle, then split) as two convs whose
        # output channels are already in shuffled order (see convert_state_dict).
        self.to_x = nn.Conv2d(c, c, 1)
        self.to_k = nn.Conv2d(c, c, 1)
        self.agg_steps = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c, 4, stride=4, groups=c), nn.GELU()) for _ in range(cfg.recursive)
        )
        self.conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, c, 1))
        self.upsample = ContextUpsample(context_upsample)
        self.conv_2 = nn.Sequential(StripedConv2d(c, 3), nn.GELU())
        self.moe_layer = DeployMoELayer(c, cfg.expert_ranks, cfg.topk)
        self.proj = nn.Conv2d(c, c, 1)

    def calibrate(self, k: Tensor) -> Tensor:
        """Low-resolution context added back to ``k`` (reference ``MoEBlock.calibrate``)."""
        h, w = k.shape[-2:]
        ctx = k
        for step in self.agg_steps:
            ctx = step(ctx)
        ctx = self.conv(ctx)
        return k + self.upsample(ctx, (h, w))

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv_1(x)
        x = self.conv_2(self.to_x(y))
        k = self.calibrate(self.to_k(y))
        x = self.moe_layer(x, k)
        return self.proj(x)


class DeployStripedConvFormer(nn.Module):
    """Spatial expert with ``to_qv`` split into its two halves (``to_q``, ``to_v``)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.to_q = pointwise_gelu(channels, channels)
        self.to_v = pointwise_gelu(channels, channels)
        self.attn = StripedConv2d(channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.attn(self.to_q(x)) * self.to_v(x))


def deploy_res_group(cfg: SeemoReConfig, context_upsample: str = "bilinear") -> ResGroup:
    """One residual group built from the delegate-friendly parts (reference names kept)."""
    c = cfg.embedding_dim
    # Norms that feed 1x1 convs carry no affine (folded by convert_state_dict); the MoRE
    # block starts with a 3x3 conv, so local.norm_1 keeps its own.
    local = DeployPreNormExpertBlock(
        ConvLayerNorm2d(c), DeployMoEBlock(cfg, context_upsample), ConvLayerNorm2d(c, affine=False),
        DeployGatedFFN(c, cfg.mlp_ratio, 3),
    )
    spatial = DeployPreNormExpertBlock(
        ConvLayerNorm2d(c, affine=False), DeployStripedConvFormer(c, cfg.global_kernel_size),
        ConvLayerNorm2d(c, affine=False), DeployGatedFFN(c, cfg.mlp_ratio, 3),
    )
    return ResGroup(local, spatial)


def shuffle_permutation(channels: int, groups: int = 2) -> Tensor:
    """Index ``perm`` with ``channel_shuffle(y, groups)[:, j] == y[:, perm[j]]``."""
    per_group = channels // groups
    j = torch.arange(channels)
    return (j % groups) * per_group + j // groups


def _agg_prefix(i: int) -> str:
    return f"body.{i}.local_block.block."


def _split_conv(sd: dict[str, Tensor], old: str, new: tuple[str, str]) -> None:
    """Replace conv ``old`` (weight/bias) by two convs ``new`` holding its first and second output halves."""
    weight, bias = sd.pop(old + ".weight"), sd.pop(old + ".bias")
    half = weight.shape[0] // 2
    for name, rows in zip(new, (slice(0, half), slice(half, None))):
        sd[name + ".weight"] = weight[rows].contiguous()
        sd[name + ".bias"] = bias[rows].contiguous()


def _fold_norm_affine(sd: dict[str, Tensor], norm: str, convs: tuple[str, ...]) -> None:
    """Fold LayerNorm ``norm``'s affine into the 1x1 ``convs`` it feeds: conv(w*n + b) = (W diag(w)) n + (Wb + c)."""
    scale, shift = sd.pop(norm + ".weight"), sd.pop(norm + ".bias")
    for conv in convs:
        weight = sd[conv + ".weight"]
        assert weight.shape[-2:] == (1, 1), f"{conv} is not a 1x1 conv"
        # Accumulate the bias term in float64 so the fold adds no rounding of its own.
        extra = (weight[:, :, 0, 0].double() @ shift.double()).to(weight.dtype)
        sd[conv + ".weight"] = weight * scale.view(1, -1, 1, 1)
        sd[conv + ".bias"] = sd[conv + ".bias"] + extra


def convert_state_dict(ref_sd: Mapping[str, Tensor], cfg: SeemoReConfig) -> dict[str, Tensor]:
    """Map a reference (official-named) state_dict to the :class:`DeploySeemoRe` one.

    The mapping is exact in real arithmetic: weights are copied, split, permuted, scaled or
    folded (a LayerNorm affine into the 1x1 conv after it), never approximated.
    """
    sd = {k: v.detach().clone() for k, v in ref_sd.items()}
    c = cfg.embedding_dim
    perm = shuffle_permutation(2 * c) if cfg.use_shuffle else None
    for i in range(cfg.num_layers):
        p = _agg_prefix(i)
        if perm is not None:
            sd[p + "conv_1.2.weight"] = sd[p + "conv_1.2.weight"][perm].contiguous()
            sd[p + "conv_1.2.bias"] = sd[p + "conv_1.2.bias"][perm].contiguous()
        _split_conv(sd, p + "conv_1.2", (p + "to_x", p + "to_k"))
        for block in ("local_block", "global_block"):
            b = f"body.{i}.{block}."
            halves = (b + "ffn.fn_1a.0", b + "ffn.fn_1b.0")
            _split_conv(sd, b + "ffn.fn_1.0", halves)
            _fold_norm_affine(sd, b + "norm_2", halves)
        g = f"body.{i}.global_block."
        _split_conv(sd, g + "block.to_qv.0", (g + "block.to_q.0", g + "block.to_v.0"))
        _fold_norm_affine(sd, g + "norm_1", (g + "block.to_q.0", g + "block.to_v.0"))
        agg_w = sd.pop(p + "agg_conv.0.weight")
        agg_b = sd.pop(p + "agg_conv.0.bias")
        for r in range(cfg.recursive):
            sd[p + f"agg_steps.{r}.0.weight"] = agg_w.clone()
            sd[p + f"agg_steps.{r}.0.bias"] = agg_b.clone()
    # (x - mean) * img_range -> conv_1: the scale moves into conv_1's weight.
    sd["conv_1.weight"] = sd["conv_1.weight"] * cfg.img_range
    # upsampler conv -> pixel_shuffle -> / img_range + mean: output channel o of the conv
    # becomes colour o // scale**2 after the shuffle, so the mean goes into its bias.
    mean = torch.tensor(cfg.rgb_mean, dtype=sd["upsampler.0.bias"].dtype)
    sd["upsampler.0.weight"] = sd["upsampler.0.weight"] / cfg.img_range
    sd["upsampler.0.bias"] = sd["upsampler.0.bias"] / cfg.img_range + mean.repeat_interleave(cfg.scale**2)
    return sd


class DeploySeemoRe(nn.Module):
    """SeemoRe rewritten for export; build it with :meth:`from_reference` or :meth:`from_state_dict`.

    Input RGB in [0, 1], NCHW, any batch size; output ``scale`` times larger, equal to
    the reference :class:`seemore.model.SeemoRe` up to float rounding. ``context_upsample``
    is the :class:`ContextUpsample` mode (the builders take a ``backend`` and look it up in
    :data:`CONTEXT_UPSAMPLE`); it adds no parameter, so every form has the same state_dict.
    """

    def __init__(self, cfg: SeemoReConfig, context_upsample: str = "bilinear") -> None:
        super().__init__()
        self.config = cfg
        self.context_upsample = context_upsample
        c = cfg.embedding_dim
        self.register_buffer("mean", torch.tensor(cfg.rgb_mean).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = nn.Conv2d(cfg.in_chans, c, 3, padding=1)
        self.body = nn.Sequential(*(deploy_res_group(cfg, context_upsample) for _ in range(cfg.num_layers)))
        self.norm = ConvLayerNorm2d(c)
        self.conv_2 = nn.Conv2d(c, c, 3, padding=1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(c, cfg.in_chans * cfg.scale**2, 3, padding=1), nn.PixelShuffle(cfg.scale)
        )

    @property
    def scale(self) -> int:
        """Upscaling factor."""
        return self.config.scale

    @classmethod
    def from_reference(cls, model: SeemoRe, backend: str | None = None) -> "DeploySeemoRe":
        """Deploy form of a reference model (weights copied; the reference is untouched).

        ``backend`` (an :class:`~seemore.contract.spec.ExportSpec` backend) picks the
        backend-specific rewrites (:data:`CONTEXT_UPSAMPLE`, :data:`UNIT_CLAMP`); ``None`` is the
        default form.
        """
        deploy = cls(model.config, context_upsample_mode(backend))
        for mask in deploy.modules():
            if isinstance(mask, TopKRoutingMask):
                mask.clamp_mode = UNIT_CLAMP.get(backend or "", "clamp")
        deploy.load_state_dict(convert_state_dict(model.state_dict(), model.config), strict=True)
        return deploy.to(next(model.parameters()).device).eval()

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], cfg: SeemoReConfig,
                        backend: str | None = None) -> "DeploySeemoRe":
        """Deploy form from an official-named state_dict (official ``.pth`` params or ours).

        The state_dict is first loaded strictly into a reference model, so a mismatch is
        reported in reference names.
        """
        ref = SeemoRe(cfg)
        ref.load_state_dict(state_dict, strict=True)
        return cls.from_reference(ref, backend)

    @classmethod
    def from_checkpoint(cls, name_or_path: str | Path, backend: str | None = None) -> "DeploySeemoRe":
        """Deploy form of a shipped name, one of our safetensors files or an official ``.pth``."""
        return cls.from_reference(load_model(name_or_path), backend)

    def forward(self, x: Tensor) -> Tensor:
        # img_range and the output mean live in conv_1 / upsampler weights (convert_state_dict).
        x = self.conv_1(x - self.mean)
        res = x
        x = self.body(x)
        x = self.conv_2(self.norm(x)) + res
        return self.upsampler(x)


# Module types every INT8 quantizer leaves in float, all cheap: the router (pool, linear) and
# the arithmetic top-k mask, because quantizing the mask's scaled differences would change
# which expert is chosen; the channel LayerNorm, because an int8 variance rounds small values
# to zero and ``rsqrt`` then amplifies every rounding difference; and the residual additions,
# because requantizing the residual stream after every block halves the INT8 accuracy
# (measured on the shipped x4 model); and the context upsample, whose matmul form (Core ML)
# builds its interpolation matrices with add and mul, which CoreMLQuantizer's add, mul and
# matmul patterns would otherwise give 8-bit observers like activations, matmuls included.
# No quantizer (XNNPACK, Core ML, LiteRT) annotates the bilinear form's interpolate, so the
# other backends' INT8 graphs are unchanged. Every conv stays int8.
FLOAT_MODULES: tuple[type[nn.Module], ...] = (Router, TopKRoutingMask, ConvLayerNorm2d, ResidualAdd,
                                              ContextUpsample)


def moe_layers(model: nn.Module) -> list[nn.Module]:
    """The MoE layers of a reference or deploy model, in forward order."""
    return [m for m in model.modules() if isinstance(m, (MoELayer, DeployMoELayer))]
