"""Backend-specific adjustments of an INT8 torch reference, by name.

A lowered INT8 artifact is compared with the fake-quantized program it came from. Where a
backend stores a quantity differently from ``convert_pt2e`` (XNNPACK keeps conv biases as int32),
the program is adjusted the same way before lowering, so that it simulates the artifact. Each
backend declares its adjustment by name (:data:`seemore.export.targets.TARGETS`); the contract
records it; the parity harness applies exactly the recorded one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from seemore.quantize.quantizers import QuantizeError


def _attr(model: nn.Module, target: str) -> Any:
    """The object a ``get_attr`` node refers to (targets may be dotted paths)."""
    obj: Any = model
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _is_op(node: object, name: str) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and str(node.target).startswith(name)


def snap_biases_to_int32(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Round the fp32 biases of quantized convs/linears onto XNNPACK's int32 bias grid, in place.

    XNNPACK stores the bias of an int8 conv as int32 with scale ``input_scale *
    weight_scale`` (per channel), while ``convert_pt2e`` keeps it in fp32. That rounding
    (at most half a step of that tiny scale) flips the int8 rounding of a few outputs per
    layer, and the flips spread through the network, so the ``.pte`` and its torch model
    drift apart by as much as they both differ from fp32. With the biases pre-rounded
    exactly as XNNPACK rounds them, the torch model is a faithful simulation of the
    ``.pte``; the change to the model is below a thousandth of an activation step.
    """
    for node in model.graph.nodes:
        if node.op != "call_function" or not any(k in str(node.target) for k in ("conv2d", "convolution", "linear")):
            continue
        if len(node.args) < 3 or not isinstance(node.args[2], torch.fx.Node) or node.args[2].op != "get_attr":
            continue
        act, weight, bias_node = node.args[0], node.args[1], node.args[2]
        if not _is_op(act, "quantized_decomposed.dequantize_per_tensor"):
            continue
        if _is_op(weight, "quantized_decomposed.dequantize_per_channel"):
            w_scale = _attr(model, weight.args[1].target)
        elif _is_op(weight, "quantized_decomposed.dequantize_per_tensor"):
            w_scale = torch.tensor(float(weight.args[1]))
        else:
            continue
        bias = _attr(model, bias_node.target)
        scale = (w_scale * float(act.args[1])).to(torch.float32).expand(bias.shape[0]).contiguous()
        zero = torch.zeros(bias.shape[0], dtype=torch.int64)
        q = torch.ops.quantized_decomposed.quantize_per_channel(
            bias.detach().float(), scale, zero, 0, -(2**31), 2**31 - 1, torch.int32
        )
        snapped = torch.ops.quantized_decomposed.dequantize_per_channel(q, scale, zero, 0, -(2**31), 2**31 - 1, torch.int32)
        with torch.no_grad():
            bias.copy_(snapped.to(bias.dtype))
    return model


ADJUSTMENTS: dict[str, Callable[[torch.fx.GraphModule], torch.fx.GraphModule]] = {
    "int32-bias-grid": snap_biases_to_int32,
}


def adjust_reference(program: torch.fx.GraphModule, name: str | None) -> torch.fx.GraphModule:
    """``program`` with the named adjustment applied in place (``None``: unchanged)."""
    if name is None:
        return program
    if name not in ADJUSTMENTS:
        raise QuantizeError(f"unknown reference adjustment {name!r}; known: {', '.join(ADJUSTMENTS)}")
    return ADJUSTMENTS[name](program)
