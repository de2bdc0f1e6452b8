"""Which MIL ops of a Core ML program can run on the Apple Neural Engine: a sourced table.

Apple publishes no list of the ops the Neural Engine (ANE) runs; Core ML partitions each
program on the device, and only ``MLComputePlan`` (macOS 14.4+) or an Xcode performance report
tells where each op went. This module is the host-side stand-in: a table, as data
(:data:`ANE_TABLE`), of MIL op types with a verdict and the public source behind it, and
:func:`ane_report`, which applies it to the ops of a program (:func:`ops_from_mil`).

Verdicts (:class:`Verdict`):

* ``supported`` - a public source shows the op on the ANE;
* ``supported with conditions`` - the same, under conditions (kernel sizes, strides, axes,
  broadcasting) that are checked against each op's attributes where they can be;
* ``cpu/gpu fallback`` - a public source says the op, or the op with a failed condition,
  does not run on the ANE;
* ``unknown`` - no public source decides. Never read as "supported".

Every op also meets the conditions of :data:`GENERAL_CONDITIONS`: fp16 data (the ANE is fp16
only; an fp32-typed op is barred from it), rank <= 4 (the ANE's format is 4-D; rank 5 is
undecided, rank 6 is not Core ML at all) and a static shape.

The sources are old and partial: most of what is public about op support comes from the
2020-era neural-network format (hollance/neural-engine and Core ML's own logs quoted there),
Apple's 2022 Transformer article and reference code, coremltools' docs and converter comments,
and a few MLComputePlan measurements by other projects. Each row says which. The table is a
risk list for a model that cannot be run on a Mac here, not a substitute for MLComputePlan.

    mlmodel = ct.convert(exported_program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17)
    report = ane_report(ops_from_mil(mlmodel._mil_program.functions["main"]))
    print(format_ane_report(report, sources=True))
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seemore.common.tables import format_table

__all__ = [
    "ANE_TABLE",
    "GENERAL_CONDITIONS",
    "SKIPPED_OP_TYPES",
    "AneReport",
    "Condition",
    "OpInfo",
    "OpRule",
    "OpTypeSummary",
    "OpVerdict",
    "Source",
    "Verdict",
    "ane_report",
    "format_ane_report",
    "judge",
    "ops_from_mil",
    "rule_for",
]


class Verdict(str, enum.Enum):
    """Where an op runs, as far as public sources tell."""

    SUPPORTED = "supported"
    CONDITIONAL = "supported with conditions"
    FALLBACK = "cpu/gpu fallback"
    UNKNOWN = "unknown"


# Worst first: an op's verdict is the worst of its row's and of its failed conditions'.
_SEVERITY = {Verdict.SUPPORTED: 0, Verdict.CONDITIONAL: 1, Verdict.UNKNOWN: 2, Verdict.FALLBACK: 3}


@dataclass(frozen=True)
class Source:
    """A public source and what it says, in a sentence."""

    url: str
    says: str


@dataclass(frozen=True)
class OpInfo:
    """One MIL op as the table needs it (build it with :func:`ops_from_mil`, or by hand).

    ``attributes`` holds the op's compile-time-known small inputs by their MIL names
    (``strides``, ``dilations``, ``groups``, ``axes``, ``scale_factor_height`` ...) plus
    ``kernel_size`` for convolutions. ``input_shapes`` and ``const_inputs`` (inputs known at
    compile time: weights, constants) decide broadcasting; ``input_producers`` names the op
    type that makes each input (``constexpr_affine_dequantize`` for a quantized weight).
    Shapes use ``None`` for a flexible (symbolic) dimension; the output fields describe the
    first output.
    """

    op_type: str
    name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    output_rank: int | None = None
    output_dtype: str | None = None
    output_shape: tuple[int | None, ...] | None = None
    input_shapes: Mapping[str, tuple[int | None, ...]] = field(default_factory=dict)
    const_inputs: frozenset[str] = frozenset()
    input_producers: Mapping[str, str] = field(default_factory=dict)


# A check returns True (met), False (failed) or None (the OpInfo lacks what it needs).
Check = Callable[[OpInfo], "bool | None"]


@dataclass(frozen=True)
class Condition:
    """A condition of a row, checked per op; ``on_failure`` is the verdict when it fails."""

    text: str
    check: Check
    on_failure: Verdict
    source: Source


@dataclass(frozen=True)
class OpRule:
    """One row of :data:`ANE_TABLE`."""

    op_type: str
    verdict: Verdict
    reason: str
    sources: tuple[Source, ...]
    conditions: tuple[Condition, ...] = ()


# ---- sources -------------------------------------------------------------------------------

ARTICLE = Source(
    "https://machinelearning.apple.com/research/neural-engine-transformers",
    "Apple, 'Deploying Transformers on the Apple Neural Engine' (2022): tensors are kept in (B, C, 1, S) "
    "'because the most conducive data format for the ANE (hardware and software stack) is 4D and "
    "channels-first'; nn.Linear is replaced by 1x1 nn.Conv2d; reshapes and transposes are minimised "
    "(they are memory copies); the optimised distilbert runs up to 10x faster on the ANE",
)
REFERENCE = Source(
    "https://github.com/apple/ml-ane-transformers",
    "Apple's ANE reference code: every projection a 1x1 nn.Conv2d, ReLU FFN, LayerNormANE (mean and "
    "variance over dim 1 of a rank-4 BC1S tensor, rsqrt), softmax(dim=1), split and transpose(1, 3) "
    "of rank-4 tensors, einsum, torch.cat(dim=1), residual adds; its distilbert keeps Hugging Face's "
    "GELU FFN; eps 1e-12 'is not friendly with the float16 precision that ANE uses by default' (1e-7)",
)
TYPED_EXECUTION = Source(
    "https://apple.github.io/coremltools/docs-guides/source/typed-execution.html",
    "coremltools docs: 'The GPU and NE use float 16 precision'; 'Only the NE is barred as a compute "
    "unit when a model is typed with float 32 precision'",
)
QUANT_PERF = Source(
    "https://apple.github.io/coremltools/docs-guides/source/opt-quantization-perf.html",
    "coremltools docs: activation quantization is recommended when the model runs on the NE; A17 Pro / "
    "M4 have more int8-int8 throughput on the Neural Engine (W8A8 ResNet50 faster than W16A16)",
)
FLEXIBLE_FAQ = Source(
    "https://apple.github.io/coremltools/docs-guides/source/faqs.html",
    "coremltools FAQ 'Neural Engine With Flexible Input Shapes': an EnumeratedShapes model runs on the "
    "NE unless the conversion introduces dynamic layers not supported on the NE, such as converting "
    "a static reshape to a fully dynamic reshape",
)
RANGE_FORUM = Source(
    "https://developer.apple.com/forums/thread/724930",
    "Apple engineer: with range flexibility only the input's default shape runs on the Neural Engine; "
    "other shapes run on the GPU or CPU; enumerated shapes can each run on the Neural Engine",
)
HOLLANCE = Source(
    "https://github.com/hollance/neural-engine/blob/master/docs/unsupported-layers.md",
    "'known to not work on the ANE': custom layers, RNN layers (LSTM, GRU), gather, dilated "
    "convolutions, broadcastable and 'ND' layers, multiply of CxHxW and Cx1x1 tensors, pooling with "
    "kernel > 13 or stride > 2, upsampling by factors > 2 ('some of these are guesses', neural-network "
    "format era); upsampling (x2) and deconvolution appeared to work",
)
ESPRESSO_LOG = Source(
    "https://github.com/hollance/neural-engine/issues/2",
    "Core ML's own log on device (2020): 'Unsupported: (dilated)kernel width = 28 > 13' and "
    "'stride_x = 4 > 2' for average pooling; 'elementwise with channel broadcast supported only with "
    "constant vector' for a mul of CxHxW by Cx1x1; 'only scaling factor of 2 is supported, getting "
    "(28, 28)' for upsample",
)
LAYERNORM_PASS = Source(
    "https://github.com/apple/coremltools/blob/main/coremltools/converters/mil/mil/passes/defs/"
    "optimize_normalization.py",
    "coremltools pass fuse_layernorm_or_instancenorm, pattern 5: the 'BC1S LayerNorm pattern as in "
    "ml-ane-transformers' becomes layer_norm with rank 4 and axes [1]",
)
TORCH_FRONTEND = Source(
    "https://github.com/apple/coremltools/blob/main/coremltools/converters/mil/frontend/torch/ops.py",
    "coremltools converter comments: mb.scatter_nd 'falls off ANE'; 'scatter op falls off ANE, while "
    "gather op resides' on it; the ANE has no native RMSNorm and x*x overflows fp16 above 256",
)
RANK_LIMIT = Source(
    "https://github.com/apple/coremltools/issues/1723",
    "coremltools maintainer: 'Core ML does not support tensors with a rank greater than five'",
)
RFDETR_PLAN = Source(
    "https://github.com/roboflow/rf-detr/pull/1495",
    "MLComputePlan of fp16 RF-DETR programs (CPU_AND_NE, M3 Pro, macOS 27, coremltools 9.0): the only "
    "ops off the ANE were topk and the expand_dims / tile / gather_along_axis that consume its indices",
)
MATMUL_PLAN = Source(
    "https://github.com/kasper0406/stablehlo-coreml/pull/110",
    "measured with MLComputePlan (one M4 Mac): conv, linear and matmul run on the ANE once the graph is "
    "big enough (a 4-layer fp16 MLP is ANE-resident in each spelling; 1-2 layer graphs stay on the "
    "CPU); with int4/int8 constexpr weights they reported CPU only",
)
LSTM_ISSUE = Source(
    "https://github.com/apple/coremltools/issues/337",
    "LSTM layers ran on BNNS (the CPU), not on the Neural Engine",
)
DEPTHWISE_FORUM = Source(
    "https://developer.apple.com/forums/thread/720810",
    "a model ending in a depthwise 5x1 convolution (groups 1600) was run on the Neural Engine of "
    "iPhone 13/14, where its results (after a concat_nd) were wrong: ANE numerics need checking",
)
KERNEL_ISSUE = Source(
    "https://github.com/ultralytics/yolov5/issues/2526",
    "a user's experiments: Core ML split the ANE calls at 2-D convolutions larger than 7x7 ('could be "
    "that the conclusion I made is not entirely true'); no public source gives the ANE's conv limits",
)
MIL_OPS = Source(
    "https://apple.github.io/coremltools/source/coremltools.converters.mil.mil.ops.defs.html",
    "the MIL op reference defines the op; neither it nor any source found says where it runs",
)


# ---- condition checks ----------------------------------------------------------------------


def _ints(value: Any) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in (value if isinstance(value, (list, tuple)) else list(value))]
    except TypeError:
        return [int(value)]


def _kernel(op: OpInfo) -> list[int] | None:
    kernel = _ints(op.attributes.get("kernel_size", op.attributes.get("kernel_sizes")))
    if kernel is None and "weight" in op.input_shapes:
        kernel = [int(k) if k is not None else 0 for k in op.input_shapes["weight"][2:]]
    return kernel


def _all_le(key: str, limit: int) -> Check:
    def check(op: OpInfo) -> bool | None:
        values = _ints(op.attributes.get(key))
        return None if values is None else all(v <= limit for v in values)

    return check


def _kernel_le(limit: int) -> Check:
    def check(op: OpInfo) -> bool | None:
        kernel = _kernel(op)
        return None if kernel is None else all(k <= limit for k in kernel)

    return check


def _dilations_one(op: OpInfo) -> bool | None:
    values = _ints(op.attributes.get("dilations"))
    return None if values is None else all(v == 1 for v in values)


def _weight_not_constexpr(op: OpInfo) -> bool | None:
    producer = op.input_producers.get("weight")
    return None if producer is None else not producer.startswith("constexpr_")


def _broadcast_kind(op: OpInfo) -> str | None:
    """``same``, ``const`` (only constants broadcast), ``channel_vector`` (a runtime (N, C, 1, 1)
    spread over H x W), ``other`` (a runtime operand broadcast otherwise); None when unknown."""
    shapes = {k: op.input_shapes.get(k) for k in ("x", "y")}
    if any(s is None for s in shapes.values()):
        return None
    x, y = shapes["x"], shapes["y"]
    if x == y:
        return "same"
    rank = max(len(x), len(y))
    padded = {k: (1,) * (rank - len(s)) + tuple(s) for k, s in shapes.items()}  # type: ignore[arg-type]
    out = tuple(max((d or 0) for d in dims) for dims in zip(*padded.values()))
    broadcast = [k for k, s in padded.items() if s != out]
    if all(k in op.const_inputs for k in broadcast):
        return "const"
    for k in broadcast:
        s = padded[k]
        if rank == 4 and s[2] == 1 and s[3] == 1 and (s[1] or 0) > 1 and (out[2] or 0) * (out[3] or 0) > 1:
            return "channel_vector"
    return "other"


def _no_runtime_channel_vector(op: OpInfo) -> bool | None:
    kind = _broadcast_kind(op)
    return None if kind is None else kind != "channel_vector"


def _same_shape_or_const(op: OpInfo) -> bool | None:
    kind = _broadcast_kind(op)
    return None if kind is None else kind in ("same", "const")


def _rank(op: OpInfo) -> int | None:
    if op.output_rank is not None:
        return op.output_rank
    return None if op.output_shape is None else len(op.output_shape)


def _attr_in(key: str, allowed: Sequence[str]) -> Check:
    def check(op: OpInfo) -> bool | None:
        value = op.attributes.get(key)
        return None if value is None else str(value) in allowed

    return check


def _axis_is_channel(key: str) -> Check:
    """The op's ``key`` (axis or axes) is the channel axis 1 (or -3) of a rank-4 tensor."""

    def check(op: OpInfo) -> bool | None:
        values, r = _ints(op.attributes.get(key)), _rank(op)
        if values is None or r is None:
            return None
        return r == 4 and [v % 4 for v in values] == [1]

    return check


def _upsample_factors_le_2(op: OpInfo) -> bool | None:
    values = [op.attributes.get(k) for k in ("scale_factor_height", "scale_factor_width")]
    if any(v is None for v in values):
        return None
    return all(float(v) in (1.0, 2.0) for v in values)


def _shape_is_const(op: OpInfo) -> bool | None:
    if "shape" not in op.input_shapes and "shape" not in op.const_inputs and "shape" not in op.attributes:
        return None
    return "shape" in op.const_inputs or "shape" in op.attributes


def _epsilon_fp16_friendly(op: OpInfo) -> bool | None:
    eps = op.attributes.get("epsilon")
    return None if eps is None else float(eps) >= 1e-7


# ---- general conditions (every op) ---------------------------------------------------------

GENERAL_CONDITIONS: tuple[Condition, ...] = (
    Condition("not fp32 (an fp32-typed op is barred from the NE)",
              lambda op: None if op.output_dtype is None else op.output_dtype != "fp32",
              Verdict.FALLBACK, TYPED_EXECUTION),
    Condition("fp16 data (int8/uint8 for quantized activations)",
              lambda op: None if op.output_dtype is None else op.output_dtype in ("fp16", "int8", "uint8"),
              Verdict.UNKNOWN, QUANT_PERF),
    Condition("rank <= 5 (Core ML's own limit)",
              lambda op: None if _rank(op) is None else _rank(op) <= 5,  # type: ignore[operator]
              Verdict.FALLBACK, RANK_LIMIT),
    Condition("rank <= 4 (the ANE's 4-D channels-first format; nothing public on rank 5)",
              lambda op: None if _rank(op) is None else _rank(op) <= 4,  # type: ignore[operator]
              Verdict.UNKNOWN, ARTICLE),
    Condition("static shape (range-flexible shapes run on the NE only at their default)",
              lambda op: None if op.output_shape is None else all(d is not None for d in op.output_shape),
              Verdict.UNKNOWN, RANGE_FORUM),
)

_ELEMENTWISE_CONDITIONS = (
    Condition("no runtime (N, C, 1, 1) vector broadcast over H x W", _no_runtime_channel_vector,
              Verdict.FALLBACK, ESPRESSO_LOG),
    Condition("operands of one shape, or only constants broadcast", _same_shape_or_const,
              Verdict.UNKNOWN, ESPRESSO_LOG),
)
_CONV_CONDITIONS = (
    Condition("dilations 1", _dilations_one, Verdict.FALLBACK, HOLLANCE),
    Condition("kernel <= 7 per axis", _kernel_le(7), Verdict.UNKNOWN, KERNEL_ISSUE),
    Condition("strides <= 2", _all_le("strides", 2), Verdict.UNKNOWN, ESPRESSO_LOG),
    Condition("float weights (not a constexpr_* quantized weight)", _weight_not_constexpr,
              Verdict.UNKNOWN, MATMUL_PLAN),
)


def _row(op_type: str, verdict: Verdict, reason: str, sources: Iterable[Source],
         conditions: Iterable[Condition] = ()) -> OpRule:
    return OpRule(op_type, verdict, reason, tuple(sources), tuple(conditions))


_ROWS: tuple[OpRule, ...] = (
    # Convolutions and matrix products: the ANE's core.
    _row("conv", Verdict.CONDITIONAL,
         "1x1 convs are how Apple's reference runs every projection on the ANE; a depthwise conv was "
         "run there too; dilated convs are reported not to; nothing public on kernels above 7 or "
         "strides above 2", (REFERENCE, DEPTHWISE_FORUM, HOLLANCE, KERNEL_ISSUE), _CONV_CONDITIONS),
    _row("conv_transpose", Verdict.CONDITIONAL,
         "deconvolution appeared to work on the ANE (neural-network era); large strides are undecided",
         (HOLLANCE,), _CONV_CONDITIONS),
    _row("linear", Verdict.CONDITIONAL,
         "measured ANE-resident in graphs big enough; Apple's reference prefers 1x1 convs",
         (MATMUL_PLAN, ARTICLE),
         (Condition("float weights (not a constexpr_* quantized weight)", _weight_not_constexpr,
                    Verdict.UNKNOWN, MATMUL_PLAN),)),
    _row("matmul", Verdict.CONDITIONAL, "measured ANE-resident in graphs big enough",
         (MATMUL_PLAN,), ()),
    _row("einsum", Verdict.SUPPORTED, "Apple's reference attention is einsum on rank-4 tensors", (REFERENCE,)),
    # Elementwise.
    _row("add", Verdict.CONDITIONAL,
         "elementwise ops run on the ANE (residual adds in Apple's reference); Core ML's log restricts "
         "broadcasting to constant vectors", (REFERENCE, ESPRESSO_LOG, HOLLANCE), _ELEMENTWISE_CONDITIONS),
    _row("sub", Verdict.CONDITIONAL, "as add", (REFERENCE, ESPRESSO_LOG, HOLLANCE), _ELEMENTWISE_CONDITIONS),
    _row("mul", Verdict.CONDITIONAL,
         "as add; the log's failing case was exactly a mul of CxHxW by a runtime Cx1x1",
         (ESPRESSO_LOG, HOLLANCE), _ELEMENTWISE_CONDITIONS),
    # Activations.
    _row("relu", Verdict.SUPPORTED, "the FFN of Apple's reference", (REFERENCE,)),
    _row("gelu", Verdict.CONDITIONAL,
         "the exact GELU of distilbert's FFN, kept by Apple's ANE distilbert; other modes undecided",
         (REFERENCE, ARTICLE),
         (Condition("mode EXACT", _attr_in("mode", ("EXACT",)), Verdict.UNKNOWN, REFERENCE),)),
    _row("softmax", Verdict.CONDITIONAL,
         "softmax over dim 1 of rank-4 tensors in Apple's reference attention; other axes undecided",
         (REFERENCE,),
         (Condition("axis 1 of a rank-4 tensor", _axis_is_channel("axis"), Verdict.UNKNOWN, REFERENCE),)),
    _row("clip", Verdict.UNKNOWN,
         "LayerNormANE's optional clamp (off in Apple's distilbert) is the only related use; no "
         "placement is public", (REFERENCE,)),
    _row("rsqrt", Verdict.UNKNOWN,
         "LayerNormANE's rsqrt is fused into layer_norm by coremltools, so no public source covers a "
         "standalone rsqrt", (REFERENCE, LAYERNORM_PASS)),
    # Normalisation.
    _row("layer_norm", Verdict.CONDITIONAL,
         "Apple's LayerNormANE normalises over the channel axis of (B, C, 1, S), which coremltools "
         "emits as layer_norm axes [1] on rank 4; other axes are undecided, and eps must survive fp16",
         (REFERENCE, LAYERNORM_PASS),
         (Condition("axes [1] (channels) of a rank-4 tensor", _axis_is_channel("axes"), Verdict.UNKNOWN,
                    LAYERNORM_PASS),
          Condition("epsilon >= 1e-7 (1e-12 'is not friendly with the float16 precision')",
                    _epsilon_fp16_friendly, Verdict.UNKNOWN, REFERENCE))),
    _row("batch_norm", Verdict.UNKNOWN,
         "coremltools folds constant per-channel affines into batch_norm; no source on its placement",
         (MIL_OPS,)),
    _row("reduce_mean", Verdict.UNKNOWN,
         "LayerNormANE's channel means are fused into layer_norm; a spatial mean resembles global "
         "pooling, whose kernels above 13 were unsupported (Core ML's log)", (LAYERNORM_PASS, ESPRESSO_LOG)),
    _row("avg_pool", Verdict.CONDITIONAL, "pooling runs on the ANE with kernels <= 13 and strides <= 2",
         (ESPRESSO_LOG, HOLLANCE),
         (Condition("kernel <= 13", _all_le("kernel_sizes", 13), Verdict.FALLBACK, ESPRESSO_LOG),
          Condition("strides <= 2", _all_le("strides", 2), Verdict.FALLBACK, ESPRESSO_LOG))),
    _row("max_pool", Verdict.CONDITIONAL, "as avg_pool", (ESPRESSO_LOG, HOLLANCE),
         (Condition("kernel <= 13", _all_le("kernel_sizes", 13), Verdict.FALLBACK, HOLLANCE),
          Condition("strides <= 2", _all_le("strides", 2), Verdict.FALLBACK, HOLLANCE))),
    # Resampling.
    _row("upsample_bilinear", Verdict.CONDITIONAL,
         "upsampling by 2 runs on the ANE; larger factors were reported unsupported, in Core ML's own "
         "log ('only scaling factor of 2 is supported', neural-network era; unverified for ML programs)",
         (ESPRESSO_LOG, HOLLANCE),
         (Condition("scale factors 1 or 2", _upsample_factors_le_2, Verdict.FALLBACK, ESPRESSO_LOG),)),
    _row("upsample_nearest_neighbor", Verdict.CONDITIONAL, "as upsample_bilinear", (ESPRESSO_LOG, HOLLANCE),
         (Condition("scale factors 1 or 2", _upsample_factors_le_2, Verdict.FALLBACK, ESPRESSO_LOG),)),
    _row("resize_bilinear", Verdict.UNKNOWN, "no public source on its placement", (MIL_OPS,)),
    _row("pixel_shuffle", Verdict.UNKNOWN, "no public source on its placement", (MIL_OPS,)),
    # Layout.
    _row("reshape", Verdict.CONDITIONAL,
         "static reshapes keep a model on the NE; a fully dynamic reshape is a dynamic layer the NE "
         "does not support", (FLEXIBLE_FAQ, ARTICLE),
         (Condition("static target shape", _shape_is_const, Verdict.FALLBACK, FLEXIBLE_FAQ),)),
    _row("transpose", Verdict.SUPPORTED,
         "Apple's reference transposes rank-4 tensors (a memory copy, to be minimised)", (REFERENCE, ARTICLE)),
    _row("split", Verdict.SUPPORTED, "Apple's reference splits rank-4 tensors along channels", (REFERENCE,)),
    _row("concat", Verdict.CONDITIONAL,
         "Apple's reference concatenates along channels; the old ND concat fell off the ANE",
         (REFERENCE, HOLLANCE),
         (Condition("axis 1 of a rank-4 tensor", _axis_is_channel("axis"), Verdict.UNKNOWN, REFERENCE),)),
    _row("slice_by_index", Verdict.UNKNOWN,
         "no public source (Apple's reference splits instead of slicing)", (REFERENCE,)),
    _row("expand_dims", Verdict.UNKNOWN,
         "seen off the ANE only on integer indices (after topk); nothing public for float data",
         (RFDETR_PLAN,)),
    _row("squeeze", Verdict.UNKNOWN, "no public source on its placement", (MIL_OPS,)),
    _row("cast", Verdict.UNKNOWN,
         "the NE computes in fp16, so fp32 I/O needs casts; where Core ML runs them is not public",
         (TYPED_EXECUTION,)),
    # Indexing and control: what is reported to leave the ANE.
    _row("topk", Verdict.FALLBACK, "measured off the ANE by MLComputePlan", (RFDETR_PLAN,)),
    _row("gather", Verdict.UNKNOWN,
         "sources disagree: 'gather op resides' on the ANE (coremltools) vs. gather does not work there "
         "(hollance, neural-network era)", (TORCH_FRONTEND, HOLLANCE)),
    _row("gather_along_axis", Verdict.UNKNOWN,
         "measured off the ANE on topk's integer indices; nothing public for other uses", (RFDETR_PLAN,)),
    _row("tile", Verdict.UNKNOWN, "as gather_along_axis", (RFDETR_PLAN,)),
    _row("scatter", Verdict.FALLBACK, "'scatter op falls off ANE' (coremltools)", (TORCH_FRONTEND,)),
    _row("scatter_nd", Verdict.FALLBACK, "'mb.scatter_nd ... falls off ANE' (coremltools)", (TORCH_FRONTEND,)),
    _row("lstm", Verdict.FALLBACK, "RNN layers do not run on the ANE", (HOLLANCE, LSTM_ISSUE)),
    _row("gru", Verdict.FALLBACK, "RNN layers do not run on the ANE", (HOLLANCE,)),
    _row("rnn", Verdict.FALLBACK, "RNN layers do not run on the ANE", (HOLLANCE,)),
)

ANE_TABLE: Mapping[str, OpRule] = {row.op_type: row for row in _ROWS}
"""MIL op type -> :class:`OpRule` (verdict, reason, sources, conditions)."""

# Compile-time values, not computation: not judged (the ops that read them are).
SKIPPED_OP_TYPES = frozenset({"const"})

_NOT_IN_TABLE = "not in the table: no public source found on where it runs"


def rule_for(op_type: str) -> OpRule | None:
    """The table's row for ``op_type`` (None: not in the table, i.e. unknown)."""
    return ANE_TABLE.get(op_type)


@dataclass(frozen=True)
class OpVerdict:
    """One op with its verdict and why (failed or unchecked conditions included)."""

    op: OpInfo
    verdict: Verdict
    reasons: tuple[str, ...]
    sources: tuple[str, ...]


def judge(op: OpInfo) -> OpVerdict:
    """The verdict of one op: its row's, worsened by any failed condition (general ones included)."""
    rule = rule_for(op.op_type)
    verdict = rule.verdict if rule is not None else Verdict.UNKNOWN
    reasons = [rule.reason if rule is not None else _NOT_IN_TABLE]
    sources = [s.url for s in rule.sources] if rule is not None else []
    for condition in (*(rule.conditions if rule is not None else ()), *GENERAL_CONDITIONS):
        met = condition.check(op)
        if met is False:
            if _SEVERITY[condition.on_failure] > _SEVERITY[verdict]:
                verdict = condition.on_failure
            reasons.append(f"fails: {condition.text} -> {condition.on_failure.value}")
            sources.append(condition.source.url)
        elif met is None and rule is not None and condition in rule.conditions:
            reasons.append(f"not checked: {condition.text}")
    return OpVerdict(op, verdict, tuple(reasons), tuple(dict.fromkeys(sources)))


@dataclass(frozen=True)
class OpTypeSummary:
    """All ops of one type: count, verdict counts, the row's reason and the failures seen."""

    op_type: str
    count: int
    verdicts: Mapping[Verdict, int]
    reason: str
    failures: tuple[str, ...]
    sources: tuple[str, ...]

    @property
    def worst(self) -> Verdict:
        """The worst verdict among these ops."""
        return max(self.verdicts, key=lambda v: _SEVERITY[v])


@dataclass(frozen=True)
class AneReport:
    """:func:`ane_report`'s result: a verdict per op, and summaries."""

    ops: tuple[OpVerdict, ...]
    skipped: int = 0

    @property
    def totals(self) -> dict[str, int]:
        """Number of ops per verdict (every verdict listed, zeros included)."""
        counts = Counter(v.verdict for v in self.ops)
        return {v.value: counts.get(v, 0) for v in Verdict}

    @property
    def unsupported(self) -> list[OpVerdict]:
        """The ops in the ``cpu/gpu fallback`` class."""
        return [v for v in self.ops if v.verdict is Verdict.FALLBACK]

    @property
    def unknown(self) -> list[OpVerdict]:
        """The ops no public source decides."""
        return [v for v in self.ops if v.verdict is Verdict.UNKNOWN]

    @property
    def flagged(self) -> list[OpVerdict]:
        """Every op not shown to run on the ANE (fallback and unknown)."""
        return [v for v in self.ops if v.verdict in (Verdict.FALLBACK, Verdict.UNKNOWN)]

    def by_type(self) -> list[OpTypeSummary]:
        """One summary per op type, worst verdict first, then most frequent."""
        grouped: dict[str, list[OpVerdict]] = {}
        for v in self.ops:
            grouped.setdefault(v.op.op_type, []).append(v)
        out = []
        for op_type, items in grouped.items():
            rule = rule_for(op_type)
            failures = tuple(dict.fromkeys(r for v in items for r in v.reasons[1:] if r.startswith("fails:")))
            out.append(OpTypeSummary(
                op_type, len(items), dict(Counter(v.verdict for v in items)),
                rule.reason if rule is not None else _NOT_IN_TABLE, failures,
                tuple(dict.fromkeys(s for v in items for s in v.sources)),
            ))
        out.sort(key=lambda s: (-_SEVERITY[s.worst], -s.count, s.op_type))
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: totals, per-type summaries, the flagged op names."""
        return {
            "totals": self.totals,
            "skipped_const_ops": self.skipped,
            "by_type": [{"op_type": s.op_type, "count": s.count, "worst": s.worst.value,
                         "verdicts": {k.value: n for k, n in s.verdicts.items()}, "reason": s.reason,
                         "failures": list(s.failures), "sources": list(s.sources)} for s in self.by_type()],
            "unsupported": [v.op.name or v.op.op_type for v in self.unsupported],
            "unknown": [v.op.name or v.op.op_type for v in self.unknown],
        }


def ane_report(ops: Iterable[OpInfo]) -> AneReport:
    """Judge every op against :data:`ANE_TABLE` and :data:`GENERAL_CONDITIONS`.

    ``const`` ops (weights and constants) are counted as skipped, not judged.
    """
    judged, skipped = [], 0
    for op in ops:
        if op.op_type in SKIPPED_OP_TYPES:
            skipped += 1
            continue
        judged.append(judge(op))
    return AneReport(tuple(judged), skipped)


def format_ane_report(report: AneReport, sources: bool = False) -> str:
    """Terminal table: op type, count, verdicts, failed conditions; then the totals.

    With ``sources``, each op type's reason and source URLs follow the table.
    """
    rows = []
    for s in report.by_type():
        ordered = sorted(s.verdicts.items(), key=lambda kv: -_SEVERITY[kv[0]])
        verdicts = ", ".join(f"{n} {v.value}" for v, n in ordered)
        rows.append([s.op_type, s.count, verdicts, "; ".join(f.removeprefix("fails: ") for f in s.failures) or "-"])
    text = format_table(["op type", "ops", "verdict", "failed conditions"], rows)
    totals = ", ".join(f"{n} {v}" for v, n in report.totals.items())
    text += f"\n\n{len(report.ops)} ops ({report.skipped} const skipped): {totals}"
    if sources:
        text += "\n" + "\n".join(f"\n{s.op_type}: {s.reason}\n  " + "\n  ".join(s.sources or ("(none)",))
                                 for s in report.by_type())
    return text


# ---- MIL programs --------------------------------------------------------------------------

# Inputs kept as attributes when known at compile time and small (weights are not).
_MAX_ATTRIBUTE_SIZE = 16


def _iter_ops(block: Any) -> Iterator[Any]:
    for op in block.operations:
        yield op
        for inner in getattr(op, "blocks", ()) or ():
            yield from _iter_ops(inner)


def _shape(var: Any) -> tuple[int | None, ...]:
    out: list[int | None] = []
    for d in getattr(var, "shape", ()) or ():
        try:
            out.append(int(d))
        except TypeError:  # a symbolic (flexible) dimension
            out.append(None)
    return tuple(out)


def _python_value(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _op_info(op: Any, types: Any) -> OpInfo:
    attributes: dict[str, Any] = {}
    input_shapes: dict[str, tuple[int | None, ...]] = {}
    const_inputs: set[str] = set()
    producers: dict[str, str] = {}
    for name, var in op.inputs.items():
        if isinstance(var, (list, tuple)):  # variadic inputs (concat's values): shapes only
            input_shapes[name] = _shape(var[0]) if var else ()
            continue
        input_shapes[name] = _shape(var)
        if var.op is not None:
            producers[name] = var.op.op_type
        value = var.val
        if value is not None:
            const_inputs.add(name)
            size = getattr(value, "size", 1)
            if size <= _MAX_ATTRIBUTE_SIZE:
                attributes[name] = _python_value(value)
    if op.op_type in ("conv", "conv_transpose") and "weight" in input_shapes:
        attributes.setdefault("kernel_size", [d for d in input_shapes["weight"][2:]])
    out = op.outputs[0] if op.outputs else None
    dtype = None
    shape: tuple[int | None, ...] | None = None
    if out is not None:
        try:
            dtype = types.builtin_to_string(out.dtype)
        except Exception:  # a non-tensor output type (list, tuple): leave undecided
            dtype = None
        shape = _shape(out)
    return OpInfo(op.op_type, op.name, attributes, len(shape) if shape is not None else None, dtype, shape,
                  input_shapes, frozenset(const_inputs), producers)


def ops_from_mil(function: Any) -> list[OpInfo]:
    """:class:`OpInfo` for every op of a coremltools MIL ``Function`` (ops in nested blocks too).

    ``function`` is e.g. ``mlmodel._mil_program.functions["main"]`` or the program loaded back
    from a saved ``.mlpackage`` (docs/TOOLCHAIN.md). ``const`` ops are included; :func:`ane_report`
    skips them.
    """
    from coremltools.converters.mil.mil import types

    return [_op_info(op, types) for op in _iter_ops(function)]
