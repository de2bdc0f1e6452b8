"""A reference evaluator of Core ML ``.mlpackage`` programs (MIL), so Core ML artifacts can be checked on Linux.

Core ML prediction exists only on macOS. A saved ML program, though, is a MIL program plus a
weight blob, both readable anywhere with coremltools: :func:`load_mil_program` reads them back
from the package and :meth:`MilProgram.run` evaluates the program op by op with torch (CPU, no
grad). Each op is implemented from its definition in the MIL op reference (the doc strings of
``coremltools.converters.mil.mil.ops.defs.iOS15`` ... ``iOS18``), for exactly the op versions a
program uses; an op type that is not implemented here is an error naming it
(:class:`MilError`), and the whole program is checked before anything runs.

Precision. Values are stored between ops in the dtype MIL declares for them: an fp16 tensor is a
``torch.float16`` tensor, an fp32 one ``torch.float32``. Every op computes in float32 from its
operands' values and rounds its result once to its declared output dtype (round to nearest even,
``Tensor.to(torch.float16)``). That is "fp16 storage, wider accumulation": the rounding a real
fp16 backend cannot avoid (each stored activation and weight is fp16), without any of the
rounding inside an op that a backend may or may not add. The ANE and the GPU accumulate in
their own ways (fp16 partial sums, different summation orders, approximated transcendentals),
so an fp16 program evaluated here is a reference for what the program computes, not a bitwise
prediction of a device: parity bounds for fp16 programs are PSNR bounds, not equality.
Compile-time ops (``const`` and the ``constexpr_*`` weight decompression ops) are evaluated
once, when the program is loaded.

Choices where the op reference leaves room (each enforced where the op is implemented):

* ``quantize`` rounds half to even (the reference says ``round``; coremltools' own constant
  folding uses ``numpy.around``, which rounds half to even);
* ``cast`` from a float type to an integer type is accepted only for integral values (the
  reference does not say how fractions round);
* ``conv`` with ``pad_type="same"`` puts an odd padding's extra row/column after the data, and
  ``"same_lower"`` before it (the reference's description of ``same_lower``);
* ``upsample_nearest_neighbor`` is accepted only for integer scale factors (the reference does
  not define which source pixel a fractional scale picks);
* ``slice_by_index`` with a begin/end mask on a negative stride takes the whole dimension, as a
  numpy slice with that bound omitted does;
* ``constexpr_lut_to_dense`` (iOS18) with vector palettization is accepted only with one LUT for
  the whole tensor (the reference does not define how LUT blocks and vectors combine);
* integer ``real_div``, ``pow`` and ``reduce_mean``, and reductions over an empty ``axes`` list,
  are errors (the reference defines no rounding or meaning for them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

WEIGHTS_DIR = Path("Data/com.apple.CoreML/weights")


class MilError(RuntimeError):
    """A package cannot be read or a MIL program cannot be evaluated here; one line."""


class TensorInfo(NamedTuple):
    """One input or output of a program: MIL name, shape, MIL dtype and spec feature type.

    Symbolic dims (enumerated or flexible shapes) are the spec's default shape where it declares
    one, else -1.
    """

    name: str
    shape: list[int]
    dtype: str  # MIL dtype string: "fp16", "fp32", "int32", ...
    feature_type: str  # "tensor" (multiArrayType) or "image" (imageType), from spec.description


class OpInfo(NamedTuple):
    """One MIL op for reporting: type, name and the dtypes and shapes of its outputs."""

    op_type: str
    name: str
    output_dtypes: tuple[str, ...]
    output_shapes: tuple[tuple[Any, ...], ...]


# --------------------------------------------------------------------------------------------
# dtypes


_TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "fp32": torch.float32,
    "fp64": torch.float64,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int16": torch.int16,
    # torch's uint16 has few kernels; every uint16 value fits int32.
    "uint16": torch.int32,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}
_INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-32768, 32767),
    "uint16": (0, 65535),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
_FLOAT_DTYPES = frozenset({"fp16", "fp32", "fp64"})


def _dtype_string(var: Any) -> str:
    """MIL dtype string of a var's (element) type, e.g. ``fp16``; ``str`` for string consts."""
    from coremltools.converters.mil.mil import types

    return str(types.builtin_to_string(var.dtype))


def _store(value: Tensor, dtype: str) -> Tensor:
    """``value`` in the storage dtype of MIL ``dtype`` (the one rounding of an op's result)."""
    target = _TORCH_DTYPES.get(dtype)
    if target is None:
        raise MilError(f"MIL dtype {dtype} is not supported as an op output")
    if value.dtype == target:
        return value
    if dtype in _INT_RANGES and value.is_floating_point():
        # Only exact integers may become integers: the op reference defines no rounding here.
        if not torch.equal(value, torch.trunc(value)):
            raise MilError(f"a non-integral float value would be stored as {dtype} (rounding is undefined)")
    return value.to(target)


# --------------------------------------------------------------------------------------------
# op arguments


class _Args:
    """The inputs of one op during a run: runtime tensors from the environment, consts from the program."""

    __slots__ = ("op", "version", "_env", "_f32")

    def __init__(self, op: Any, version: int, env: dict[str, Any], f32: dict[str, Tensor]) -> None:
        self.op = op
        self.version = version
        self._env = env
        # float32 copies by var name: the program's float weights, and during a run every
        # activation already widened once (a var read by several ops is converted only once).
        self._f32 = f32

    def has(self, name: str) -> bool:
        """Whether the op was given input ``name`` (optional inputs may be absent)."""
        return self.op.inputs.get(name) is not None

    def t(self, name: str) -> Tensor:
        """Input ``name`` as stored (MIL storage dtype)."""
        return self._env[self.op.inputs[name].name]

    def f(self, name: str) -> Tensor:
        """Input ``name`` in float32 (the compute dtype of every float op)."""
        var_name = self.op.inputs[name].name
        cached = self._f32.get(var_name)
        if cached is None:
            cached = self._f32[var_name] = self._env[var_name].float()
        return cached

    def tensors(self, name: str) -> list[Tensor]:
        """A tuple input (``concat``'s ``values``) as stored."""
        return [self._env[v.name] for v in self.op.inputs[name]]

    def val(self, name: str, default: Any = None) -> Any:
        """Input ``name`` as a Python/numpy value; ``default`` when absent. For inputs MIL requires const."""
        var = self.op.inputs.get(name)
        if var is None:
            return default
        value = self._env[var.name]
        if isinstance(value, Tensor):
            return value.numpy() if value.dim() else value.item()
        return value

    def ints(self, name: str, default: Sequence[int] | None = None) -> list[int] | None:
        """Input ``name`` as a list of ints (axes, strides, shapes)."""
        value = self.val(name)
        if value is None:
            return None if default is None else list(default)
        return [int(v) for v in np.atleast_1d(np.asarray(value)).reshape(-1)]

    def scalar(self, name: str, default: Any = None) -> Any:
        """Input ``name`` as one Python number, string or bool."""
        value = self.val(name, default)
        if isinstance(value, np.ndarray):
            value = value.reshape(-1)[0].item() if value.size == 1 else value
        elif isinstance(value, np.generic):
            value = value.item()
        return value

    def out_dtype(self, index: int = 0) -> str:
        """MIL dtype string of output ``index``."""
        return _dtype_string(self.op.outputs[index])

    def out_shape(self, index: int = 0) -> tuple[Any, ...]:
        """Declared (static) shape of output ``index``."""
        return tuple(self.op.outputs[index].shape)


Handler = Callable[[_Args], "Tensor | tuple[Tensor, ...]"]
_HANDLERS: dict[str, Handler] = {}


def _op(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for MIL op types ``names``."""

    def register(fn: Handler) -> Handler:
        for name in names:
            _HANDLERS[name] = fn
        return fn

    return register


def _norm_axis(axis: int, rank: int) -> int:
    """A possibly negative axis as an index in ``range(rank)``."""
    return axis + rank if axis < 0 else axis


def _along(param: Tensor, rank: int, axis: int | None) -> Tensor:
    """A scalar or per-``axis`` vector ``param`` shaped to broadcast against a rank-``rank`` tensor."""
    if param.dim() == 0 or param.dim() == rank:
        return param
    if param.dim() != 1 or axis is None:
        raise MilError(f"a parameter of shape {list(param.shape)} needs an axis to broadcast")
    shape = [1] * rank
    shape[_norm_axis(axis, rank)] = param.numel()
    return param.reshape(shape)


def _is_int_output(a: _Args) -> bool:
    return a.out_dtype() in _INT_RANGES


# --------------------------------------------------------------------------------------------
# elementwise


def _binary(fn: Callable[[Tensor, Tensor], Tensor], int_ok: bool = True) -> Handler:
    def handler(a: _Args) -> Tensor:
        if _is_int_output(a):
            if not int_ok:
                raise MilError(f"integer {a.op.op_type} is not defined by this evaluator")
            return fn(a.t("x").long(), a.t("y").long())
        return fn(a.f("x"), a.f("y"))

    return handler


for _name, _fn, _int_ok in (
    ("add", torch.add, True),
    ("sub", torch.sub, True),
    ("mul", torch.mul, True),
    ("real_div", torch.div, False),
    ("maximum", torch.maximum, True),
    ("minimum", torch.minimum, True),
    ("pow", torch.pow, False),
    ("floor_div", lambda x, y: torch.div(x, y, rounding_mode="floor"), True),
):
    _HANDLERS[_name] = _binary(_fn, _int_ok)


def _compare(fn: Callable[[Tensor, Tensor], Tensor]) -> Handler:
    def handler(a: _Args) -> Tensor:
        x, y = a.t("x"), a.t("y")
        if x.is_floating_point() or y.is_floating_point():
            x, y = a.f("x"), a.f("y")
        return fn(x, y)

    return handler


for _name, _fn in (
    ("equal", torch.eq),
    ("not_equal", torch.ne),
    ("greater", torch.gt),
    ("greater_equal", torch.ge),
    ("less", torch.lt),
    ("less_equal", torch.le),
):
    _HANDLERS[_name] = _compare(_fn)


def _unary(fn: Callable[[Tensor], Tensor]) -> Handler:
    return lambda a: fn(a.f("x"))


for _name, _fn in (
    ("relu", torch.relu),
    ("relu6", lambda x: torch.clamp(x, 0.0, 6.0)),
    ("sigmoid", torch.sigmoid),
    ("silu", lambda x: x * torch.sigmoid(x)),
    ("tanh", torch.tanh),
    ("exp", torch.exp),
    ("erf", torch.erf),
    ("sqrt", torch.sqrt),
    ("abs", torch.abs),
    ("floor", torch.floor),
    ("ceil", torch.ceil),
):
    _HANDLERS[_name] = _unary(_fn)


@_op("rsqrt")
def _rsqrt(a: _Args) -> Tensor:
    """``1 / sqrt(x + epsilon)``, epsilon 1e-12 by default."""
    return torch.rsqrt(a.f("x") + float(a.scalar("epsilon", 1e-12)))


@_op("inverse")
def _inverse(a: _Args) -> Tensor:
    """``1 / (x + epsilon)``, epsilon 1e-4 by default."""
    return 1.0 / (a.f("x") + float(a.scalar("epsilon", 1e-4)))


@_op("log")
def _log(a: _Args) -> Tensor:
    """``log(x + epsilon)``, epsilon 1e-45 by default."""
    return torch.log(a.f("x") + float(a.scalar("epsilon", 1e-45)))


@_op("clip")
def _clip(a: _Args) -> Tensor:
    """Values below ``alpha`` become ``alpha``, above ``beta`` become ``beta``."""
    return torch.clamp(a.f("x"), float(a.scalar("alpha")), float(a.scalar("beta")))


@_op("leaky_relu")
def _leaky_relu(a: _Args) -> Tensor:
    """``x`` where ``x >= 0``, else ``alpha * x``."""
    x = a.f("x")
    return torch.where(x >= 0, x, float(a.scalar("alpha")) * x)


@_op("gelu")
def _gelu(a: _Args) -> Tensor:
    """The three formulas of the reference: EXACT (erf), TANH_APPROXIMATION, SIGMOID_APPROXIMATION."""
    x = a.f("x")
    mode = a.scalar("mode", "EXACT")
    # torch's gelu computes exactly these two formulas (one fused kernel, no temporaries).
    if mode == "EXACT":
        return F.gelu(x)
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh")
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise MilError(f"gelu mode {mode!r} is not defined")


@_op("softmax")
def _softmax(a: _Args) -> Tensor:
    """``exp(x) / sum(exp(x), axis)``, axis -1 by default."""
    return torch.softmax(a.f("x"), dim=int(a.scalar("axis", -1)))


# --------------------------------------------------------------------------------------------
# linear algebra and convolution


@_op("linear")
def _linear(a: _Args) -> Tensor:
    """``x @ weight.T + bias``."""
    return F.linear(a.f("x"), a.f("weight"), a.f("bias") if a.has("bias") else None)


@_op("matmul")
def _matmul(a: _Args) -> Tensor:
    """numpy ``matmul`` with optional transposes of the last two dims (ignored for 1-D operands)."""
    x, y = a.f("x"), a.f("y")
    if a.scalar("transpose_x", False) and x.dim() >= 2:
        x = x.transpose(-1, -2)
    if a.scalar("transpose_y", False) and y.dim() >= 2:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


def _conv_padding(pad_type: str, pad: list[int], spatial: Sequence[int], kernel: Sequence[int],
                  strides: Sequence[int], dilations: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim for a conv's ``pad_type``."""
    if pad_type == "valid":
        return [(0, 0)] * len(spatial)
    if pad_type == "custom":
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(len(spatial))]
    if pad_type in ("same", "same_lower"):
        result = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            effective = (k - 1) * d + 1
            total = max(0, (math.ceil(size / s) - 1) * s + effective - size)
            small, large = total // 2, total - total // 2
            result.append((small, large) if pad_type == "same" else (large, small))
        return result
    raise MilError(f"conv pad_type {pad_type!r} is not defined")


_CONV_FNS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


@_op("conv")
def _conv(a: _Args) -> Tensor:
    """N-d convolution with groups, strides, dilations and valid/same/same_lower/custom padding."""
    x, w = a.f("x"), a.f("weight")
    nd = x.dim() - 2
    if nd not in _CONV_FNS:
        raise MilError(f"conv over {nd} spatial dims is not defined")
    strides = a.ints("strides", [1] * nd)
    dilations = a.ints("dilations", [1] * nd)
    pads = _conv_padding(a.scalar("pad_type", "valid"), a.ints("pad", [0] * 2 * nd), x.shape[2:],
                         w.shape[2:], strides, dilations)
    if any(before != after for before, after in pads):
        # torch's conv pads symmetrically; asymmetric padding is applied first (F.pad: last dim first).
        x = F.pad(x, [p for pair in reversed(pads) for p in pair])
        padding: list[int] = [0] * nd
    else:
        padding = [before for before, _ in pads]
    bias = a.f("bias") if a.has("bias") else None
    return _CONV_FNS[nd](x, w, bias, strides, padding, dilations, int(a.scalar("groups", 1)))


# --------------------------------------------------------------------------------------------
# reductions and normalization


def _reduce_axes(a: _Args, rank: int) -> list[int]:
    """The ``axes`` input normalized (all dims when absent)."""
    axes = a.ints("axes")
    if axes is not None and not axes:
        # torch reduces every dim for an empty list; the reference does not say what [] means.
        raise MilError("an empty axes list is not defined")
    return list(range(rank)) if axes is None else [_norm_axis(ax, rank) for ax in axes]


def _reduction(kind: str) -> Handler:
    def handler(a: _Args) -> Tensor:
        keep = bool(a.scalar("keep_dims", False))
        if _is_int_output(a) and kind in ("sum", "max", "min"):
            x = a.t("x").long()
        elif _is_int_output(a):
            raise MilError(f"integer reduce_{kind} is not defined by this evaluator")
        else:
            x = a.f("x")
        axes = _reduce_axes(a, x.dim())
        if kind == "mean":
            return torch.mean(x, dim=axes, keepdim=keep)
        if kind == "sum":
            return torch.sum(x, dim=axes, keepdim=keep)
        if kind == "max":
            return torch.amax(x, dim=axes, keepdim=keep)
        return torch.amin(x, dim=axes, keepdim=keep)

    return handler


for _kind in ("mean", "sum", "max", "min"):
    _HANDLERS[f"reduce_{_kind}"] = _reduction(_kind)


def _normalize(x: Tensor, dims: list[int], eps: float) -> Tensor:
    """``(x - E[x]) / sqrt(Var[x] + eps)`` over ``dims`` (biased variance)."""
    mean = torch.mean(x, dim=dims, keepdim=True)
    centred = x - mean
    var = torch.mean(centred * centred, dim=dims, keepdim=True)
    return centred * torch.rsqrt(var + eps)


@_op("layer_norm")
def _layer_norm(a: _Args) -> Tensor:
    """``gamma * (x - E[x]) / sqrt(Var[x] + epsilon) + beta`` over ``axes`` (all by default)."""
    x = a.f("x")
    axes = _reduce_axes(a, x.dim())
    out = _normalize(x, axes, float(a.scalar("epsilon", 1e-5)))
    # gamma/beta have shape x.shape[axes] (in the order of axes): move their dims to those axes.
    order = sorted(range(len(axes)), key=lambda i: axes[i])
    shape = [x.shape[i] if i in axes else 1 for i in range(x.dim())]
    for name in ("gamma", "beta"):
        if a.has(name):
            param = a.f(name).permute(order).reshape(shape)
            out = out * param if name == "gamma" else out + param
    return out


def _channel_affine(a: _Args, out: Tensor) -> Tensor:
    shape = [1, out.shape[1]] + [1] * (out.dim() - 2)
    if a.has("gamma"):
        out = out * a.f("gamma").reshape(shape)
    if a.has("beta"):
        out = out + a.f("beta").reshape(shape)
    return out


@_op("batch_norm")
def _batch_norm(a: _Args) -> Tensor:
    """``gamma * (x - mean) / sqrt(variance + epsilon) + beta`` per channel (axis 1)."""
    x = a.f("x")
    shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
    eps = float(a.scalar("epsilon", 1e-5))
    out = (x - a.f("mean").reshape(shape)) * torch.rsqrt(a.f("variance").reshape(shape) + eps)
    return _channel_affine(a, out)


@_op("instance_norm")
def _instance_norm(a: _Args) -> Tensor:
    """Normalization over the spatial dims of each (n, c), then the per-channel affine."""
    x = a.f("x")
    out = _normalize(x, list(range(2, x.dim())), float(a.scalar("epsilon", 1e-5)))
    return _channel_affine(a, out)


# --------------------------------------------------------------------------------------------
# data movement (in the storage dtype: exact)


@_op("identity")
def _identity(a: _Args) -> Tensor:
    """The input itself."""
    return a.t("x")


@_op("cast")
def _cast(a: _Args) -> Tensor:
    """The value in ``dtype``; float to integer only for integral values (see the module docstring)."""
    x = a.t("x")
    target = a.scalar("dtype")
    if target not in _TORCH_DTYPES:
        raise MilError(f"cast to {target!r} is not defined")
    if target == "bool":
        return x != 0
    if target in _FLOAT_DTYPES:
        return x.float() if x.dtype != torch.float64 else x
    return x  # _store checks integrality and range-casts


@_op("reshape")
def _reshape(a: _Args) -> Tensor:
    """The values of ``x`` in ``shape``: -1 is inferred, 0 copies a dim of ``x`` (iOS15: the dim at
    the same position; iOS17: counted from the right, 1 where ``x`` has none)."""
    x = a.t("x")
    shape = a.ints("shape")
    assert shape is not None
    if 0 in shape:
        if a.version >= 17:
            offset = x.dim() - len(shape)  # shape[i] matches x.shape[i + offset]
            shape = [(x.shape[i + offset] if 0 <= i + offset < x.dim() else 1) if s == 0 else s
                     for i, s in enumerate(shape)]
        elif len(shape) == x.dim():
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        else:
            raise MilError("reshape with 0 in shape needs len(shape) == rank(x) before iOS17")
    return x.reshape(shape)


@_op("expand_dims")
def _expand_dims(a: _Args) -> Tensor:
    """Size-1 dims inserted at ``axes`` (indices in the output rank, as numpy's ``expand_dims``)."""
    x = a.t("x")
    axes = a.ints("axes")
    assert axes is not None
    out_rank = x.dim() + len(axes)
    for axis in sorted(_norm_axis(ax, out_rank) for ax in axes):
        x = x.unsqueeze(axis)
    return x


@_op("squeeze")
def _squeeze(a: _Args) -> Tensor:
    """Size-1 dims removed (all, or those of ``axes``; non-size-1 axes are ignored, as in PyTorch)."""
    x = a.t("x")
    axes = a.ints("axes")
    if axes is None:
        return x.squeeze() if x.dim() else x
    return x.squeeze([_norm_axis(ax, x.dim()) for ax in axes])


@_op("transpose")
def _transpose(a: _Args) -> Tensor:
    """Dims permuted by ``perm``."""
    perm = a.ints("perm")
    assert perm is not None
    return a.t("x").permute(perm)


def _take(x: Tensor, dim: int, start: int, stop: int, step: int) -> Tensor:
    """``x`` sliced along ``dim`` as ``range(start, stop, step)`` (any sign of step)."""
    if step > 0:
        index = [slice(None)] * dim + [slice(start, stop, step)]
        return x[tuple(index)]
    picks = torch.arange(start, stop, step, dtype=torch.long)
    return x.index_select(dim, picks)


@_op("slice_by_index")
def _slice_by_index(a: _Args) -> Tensor:
    """numpy slicing ``x[begin:end:stride, ...]`` with begin/end/squeeze masks."""
    x = a.t("x")
    rank = x.dim()
    begin = a.ints("begin")
    end = a.ints("end")
    assert begin is not None and end is not None
    stride = a.ints("stride", [1] * rank)
    begin_mask = [bool(v) for v in a.ints("begin_mask", [0] * rank)]
    end_mask = [bool(v) for v in a.ints("end_mask", [0] * rank)]
    squeeze_mask = [bool(v) for v in a.ints("squeeze_mask", [0] * rank)]
    squeezed = []
    for dim in range(rank):
        size = x.shape[dim]
        if squeeze_mask[dim]:
            index = begin[dim] + size if begin[dim] < 0 else begin[dim]
            x = x.narrow(dim, index, 1)
            squeezed.append(dim)
            continue
        # A masked bound is omitted, as in a numpy slice (0 / size for positive strides).
        bounds = slice(None if begin_mask[dim] else begin[dim], None if end_mask[dim] else end[dim], stride[dim])
        start, stop, step = bounds.indices(size)
        if (start, stop, step) != (0, size, 1):
            x = _take(x, dim, start, stop, step)
    return x.squeeze(squeezed) if squeezed else x


@_op("slice_by_size")
def _slice_by_size(a: _Args) -> Tensor:
    """``x[begin[i] : begin[i] + size[i]]`` per dim; size -1 takes the rest."""
    x = a.t("x")
    begin, size = a.ints("begin"), a.ints("size")
    assert begin is not None and size is not None
    for dim, (b, s) in enumerate(zip(begin, size)):
        b = b + x.shape[dim] if b < 0 else b
        length = x.shape[dim] - b if s == -1 else s
        x = x.narrow(dim, b, length)
    return x


@_op("concat")
def _concat(a: _Args) -> Tensor:
    """``values`` joined along ``axis``; ``interleave`` alternates them element by element."""
    values = a.tensors("values")
    dtype = _TORCH_DTYPES[a.out_dtype()]
    values = [v.to(dtype) for v in values]
    axis = _norm_axis(int(a.scalar("axis")), values[0].dim())
    if a.scalar("interleave", False):
        stacked = torch.stack(values, dim=axis + 1)
        shape = list(values[0].shape)
        shape[axis] *= len(values)
        return stacked.reshape(shape)
    return torch.cat(values, dim=axis)


@_op("split")
def _split(a: _Args) -> tuple[Tensor, ...]:
    """``x`` cut along ``axis`` by ``split_sizes``, or into ``num_splits`` equal parts."""
    x = a.t("x")
    axis = _norm_axis(int(a.scalar("axis")), x.dim())
    sizes = a.ints("split_sizes")
    if sizes is None:
        parts = int(a.scalar("num_splits"))
        if x.shape[axis] % parts:
            raise MilError(f"split of {x.shape[axis]} into {parts} equal parts")
        sizes = [x.shape[axis] // parts] * parts
    return tuple(torch.split(x, sizes, dim=axis))


@_op("tile")
def _tile(a: _Args) -> Tensor:
    """``x`` repeated ``reps[i]`` times along dim i."""
    reps = a.ints("reps")
    assert reps is not None
    return a.t("x").repeat(reps)


@_op("pixel_shuffle")
def _pixel_shuffle(a: _Args) -> Tensor:
    """Channels to space, as ``torch.nn.PixelShuffle``."""
    return F.pixel_shuffle(a.t("x"), int(a.scalar("upscale_factor")))


@_op("pixel_unshuffle")
def _pixel_unshuffle(a: _Args) -> Tensor:
    """Space to channels, as ``torch.nn.PixelUnshuffle``."""
    return F.pixel_unshuffle(a.t("x"), int(a.scalar("downscale_factor")))


def _pad_index(size: int, before: int, after: int, mode: str) -> Tensor:
    """Source index of each padded position along one dim (reflect excludes the edge, replicate repeats it)."""
    positions = torch.arange(-before, size + after)
    if mode == "replicate":
        return positions.clamp(0, size - 1)
    if before > size - 1 or after > size - 1:
        raise MilError(f"reflect padding of {max(before, after)} on a dim of {size}")
    positions = positions.abs()
    return torch.where(positions > size - 1, 2 * (size - 1) - positions, positions)


@_op("pad")
def _pad(a: _Args) -> Tensor:
    """The last N dims padded by ``pad`` (before/after pairs, outermost first): constant, reflect or replicate."""
    x = a.f("x") if a.out_dtype() in _FLOAT_DTYPES else a.t("x")
    pad = a.ints("pad")
    assert pad is not None
    mode = a.scalar("mode", "constant")
    n = len(pad) // 2
    first = x.dim() - n
    pairs = [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    if mode == "constant":
        flat = [p for pair in reversed(pairs) for p in pair]
        return F.pad(x, flat, mode="constant", value=float(a.scalar("constant_val", 0.0)))
    if mode not in ("reflect", "replicate"):
        raise MilError(f"pad mode {mode!r} is not defined")
    for i, (before, after) in enumerate(pairs):
        if before or after:
            dim = first + i
            x = x.index_select(dim, _pad_index(x.shape[dim], before, after, mode))
    return x


# --------------------------------------------------------------------------------------------
# resampling


def _bilinear_grid(size_in: int, size_out: int, align_corners: bool, half_pixel: bool) -> Tensor:
    """Sample positions of ``upsample_bilinear`` along one axis (the reference's grid formulas)."""
    i = torch.arange(size_out, dtype=torch.float64)
    if align_corners:
        spacing = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        grid = i * spacing
    else:
        spacing = size_in / size_out
        grid = i * spacing + (0.5 * spacing - 0.5 if half_pixel else 0.0)
    return grid.clamp(0, size_in - 1)


def _lerp_axis(x: Tensor, dim: int, grid: Tensor) -> Tensor:
    """Linear interpolation of ``x`` along ``dim`` at fractional positions ``grid``."""
    size = x.shape[dim]
    low = grid.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    weight = (grid - low.to(grid.dtype)).to(torch.float32)
    shape = [1] * x.dim()
    shape[dim] = -1
    weight = weight.reshape(shape)
    return x.index_select(dim, low) * (1.0 - weight) + x.index_select(dim, high) * weight


@_op("upsample_bilinear")
def _upsample_bilinear(a: _Args) -> Tensor:
    """Bilinear resize of the last two dims to ``floor(size * scale)`` with the reference's grid.

    ``align_corners`` (default True) samples ``i * (in - 1) / (out - 1)``; otherwise the spacing is
    ``in / out`` and, with ``half_pixel_centers`` (iOS16+, default ``not align_corners``; always
    on before iOS16), the grid is shifted by ``0.5 * spacing - 0.5``. Positions clamp to the input.
    """
    x = a.f("x")
    align = bool(a.scalar("align_corners", True))
    half_pixel = bool(a.scalar("half_pixel_centers", not align)) if a.version >= 16 else not align
    if align and half_pixel:
        raise MilError("upsample_bilinear with both align_corners and half_pixel_centers is not defined")
    h_in, w_in = x.shape[-2], x.shape[-1]
    h_out = math.floor(h_in * float(a.scalar("scale_factor_height", 1)))
    w_out = math.floor(w_in * float(a.scalar("scale_factor_width", 1)))
    x = _lerp_axis(x, x.dim() - 2, _bilinear_grid(h_in, h_out, align, half_pixel))
    return _lerp_axis(x, x.dim() - 1, _bilinear_grid(w_in, w_out, align, half_pixel))


@_op("upsample_nearest_neighbor")
def _upsample_nearest(a: _Args) -> Tensor:
    """Each pixel of the last two dims repeated by the (integer) scale factors."""
    x = a.t("x")
    for dim, name in ((x.dim() - 2, "scale_factor_height"), (x.dim() - 1, "scale_factor_width")):
        scale = float(a.scalar(name, 1))
        if scale != int(scale) or scale < 1:
            raise MilError(f"upsample_nearest_neighbor with a fractional scale ({scale}) is not defined")
        if scale > 1:
            x = x.repeat_interleave(int(scale), dim=dim)
    return x


# --------------------------------------------------------------------------------------------
# activation quantization (iOS17)


@_op("quantize")
def _quantize(a: _Args) -> Tensor:
    """``clip(round(input / scale) + zero_point)`` to int8/uint8; round half to even."""
    x = a.f("input")
    axis = a.scalar("axis")
    q = torch.round(x / _along(a.f("scale"), x.dim(), axis))  # torch.round: half to even
    if a.has("zero_point"):
        q = q + _along(a.t("zero_point").float(), x.dim(), axis)
    low, high = _INT_RANGES[a.scalar("output_dtype")]
    return q.clamp(low, high)


@_op("dequantize")
def _dequantize(a: _Args) -> Tensor:
    """``scale * (input - zero_point)``."""
    q = a.t("input").float()
    axis = a.scalar("axis")
    if a.has("zero_point"):
        q = q - _along(a.t("zero_point").float(), q.dim(), axis)
    return q * _along(a.f("scale"), q.dim(), axis)


# --------------------------------------------------------------------------------------------
# compile-time weight decompression (evaluated once, at load)


@_op("constexpr_affine_dequantize")
def _constexpr_affine_dequantize(a: _Args) -> Tensor:
    """``scale * (quantized_data - zero_point)``, scale and zero_point scalars or vectors along ``axis``."""
    q = a.t("quantized_data").float()
    axis = int(a.scalar("axis"))
    q = q - _along(a.t("zero_point").float(), q.dim(), axis)
    return q * _along(a.f("scale"), q.dim(), axis)


@_op("constexpr_cast")
def _constexpr_cast(a: _Args) -> Tensor:
    """``source_val`` (fp16) in ``output_dtype``."""
    return a.f("source_val")


def _unpack_bits(packed: Tensor, nbits: int, count: int) -> Tensor:
    """``count`` unsigned ``nbits``-bit fields packed LSB first, one byte after the other."""
    bytes_ = packed.reshape(-1).to(torch.uint8).long()
    bits = (bytes_.unsqueeze(1) >> torch.arange(8)) & 1
    fields = bits.reshape(-1)[: count * nbits].reshape(count, nbits)
    return (fields << torch.arange(nbits)).sum(dim=1)


def _repeat_blocks(param: Tensor, shape: Sequence[int]) -> Tensor:
    """``param`` with each dim repeated ``shape[i] / param.shape[i]`` times (block-wise parameters)."""
    for dim, (full, part) in enumerate(zip(shape, param.shape)):
        if full % part:
            raise MilError(f"block parameter of shape {list(param.shape)} does not tile {list(shape)}")
        if full != part:
            param = param.repeat_interleave(full // part, dim=dim)
    return param


@_op("constexpr_lut_to_dense")
def _constexpr_lut_to_dense(a: _Args) -> Tensor:
    """Palettized weights: ``lut[index]`` per element.

    iOS16: ``indices`` are ``log2(lut.size)``-bit fields packed LSB first in bytes, ``shape`` the
    output shape. iOS18: ``indices`` have the output's shape (before vector expansion), ``lut`` has
    shape ``[*blocks, 2**nbits, VECTOR_SIZE]``, one LUT per block of indices.
    """
    lut = a.f("lut") if a.out_dtype() in _FLOAT_DTYPES else a.t("lut")
    if a.version < 18:
        shape = a.ints("shape")
        assert shape is not None
        nbits = int(math.log2(lut.numel()))
        if 2**nbits != lut.numel():
            raise MilError(f"constexpr_lut_to_dense: LUT of {lut.numel()} entries is not a power of two")
        index = _unpack_bits(a.t("indices"), nbits, math.prod(shape))
        return lut.reshape(-1)[index].reshape(shape)
    indices = a.t("indices").long()
    rank = indices.dim()
    blocks, palettes, vector = list(lut.shape[:rank]), lut.shape[rank], lut.shape[rank + 1]
    if vector > 1 and math.prod(blocks) > 1:
        raise MilError("constexpr_lut_to_dense: vector palettization with several LUTs is not defined")
    # Flat LUT number of every element: its block coordinate, row-major over the LUT blocks.
    lut_id = torch.zeros(indices.shape, dtype=torch.long)
    stride = 1
    for dim in reversed(range(rank)):
        size, count = indices.shape[dim], blocks[dim]
        if size % count:
            raise MilError(f"constexpr_lut_to_dense: {count} LUTs do not tile a dim of {size}")
        coord = torch.arange(size) // (size // count)
        view = [1] * rank
        view[dim] = size
        lut_id = lut_id + coord.reshape(view) * stride
        stride *= count
    values = lut.reshape(-1, palettes, vector)[lut_id, indices]  # indices.shape + [vector]
    if vector == 1:
        return values.squeeze(-1)
    axis = _norm_axis(int(a.scalar("vector_axis")), rank)
    values = values.movedim(-1, axis + 1)
    shape = list(indices.shape)
    shape[axis] *= vector
    return values.reshape(shape)


@_op("constexpr_blockwise_shift_scale")
def _constexpr_blockwise_shift_scale(a: _Args) -> Tensor:
    """``scale[block] * (data - offset[block])``, block size ``data.shape[i] / scale.shape[i]`` per dim."""
    data = a.t("data").float()
    scale = _repeat_blocks(a.f("scale"), data.shape)
    if a.has("offset"):
        data = data - _repeat_blocks(a.t("offset").float(), data.shape)
    return scale * data


@_op("constexpr_sparse_to_dense")
def _constexpr_sparse_to_dense(a: _Args) -> Tensor:
    """``nonzero_data`` scattered where the bit mask is set (iOS16: packed bytes + ``shape``; iOS18: uint1 mask)."""
    data = a.t("nonzero_data")
    if a.version < 18:
        shape = a.ints("shape")
        assert shape is not None
        mask = _unpack_bits(a.t("mask"), 1, math.prod(shape)).reshape(shape).bool()
    else:
        mask = a.t("mask").bool()
    if int(mask.sum()) != data.numel():
        raise MilError("constexpr_sparse_to_dense: mask and nonzero_data disagree")
    out = torch.zeros(mask.shape, dtype=data.dtype)
    out[mask] = data.reshape(-1)
    return out


# Every MIL op type this module evaluates (``const`` is read, not run).
SUPPORTED_OPS: frozenset[str] = frozenset(_HANDLERS) | {"const"}
_COMPILE_TIME = frozenset({"const"}) | {name for name in _HANDLERS if name.startswith("constexpr_")}


# --------------------------------------------------------------------------------------------
# programs


def _opset(op: Any) -> int:
    """The iOS version whose definition of this op the program uses (from the op class's module)."""
    found = re.search(r"\.iOS(\d+)\.", type(op).__module__ + ".")
    return int(found.group(1)) if found else 15


def _walk(block: Any) -> Iterator[Any]:
    """Every op of ``block`` and of the blocks nested in its ops, in program order."""
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _walk(inner)


def _const_value(var: Any) -> Any:
    """A const op's value: a tensor (numpy arrays copied, so torch owns writable memory) or a str."""
    value = var.val
    if isinstance(value, str):
        return value
    array = np.array(value)
    if array.dtype.kind in "US":
        return str(array.reshape(-1)[0]) if array.size == 1 else array
    return torch.from_numpy(array.copy())


def _feature_type(feature: Any) -> str:
    kind = feature.type.WhichOneof("Type")
    return {"multiArrayType": "tensor", "imageType": "image"}.get(kind, str(kind))


def _spec_shape(feature: Any) -> list[int]:
    """The default shape a spec feature declares (empty when it declares none)."""
    kind = feature.type.WhichOneof("Type")
    if kind == "multiArrayType":
        return [int(d) for d in feature.type.multiArrayType.shape]
    if kind == "imageType":
        image = feature.type.imageType
        channels = 1 if "GRAYSCALE" in type(image).ColorSpace.Name(image.colorSpace) else 3
        return [1, channels, int(image.height), int(image.width)]
    return []


def _is_static(dim: Any) -> bool:
    return isinstance(dim, (int, np.integer))


def _io_shape(var: Any, feature: Any | None) -> list[int]:
    """A program input's or output's shape; symbolic dims (enumerated or flexible shapes) take the
    spec's default shape where it has one, else -1."""
    default = _spec_shape(feature) if feature is not None else []
    shape = list(var.shape)
    return [int(d) if _is_static(d) else (default[i] if len(default) == len(shape) else -1)
            for i, d in enumerate(shape)]


def _same_shape(actual: Sequence[int], declared: Sequence[Any]) -> bool:
    """Whether ``actual`` matches a declared MIL shape (symbolic dims match anything)."""
    return len(actual) == len(declared) and all(not _is_static(d) or int(d) == a for a, d in zip(actual, declared))


def _op_label(op: Any) -> str:
    return f"MIL op '{op.op_type}' (in main, op '{op.name}')"


@dataclass
class _Step:
    """One op of the run plan: its handler, op version, the vars freed after it, its outputs."""

    op: Any
    handler: Handler
    version: int
    frees: list[str]
    outputs: list[tuple[str, str, tuple[Any, ...]]]  # (name, MIL dtype, declared shape)


class MilProgram:
    """The ``main`` function of a package's MIL program, with its weights, evaluable with torch."""

    def __init__(self, program: Any, spec: Any, package: Path) -> None:
        functions = program.functions
        name = "main" if "main" in functions else getattr(spec.description, "defaultFunctionName", "")
        if name not in functions:
            raise MilError(f"{package.name}: the MIL program has no 'main' function")
        self.package = package
        self.spec = spec
        self.specification_version = int(spec.specificationVersion)
        self._function = functions[name]
        features = {f.name: f for f in list(spec.description.input) + list(spec.description.output)}

        def info(name: str, var: Any) -> TensorInfo:
            feature = features.get(name)
            kind = _feature_type(feature) if feature is not None else "tensor"
            return TensorInfo(name, _io_shape(var, feature), _dtype_string(var), kind)

        self.inputs: dict[str, TensorInfo] = {n: info(n, v) for n, v in self._function.inputs.items()}
        self.outputs: dict[str, TensorInfo] = {v.name: info(v.name, v) for v in self._function.outputs}
        self._consts: dict[str, Any] | None = None
        self._f32: dict[str, Tensor] = {}
        self._plan: list[_Step] | None = None

    @property
    def function(self) -> Any:
        """The MIL ``Function`` evaluated (coremltools object: ops, vars, for inspection)."""
        return self._function

    # ---- reporting

    def op_counts(self) -> dict[str, int]:
        """Every MIL op type of ``main`` (nested blocks included, ``const`` too) -> count."""
        counts: dict[str, int] = {}
        for op in _walk(self._function):
            counts[op.op_type] = counts.get(op.op_type, 0) + 1
        return dict(sorted(counts.items()))

    def ops(self) -> Iterable[OpInfo]:
        """Every op of ``main`` in program order: type, name, output dtypes and shapes."""
        for op in _walk(self._function):
            yield OpInfo(op.op_type, op.name, tuple(_dtype_string(v) for v in op.outputs),
                         tuple(tuple(v.shape) for v in op.outputs))

    def missing_ops(self) -> dict[str, str]:
        """Op types of ``main`` this module does not implement -> the name of their first op."""
        missing: dict[str, str] = {}
        for op in _walk(self._function):
            if op.op_type not in SUPPORTED_OPS:  # the module global at call time: tests narrow it
                missing.setdefault(op.op_type, op.name)
        return missing

    def check(self) -> None:
        """Raise :class:`MilError` listing every op type the program uses that is not implemented."""
        missing = self.missing_ops()
        if len(missing) == 1:
            (op_type, name), = missing.items()
            raise MilError(f"MIL op '{op_type}' (in main, op '{name}') is not implemented by seemore.runtime.mil")
        if missing:
            listed = ", ".join(f"'{t}' (op '{n}')" for t, n in sorted(missing.items()))
            raise MilError(f"MIL ops not implemented by seemore.runtime.mil: {listed}")

    def compute_precision(self) -> str:
        """``fp16``, ``fp32`` or ``mixed``: the float dtypes the program computes in.

        Counted over the ops that compute: not ``const``/``constexpr_*`` (weights), nor
        ``cast``/``identity`` (an fp16 program with fp32 I/O still computes in fp16).
        """
        seen = set()
        for op in _walk(self._function):
            if op.op_type in _COMPILE_TIME or op.op_type in ("cast", "identity"):
                continue
            seen.update(d for d in (_dtype_string(v) for v in op.outputs) if d in ("fp16", "fp32"))
        if seen == {"fp16", "fp32"}:
            return "mixed"
        return "fp16" if "fp16" in seen else "fp32"

    def const_value(self, name: str) -> Any:
        """The value of a compile-time var (a ``const`` or a decompressed ``constexpr_*`` output)."""
        consts = self._constants()
        if name not in consts:
            raise MilError(f"{name!r} is not a compile-time value of this program")
        return consts[name]

    # ---- evaluation

    def _constants(self) -> dict[str, Any]:
        """Values of the top-level compile-time ops, decompressing ``constexpr_*`` ops once."""
        if self._consts is not None:
            return self._consts
        consts: dict[str, Any] = {}
        for op in self._function.operations:
            if op.op_type == "const":
                consts[op.outputs[0].name] = _const_value(op.outputs[0])
            elif op.op_type in _COMPILE_TIME and op.op_type in SUPPORTED_OPS:
                self._execute(op, consts)
        self._consts = consts
        # float32 copies of float weights, made once: float ops compute in float32.
        self._f32 = {n: v.float() for n, v in consts.items() if isinstance(v, Tensor) and v.is_floating_point()
                     and v.dtype != torch.float32}
        self._f32.update({n: v for n, v in consts.items() if isinstance(v, Tensor) and v.dtype == torch.float32})
        return consts

    def _execute(self, op: Any, env: dict[str, Any]) -> None:
        """Run one op (looked up by type) on ``env`` and store its outputs there."""
        handler = _HANDLERS.get(op.op_type)
        if handler is None or op.op_type not in SUPPORTED_OPS:
            raise MilError(f"{_op_label(op)} is not implemented by seemore.runtime.mil")
        outputs = [(v.name, _dtype_string(v), tuple(v.shape)) for v in op.outputs]
        self._run_step(_Step(op, handler, _opset(op), [], outputs), env, {})

    def _prepare(self) -> list[_Step]:
        """The runtime ops in order, each with the vars it is the last reader of (freed after it)."""
        if self._plan is not None:
            return self._plan
        self.check()
        consts = self._constants()
        steps = [op for op in self._function.operations if op.op_type not in _COMPILE_TIME]
        last_use: dict[str, int] = {}
        for index, op in enumerate(steps):
            for var in op.inputs.values():
                for v in var if isinstance(var, (list, tuple)) else (var,):
                    if v.name not in consts:
                        last_use[v.name] = index
        keep = {v.name for v in self._function.outputs}
        frees: list[list[str]] = [[] for _ in steps]
        for name, index in last_use.items():
            if name not in keep:
                frees[index].append(name)
        self._plan = [_Step(op, _HANDLERS[op.op_type], _opset(op), frees[i],
                            [(v.name, _dtype_string(v), tuple(v.shape)) for v in op.outputs])
                      for i, op in enumerate(steps)]
        return self._plan

    def run(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Evaluate ``main`` on ``inputs`` (name -> tensor of the input's shape); returns every output.

        Inputs are converted to their MIL dtype (as Core ML converts a multi-array it is given);
        outputs come back in theirs.
        """
        plan = self._prepare()
        consts = self._constants()
        missing = sorted(set(self.inputs) - set(inputs))
        if missing:
            raise MilError(f"missing program input(s): {', '.join(missing)}")
        env: dict[str, Any] = dict(consts)
        for name, info in self.inputs.items():
            value = torch.as_tensor(inputs[name])
            declared = tuple(self._function.inputs[name].shape)
            if not _same_shape(value.shape, declared):
                raise MilError(f"input {name!r} has shape {list(value.shape)}, the program takes {info.shape}")
            env[name] = _store(value.detach(), info.dtype)
        widened = dict(self._f32)  # this run's float32 copies, on top of the weights'
        with torch.no_grad():
            for step in plan:
                self._run_step(step, env, widened)
                for name in step.frees:
                    env.pop(name, None)
                    widened.pop(name, None)
        return {v.name: env[v.name] for v in self._function.outputs}

    def _run_step(self, step: _Step, env: dict[str, Any], widened: dict[str, Tensor]) -> None:
        """Run one op and store its outputs in ``env``, rounded to their MIL dtypes.

        Any failure inside becomes one :class:`MilError` line that names the op.
        """
        op = step.op
        try:
            result = step.handler(_Args(op, step.version, env, widened))
            results = result if isinstance(result, tuple) else (result,)
            if len(results) != len(step.outputs):
                raise MilError(f"gave {len(results)} outputs, the program declares {len(step.outputs)}")
            for (name, dtype, shape), value in zip(step.outputs, results):
                stored = _store(value, dtype)
                if not _same_shape(stored.shape, shape):
                    raise MilError(f"output shape {list(stored.shape)} differs from the declared {list(shape)}")
                env[name] = stored
        except MilError as exc:
            message = str(exc)
            raise MilError(message if message.startswith("MIL op") else f"{_op_label(op)}: {message}") from None
        except Exception as exc:  # a torch error inside an op: name the op, keep one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise MilError(f"{_op_label(op)} failed: {type(exc).__name__}: {first}") from None


def load_spec(package: Path) -> Any:
    """The Core ML model spec of ``package`` (protobuf), or one-line :class:`MilError`."""
    from seemore.toolchain_logs import import_coremltools

    package = Path(package)
    if not (package / "Manifest.json").is_file():
        raise MilError(f"{package}: not a Core ML .mlpackage (no Manifest.json)")
    try:
        ct = import_coremltools()
        return ct.utils.load_spec(str(package))
    except ImportError as exc:
        raise MilError(f"coremltools is not installed ({exc})") from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MilError(f"{package.name}: cannot read the model spec: {first}") from None


def load_mil_program(package: Path) -> MilProgram:
    """Read the MIL program and weights of a saved ``.mlpackage`` (one-line :class:`MilError` if unreadable)."""
    package = Path(package)
    spec = load_spec(package)
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise MilError(f"{package.name}: not an ML program (model type {kind})")
    try:
        from coremltools.converters.mil.frontend.milproto.load import load

        program = load(spec, specification_version=spec.specificationVersion,
                       file_weights_dir=str(package / WEIGHTS_DIR))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise MilError(f"{package.name}: cannot read the MIL program ({type(exc).__name__}: {first})") from None
    return MilProgram(program, spec, package)


__all__ = ["MilError", "MilProgram", "OpInfo", "SUPPORTED_OPS", "TensorInfo", "load_mil_program", "load_spec"]
