"""Per-op cost of a program: work, bytes moved and op class, the estimator's input.

An op's *work* is its multiply-accumulates for the MAC-bound classes (``conv``, ``dwconv``,
``matmul``; :mod:`seemore.flops` conventions), its input elements for a ``reduction`` (each is
read and combined once) and its output elements for the others (one arithmetic or copy per
element). *Bytes* are what it reads and writes at the artifact's
precision: activations and weights at 4 (fp32), 2 (fp16) or 1 (int8) bytes per element. Pure
views (``view``, ``unsqueeze``, ...) move nothing and are left out; quantize / dequantize pairs
of an INT8 program fold into the int8 kernels around them and are left out too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

# The op classes, each with its own effective rate in the estimator.
OP_CLASSES: tuple[str, ...] = ("conv", "dwconv", "matmul", "elementwise", "reduction", "resize", "movement")
MAC_CLASSES: frozenset[str] = frozenset({"conv", "dwconv", "matmul"})
BYTES_PER_ELEMENT: dict[str, int] = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class OpCost:
    """One op: its class, work (MACs or elements, see the module doc) and bytes moved."""

    name: str
    op_class: str
    work: int
    bytes: int

    def __post_init__(self) -> None:
        if self.op_class not in OP_CLASSES:
            raise ValueError(f"unknown op class {self.op_class!r} (known: {', '.join(OP_CLASSES)})")


@dataclass(frozen=True)
class ProgramCost:
    """The ops of one program at one input size and precision."""

    ops: tuple[OpCost, ...]
    precision: str

    def work_by_class(self) -> dict[str, int]:
        """Total work per op class (MACs for the MAC classes, elements for the others)."""
        out = dict.fromkeys(OP_CLASSES, 0)
        for op in self.ops:
            out[op.op_class] += op.work
        return out

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the MAC-bound ops."""
        return sum(op.work for op in self.ops if op.op_class in MAC_CLASSES)

    @property
    def bytes(self) -> int:
        """Bytes read and written by every op."""
        return sum(op.bytes for op in self.ops)


# aten op name (without overload) -> class; names not listed are views or bookkeeping.
_CLASS_OF: dict[str, str] = {
    **dict.fromkeys(("linear", "mm", "addmm", "bmm", "matmul", "einsum", "baddbmm"), "matmul"),
    **dict.fromkeys((
        "add", "sub", "mul", "div", "gelu", "relu", "relu6", "hardtanh", "clamp", "clamp_min", "clamp_max",
        "sigmoid", "tanh", "exp", "log", "rsqrt", "sqrt", "pow", "minimum", "maximum", "where", "neg",
        "abs", "leaky_relu", "prelu", "hardswish", "silu", "square", "reciprocal", "erf", "gt", "ge", "lt",
        "le", "eq", "ne", "logical_and", "bitwise_and", "round", "floor", "ceil", "sign", "_to_copy", "fill",
    ), "elementwise"),
    **dict.fromkeys(("mean", "sum", "amax", "amin", "max", "min", "softmax", "_softmax", "log_softmax",
                     "var", "var_mean", "topk", "sort", "argmax", "cumsum", "native_layer_norm",
                     "layer_norm", "group_norm", "native_group_norm", "avg_pool2d", "max_pool2d",
                     "adaptive_avg_pool2d", "_adaptive_avg_pool2d"), "reduction"),
    **dict.fromkeys(("upsample_bilinear2d", "upsample_nearest2d", "grid_sampler_2d", "grid_sampler",
                     "upsample_bicubic2d", "_upsample_bilinear2d_aa"), "resize"),
    **dict.fromkeys(("cat", "concat", "permute", "transpose", "pixel_shuffle", "pixel_unshuffle", "clone",
                     "slice", "slice_copy", "split_with_sizes_copy", "constant_pad_nd", "pad", "repeat",
                     "index", "index_select", "gather", "copy", "stack", "flip", "roll", "narrow",
                     "select_copy", "permute_copy", "expand_copy", "alias_copy"), "movement"),
}
_QUANT_OPS = ("quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel",
              "choose_qparams")


def _op_name(target: Any) -> str:
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


def _tensors(value: Any) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def _elements(value: Any) -> int:
    return sum(t.numel() for t in _tensors(value))


def program_costs(graph_module: torch.fx.GraphModule, precision: str) -> ProgramCost:
    """The :class:`ProgramCost` of an FX / ``torch.export`` graph from its recorded shapes.

    The shapes are those the graph was captured with: count a program exported at the
    artifact's fixed shape (:func:`seemore.deploy.capture.export_program`), not one captured
    with dynamic sizes for calibration.

    MACs come from :func:`seemore.flops.macs_by_node` (the fvcore conventions the README's cost
    table uses); a convolution is ``dwconv`` when every group has one input channel.
    """
    from seemore.flops import macs_by_node

    if precision not in BYTES_PER_ELEMENT:
        raise ValueError(f"precision must be one of {', '.join(BYTES_PER_ELEMENT)}, not {precision!r}")
    size = BYTES_PER_ELEMENT[precision]
    macs = macs_by_node(graph_module)
    ops = []
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or "val" not in node.meta:
            continue
        name = _op_name(node.target)
        if any(q in str(node.target) for q in _QUANT_OPS):
            continue
        inputs = sum(_elements(a.meta.get("val")) for a in node.all_input_nodes)
        out = _elements(node.meta["val"])
        if name in ("convolution", "conv2d"):
            weight = node.args[1].meta.get("val") if isinstance(node.args[1], torch.fx.Node) else None
            groups = int(node.args[8]) if name == "convolution" and len(node.args) > 8 else \
                int(node.kwargs.get("groups", node.args[6] if len(node.args) > 6 else 1))
            depthwise = weight is not None and groups > 1 and weight.shape[1] == 1
            ops.append(OpCost(node.name, "dwconv" if depthwise else "conv", macs.get(node.name, 0),
                              (inputs + out) * size))
            continue
        op_class = _CLASS_OF.get(name)
        if op_class is None:
            continue  # a view, a getitem, a shape computation: no data moved
        work = macs.get(node.name, 0) if op_class in MAC_CLASSES else inputs if op_class == "reduction" else out
        ops.append(OpCost(node.name, op_class, work, (inputs + out) * size))
    return ProgramCost(tuple(ops), precision)
