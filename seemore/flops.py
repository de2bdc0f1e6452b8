"""Multiply-accumulate (MAC) counting, fvcore-style.

Conventions (those of fvcore's default op handles, which SR papers use for their "FLOPs"/"MACs" columns;
one fused multiply-add counts as one MAC):

* convolution: ``batch * prod(weight.shape) * prod(output spatial)`` (transposed: input spatial); bias free;
* linear / matmul / mm / bmm / addmm / einsum: one MAC per product term of the contraction;
* bilinear upsampling and ``grid_sample``: 4 per output element; nearest upsampling: 1 per output element;
* adaptive average pooling: 1 per input element;
* layer / group / instance norm: 5 per input element with an affine weight, else 4; batch norm in eval
  mode 2 (affine) or 1, in training mode like the other norms;
* everything else (elementwise arithmetic, activations, reductions such as ``mean``, reshapes) is free.

Counting happens in a :class:`torch.overrides.TorchFunctionMode`, i.e. at the level of
``torch.nn.functional`` calls, which is the level fvcore's JIT trace sees (``aten::_convolution``,
``aten::adaptive_avg_pool2d``, ...).
Below that level PyTorch rewrites some ops (``adaptive_avg_pool2d`` to 1x1 becomes ``mean``), which would drop
their cost. The same mode also sees the ``aten`` ops of an exported graph, and :func:`macs_by_node` counts an
FX graph from its recorded shapes without running it.

Given shapes instead of tensors, :func:`profile_macs` runs the model on the ``meta`` device (shapes only, no
arithmetic), so counting a 1280x720 output takes well under a second.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

# A handler gets the positional args, keyword args and the output of one call and returns its MACs.
Handler = Callable[[Sequence[Any], Mapping[str, Any], Any], int]


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any = None) -> Any:
    """Argument ``name`` whether it was passed by position or by keyword."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _first_tensor(out: Any) -> Tensor:
    """The first tensor of an op's output (norm ops return tuples at the aten level)."""
    return out[0] if isinstance(out, (tuple, list)) else out


def _conv_handler(transposed_index: int | None, always_transposed: bool = False) -> Handler:
    """Convolution: every weight element is used once per output (or, transposed, input) position."""

    def count(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> int:
        x, w = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
        transposed = always_transposed or (
            transposed_index is not None and bool(_arg(args, kwargs, transposed_index, "transposed", False))
        )
        # Unbatched inputs have one dimension fewer than the weight.
        batch = x.shape[0] if x.dim() == w.dim() else 1
        spatial = (x if transposed else _first_tensor(out)).shape[-(w.dim() - 2) :]
        return batch * math.prod(w.shape) * math.prod(spatial)

    return count


def _contraction_handler(left_index: int, left_name: str) -> Handler:
    """mm / bmm / matmul / addmm / linear: every output element is a dot product of length K."""

    def count(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> int:
        left = _arg(args, kwargs, left_index, left_name)
        return _first_tensor(out).numel() * left.shape[-1]

    return count


def _einsum(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> int:
    """einsum, counted as the naive loop nest: the product of the sizes of all distinct indices."""
    equation = args[0].replace(" ", "")
    # torch.einsum takes the operands variadically, aten.einsum as one list.
    operands = args[1] if isinstance(args[1], (list, tuple)) else args[1:]
    sizes: dict[str, int] = {}
    for term, operand in zip(equation.split("->")[0].split(","), operands):
        letters = [c for c in term if c.isalpha()]
        # An ellipsis covers the leading dimensions not named by letters.
        named = operand.shape[operand.dim() - len(letters) :]
        sizes.update(zip(letters, named))
        if "..." in term:
            sizes["..."] = max(sizes.get("...", 1), math.prod(operand.shape[: operand.dim() - len(letters)]))
    return math.prod(sizes.values())


def _per_output(scale: int) -> Handler:
    """``scale`` MACs per output element (bilinear 4, nearest 1)."""
    return lambda args, kwargs, out: scale * _first_tensor(out).numel()


def _per_input(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> int:
    """One MAC per input element (adaptive average pooling)."""
    return _arg(args, kwargs, 0, "input").numel()


def _interpolate(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> int:
    """``F.interpolate``: only the 2-D bilinear and nearest modes have an fvcore cost."""
    x = _arg(args, kwargs, 0, "input")
    mode = _arg(args, kwargs, 3, "mode", "nearest")
    if x.dim() != 4:
        return 0
    return {"bilinear": 4, "nearest": 1}.get(mode, 0) * out.numel()


def _norm_handler(weight_index: int, weight_name: str = "weight") -> Handler:
    """Layer / group / instance norm: 5 MACs per element with an affine weight, 4 without."""

    def count(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> int:
        affine = _arg(args, kwargs, weight_index, weight_name) is not None
        return _arg(args, kwargs, 0, "input").numel() * (5 if affine else 4)

    return count


def _batch_norm_handler(weight_index: int, training_index: int) -> Handler:
    """Batch norm: a per-channel affine map at inference (2 or 1 per element), a full norm in training."""

    def count(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> int:
        affine = _arg(args, kwargs, weight_index, "weight") is not None
        training = bool(_arg(args, kwargs, training_index, "training", False))
        per_element = (5 if affine else 4) if training else (2 if affine else 1)
        return _arg(args, kwargs, 0, "input").numel() * per_element

    return count


def _batch_norm_no_training(args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> int:
    """``_native_batch_norm_legit_no_training``: inference batch norm (2 per element with affine)."""
    return _arg(args, kwargs, 0, "input").numel() * (2 if _arg(args, kwargs, 1, "weight") is not None else 1)


# Python-level callables, matched by identity.
_FUNCTION_HANDLERS: dict[Any, tuple[str, Handler]] = {
    torch.conv1d: ("conv", _conv_handler(None)),
    torch.conv2d: ("conv", _conv_handler(None)),
    torch.conv3d: ("conv", _conv_handler(None)),
    torch.conv_transpose1d: ("conv", _conv_handler(None, always_transposed=True)),
    torch.conv_transpose2d: ("conv", _conv_handler(None, always_transposed=True)),
    torch.conv_transpose3d: ("conv", _conv_handler(None, always_transposed=True)),
    F.linear: ("linear", _contraction_handler(0, "input")),
    torch.matmul: ("matmul", _contraction_handler(0, "input")),
    Tensor.matmul: ("matmul", _contraction_handler(0, "input")),
    Tensor.__matmul__: ("matmul", _contraction_handler(0, "input")),
    torch.mm: ("matmul", _contraction_handler(0, "input")),
    Tensor.mm: ("matmul", _contraction_handler(0, "input")),
    torch.bmm: ("matmul", _contraction_handler(0, "input")),
    Tensor.bmm: ("matmul", _contraction_handler(0, "input")),
    torch.addmm: ("matmul", _contraction_handler(1, "mat1")),
    Tensor.addmm: ("matmul", _contraction_handler(1, "mat1")),
    torch.einsum: ("einsum", _einsum),
    F.interpolate: ("upsample", _interpolate),
    F.adaptive_avg_pool2d: ("adaptive_avg_pool2d", _per_input),
    F.grid_sample: ("grid_sample", _per_output(4)),
    F.layer_norm: ("norm", _norm_handler(2)),
    F.group_norm: ("norm", _norm_handler(2)),
    F.instance_norm: ("norm", _norm_handler(3)),
    F.batch_norm: ("norm", _batch_norm_handler(3, 5)),
}

# aten ops (exported graphs), matched by overload-packet name so every overload is covered.
_ATEN_HANDLERS: dict[str, tuple[str, Handler]] = {
    "conv1d": ("conv", _conv_handler(None)),
    "conv2d": ("conv", _conv_handler(None)),
    "conv3d": ("conv", _conv_handler(None)),
    "conv_transpose1d": ("conv", _conv_handler(None, always_transposed=True)),
    "conv_transpose2d": ("conv", _conv_handler(None, always_transposed=True)),
    "conv_transpose3d": ("conv", _conv_handler(None, always_transposed=True)),
    "convolution": ("conv", _conv_handler(6)),
    "_convolution": ("conv", _conv_handler(6)),
    "linear": ("linear", _contraction_handler(0, "input")),
    "matmul": ("matmul", _contraction_handler(0, "self")),
    "mm": ("matmul", _contraction_handler(0, "self")),
    "bmm": ("matmul", _contraction_handler(0, "self")),
    "addmm": ("matmul", _contraction_handler(1, "mat1")),
    "einsum": ("einsum", _einsum),
    "upsample_bilinear2d": ("upsample", _per_output(4)),
    "upsample_nearest2d": ("upsample", _per_output(1)),
    "adaptive_avg_pool2d": ("adaptive_avg_pool2d", _per_input),
    "_adaptive_avg_pool2d": ("adaptive_avg_pool2d", _per_input),
    "grid_sampler": ("grid_sample", _per_output(4)),
    "grid_sampler_2d": ("grid_sample", _per_output(4)),
    "layer_norm": ("norm", _norm_handler(2)),
    "native_layer_norm": ("norm", _norm_handler(2)),
    "group_norm": ("norm", _norm_handler(2)),
    "native_group_norm": ("norm", _norm_handler(1)),
    "instance_norm": ("norm", _norm_handler(1)),
    "batch_norm": ("norm", _batch_norm_handler(1, 5)),
    "native_batch_norm": ("norm", _batch_norm_handler(1, 5)),
    "_native_batch_norm_legit": ("norm", _batch_norm_handler(1, 5)),
    "_native_batch_norm_legit_no_training": ("norm", _batch_norm_no_training),
}


def _lookup(func: Any) -> tuple[str, Handler] | None:
    """The (category, handler) that counts ``func``, or None if it is free."""
    if isinstance(func, torch._ops.OpOverload):
        if func.namespace != "aten":
            return None
        return _ATEN_HANDLERS.get(func.overloadpacket.__name__)
    try:
        return _FUNCTION_HANDLERS.get(func)
    except TypeError:  # unhashable callables are never counted
        return None


@dataclass
class MacCount:
    """Result of one count: the total, and the same MACs split by op category and by module."""

    total: int = 0
    by_operator: Counter[str] = field(default_factory=Counter)
    # Hierarchical: a module's entry includes its children ("" is the whole model).
    by_module: Counter[str] = field(default_factory=Counter)

    def module(self, prefix: str) -> int:
        """MACs of the module named ``prefix`` (0 if it ran no counted op)."""
        return self.by_module.get(prefix, 0)


class MacCounter(TorchFunctionMode):
    """Context manager that counts the MACs of every torch call made inside it.

    With ``module`` given, MACs are also attributed to the submodules whose ``__call__`` is running.
    """

    def __init__(self, module: nn.Module | None = None) -> None:
        super().__init__()
        self.result = MacCount()
        self._module = module
        self._stack: list[str] = []
        self._hooks: list[Any] = []

    def __enter__(self) -> "MacCounter":
        if self._module is not None:
            for name, sub in self._module.named_modules():
                self._hooks.append(sub.register_forward_pre_hook(self._push(name)))
                # always_call: keep the stack right even when a forward raises.
                self._hooks.append(sub.register_forward_hook(self._pop, always_call=True))
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._stack.clear()
        return super().__exit__(*exc)

    def _push(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            self._stack.append(name)

        return hook

    def _pop(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._stack:
            self._stack.pop()

    def add(self, category: str, macs: int) -> None:
        """Record ``macs`` for the op category and every module on the call stack."""
        if macs == 0:
            return
        self.result.total += macs
        self.result.by_operator[category] += macs
        for name in self._stack:
            self.result.by_module[name] += macs

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        # Inside this method the mode is disabled, so ops called by func (e.g. interpolate's kernel) are not
        # counted a second time.
        out = func(*args, **kwargs)
        entry = _lookup(func)
        if entry is not None:
            category, handler = entry
            self.add(category, int(handler(args, kwargs, out)))
        return out


def _as_input(spec: Tensor | Sequence[int]) -> Tensor:
    """A tensor as is; a shape becomes an empty meta tensor of that shape."""
    if isinstance(spec, Tensor):
        return spec
    return torch.empty(tuple(int(d) for d in spec), device="meta")


def _run_on_meta(model: nn.Module, inputs: Sequence[Tensor]) -> Any:
    """Run ``model`` with meta stand-ins for its parameters and buffers (its own weights stay untouched)."""
    state = {
        name: torch.empty_like(t, device="meta")
        for name, t in list(model.named_parameters()) + list(model.named_buffers())
    }
    return torch.func.functional_call(model, state, tuple(inputs))


def profile_macs(model: nn.Module, *inputs: Tensor | Sequence[int]) -> MacCount:
    """Count the MACs of ``model(*inputs)`` with a per-module and per-op breakdown.

    ``inputs`` are tensors, or shapes such as ``(1, 3, 180, 320)``. When every input is a shape (or a meta
    tensor) the model runs on the meta device: shapes are propagated, nothing is computed.
    """
    tensors = [_as_input(spec) for spec in inputs]
    with torch.no_grad(), MacCounter(model) as counter:
        if all(t.device.type == "meta" for t in tensors):
            _run_on_meta(model, tensors)
        else:
            model(*tensors)
    return counter.result


def count_macs(model: nn.Module, input_shape: Tensor | Sequence[int]) -> int:
    """Total MACs of ``model`` on one input (a tensor or a shape such as ``(1, 3, 180, 320)``)."""
    return profile_macs(model, input_shape).total


def macs_by_node(graph_module: torch.fx.GraphModule) -> dict[str, int]:
    """MACs of each node of an FX / ``torch.export`` graph, from the shapes recorded in ``node.meta["val"]``.

    Nothing is executed; nodes without a counted op or without shape metadata are left out. Useful to
    split a graph's cost, e.g. into the part a backend delegates and the part it does not. Count the graph
    ``torch.export.export`` returns: after ``run_decompositions()`` a 1x1 ``adaptive_avg_pool2d`` has become a
    ``mean``, which fvcore does not count (SeemoRe's routers then lose ``C * H * W`` MACs each).
    """

    def value(a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            return a.meta.get("val")
        if isinstance(a, (list, tuple)):
            return type(a)(value(x) for x in a)
        return a

    out: dict[str, int] = {}
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or "val" not in node.meta:
            continue
        entry = _lookup(node.target)
        if entry is None:
            continue
        args, kwargs = value(node.args), {k: value(v) for k, v in node.kwargs.items()}
        macs = int(entry[1](args, kwargs, node.meta["val"]))
        if macs:
            out[node.name] = macs
    return out
