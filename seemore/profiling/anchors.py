"""Published latency anchors (``mobile/anchors.toml``) and the layer tables of their models.

An *anchor* is a latency someone measured and published: a known model at a known input size on
a known phone, backend and precision. The estimator is validated against them, so each one needs
the model's per-op costs too; those come from a *layer table* written from the model's paper
(facts, not an implementation's code) and turned into :class:`~seemore.profiling.costs.OpCost`
rows by :func:`model_costs` with the conventions of :mod:`seemore.profiling.costs`.

Layout of ``format = "seemore-mobile/anchors/1"``:

``[[anchors]]``   ``id``, ``model`` (a key of ``models``), ``input = { height, width, <source|assumed> }``
                  (the input as the source measured it), ``device`` (a device of ``mobile/devices.toml``,
                  anchor-only ones included), exactly one of ``backend`` (a backend of that device) or
                  ``unit`` (its compute unit, for a measurement through a runtime this project has no
                  backend for, e.g. Qualcomm AI Hub on the Hexagon NPU), ``precision`` (fp32 / fp16 /
                  int8), ``latency = { value, unit = "ms", source }``; optional ``runtime``, ``note``
``[models.<id>]`` ``name``, ``source`` (the paper), ``layers`` (array of layer rows), optional ``note``,
                  ``macs = { value, unit = "GMAC"|"MMAC", height, width, source|assumed }`` and
                  ``params = { value, unit = "M"|"K", source|assumed }``: published or derived totals that
                  the layer table must reproduce within :data:`REFERENCE_TOLERANCE`

A layer row is one op, ``repeat`` times (default 1): ``op``, its channels, ``kernel`` / ``stride``
/ ``groups`` / ``factor`` / ``inputs`` where the op has them, optional ``note``, and where it runs:
``scale``, the row's *input* height and width relative to the model input (the "Input" column of
MobileNetV2's table: 1, 0.5, ... 0.03125; 2 and 4 after an SR upsampler), or ``pooled = true``
for a row on a globally pooled 1x1 map (a classifier). Sizes are ``ceil(input * scale)``, so one
table serves every input size. The ops and their keys are in :data:`OPS`.

Every problem raises :class:`AnchorError` with a one-line message that names its key path.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from seemore.profiling.costs import BYTES_PER_ELEMENT, OpCost, ProgramCost
from seemore.profiling.devices import PRECISIONS, REGISTRY_PATH, UNITS, Quantity, Registry, load_registry
from seemore.profiling.tomlfile import TomlChecks

# Next to the device registry: anchors name its devices and backends.
ANCHORS_PATH = REGISTRY_PATH.parent / "anchors.toml"
ANCHORS_FORMAT = "seemore-mobile/anchors/1"
# A layer table may differ this much from its model's published (or derived) totals: papers round.
REFERENCE_TOLERANCE = 0.03
# Published totals: unit -> (what it counts, factor to a plain count).
REFERENCE_UNITS: dict[str, tuple[str, float]] = {
    "GMAC": ("macs", 1e9), "MMAC": ("macs", 1e6), "M": ("params", 1e6), "K": ("params", 1e3),
}
# An anchor is a published measurement; its input size may be a stated assumption where the
# source leaves it out. Nothing here is measured on this machine.
LATENCY_PROVENANCES: tuple[str, ...] = ("source",)
INPUT_PROVENANCES: tuple[str, ...] = ("source", "assumed")
REFERENCE_PROVENANCES: tuple[str, ...] = ("source", "assumed")

_WHERE = ("scale", "pooled")
_COMMON = ("repeat", "note") + _WHERE


@dataclass(frozen=True)
class OpRule:
    """What a layer-table op is: its cost class, the keys it needs and the ones it may have."""

    op_class: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


_ELEMENTWISE = ("relu", "relu6", "hardtanh", "leaky_relu", "prelu", "sigmoid", "hardswish", "gelu")
OPS: dict[str, OpRule] = {
    # conv is dwconv when groups == cin == cout > 1 (one input channel per group).
    "conv": OpRule("conv", ("cin", "cout", "kernel"), ("stride", "groups")),
    "dwconv": OpRule("dwconv", ("channels", "kernel"), ("stride",)),
    "linear": OpRule("matmul", ("cin", "cout")),
    # inputs: how many full-size tensors are read (1 for a multiply by a constant).
    "add": OpRule("elementwise", ("channels",), ("inputs",)),
    "mul": OpRule("elementwise", ("channels",), ("inputs",)),
    **{op: OpRule("elementwise", ("channels",)) for op in _ELEMENTWISE},
    # channels: the input's (pixel_shuffle divides them by factor^2).
    "pixel_shuffle": OpRule("movement", ("channels", "factor")),
    # channels: the output's, the sum of the inputs'.
    "concat": OpRule("movement", ("channels", "inputs")),
    "upsample": OpRule("resize", ("channels", "factor"), ("mode",)),
    # mean: global average over height and width (to 1x1); softmax: over channels.
    "mean": OpRule("reduction", ("channels",)),
    "softmax": OpRule("reduction", ("channels",)),
}
UPSAMPLE_MODES: tuple[str, ...] = ("nearest", "bilinear", "bicubic")


class AnchorError(ValueError):
    """An anchor file that is malformed or names what the device registry lacks; the message is one line."""


_checks = TomlChecks(AnchorError)
_fail, _join = _checks.fail, TomlChecks.join


@dataclass(frozen=True)
class LayerSpec:
    """One row of a layer table: an op, its channels and where it runs, ``repeat`` times.

    ``scale`` is the row's input height/width relative to the model input (``None``: a pooled
    1x1 map). For shape-keeping ops ``cin == cout``; ``dwconv`` has ``groups == cin == cout``.
    """

    op: str
    cin: int
    cout: int
    scale: float | None
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    factor: int = 1
    inputs: int = 1
    repeat: int = 1
    mode: str = ""
    note: str = ""

    @property
    def op_class(self) -> str:
        """The :mod:`~seemore.profiling.costs` class of the op (``conv`` with one channel per group is ``dwconv``)."""
        if self.op in ("conv", "dwconv") and self.groups > 1 and self.groups == self.cin == self.cout:
            return "dwconv"
        return OPS[self.op].op_class

    def input_hw(self, model_input: tuple[int, int]) -> tuple[int, int]:
        """The row's input (H, W) for a model input of ``model_input``."""
        if self.scale is None:
            return 1, 1
        # Exact rational arithmetic: 224 * 0.03125 must be 7, not 7.000000001 rounded up to 8.
        s = Fraction(self.scale).limit_denominator(1 << 16)
        return math.ceil(model_input[0] * s), math.ceil(model_input[1] * s)

    def output_hw(self, model_input: tuple[int, int]) -> tuple[int, int]:
        """The row's output (H, W) for a model input of ``model_input``."""
        h, w = self.input_hw(model_input)
        if self.op in ("conv", "dwconv"):
            # "same" padding: a strided conv rounds up, as the papers' tables do (224 -> 112 -> ... 7).
            return math.ceil(h / self.stride), math.ceil(w / self.stride)
        if self.op in ("pixel_shuffle", "upsample"):
            return h * self.factor, w * self.factor
        if self.op == "mean":
            return 1, 1
        return h, w

    @property
    def weights(self) -> int:
        """Parameters of one instance: conv/linear weights plus a bias (or a folded batch norm), PReLU slopes."""
        if self.op in ("conv", "dwconv"):
            return self.cout * (self.cin // self.groups) * self.kernel * self.kernel + self.cout
        if self.op == "linear":
            return self.cin * self.cout + self.cout
        if self.op == "prelu":
            return self.cout
        return 0

    def cost(self, model_input: tuple[int, int], precision: str, name: str) -> OpCost:
        """One instance's :class:`OpCost`: MACs (or output elements) and bytes at ``precision``."""
        h, w = self.input_hw(model_input)
        oh, ow = self.output_hw(model_input)
        out = self.cout * oh * ow
        if self.op in ("conv", "dwconv"):
            work = oh * ow * self.cout * (self.cin // self.groups) * self.kernel * self.kernel
        elif self.op == "linear":
            work = h * w * self.cin * self.cout  # one matrix-vector product per position
        elif self.op_class == "reduction":
            work = self.cin * h * w  # as in costs.py: every input element is read and combined once
        else:
            work = out
        if self.op == "concat":
            read = out  # the inputs together are the output
        elif self.op in ("add", "mul"):
            read = self.inputs * self.cin * h * w
        else:
            read = self.cin * h * w
        return OpCost(name, self.op_class, work, (read + out + self.weights) * BYTES_PER_ELEMENT[precision])


@dataclass(frozen=True)
class Reference:
    """A published (or derived) total of a model: MACs at an input size, or parameters."""

    value: float
    unit: str
    provenance: str
    text: str
    input_hw: tuple[int, int] | None = None

    @property
    def kind(self) -> str:
        """``macs`` or ``params``."""
        return REFERENCE_UNITS[self.unit][0]

    @property
    def count(self) -> float:
        """The total as a plain count (MACs or parameters)."""
        return self.value * REFERENCE_UNITS[self.unit][1]


@dataclass(frozen=True)
class ModelSpec:
    """An anchor model: its paper and layer table, and the totals the table must reproduce."""

    id: str
    name: str
    source: str
    layers: tuple[LayerSpec, ...]
    macs: Reference | None = None
    params: Reference | None = None
    note: str = ""

    @property
    def param_count(self) -> int:
        """Parameters of the layer table (weights, biases, PReLU slopes)."""
        return sum(layer.weights * layer.repeat for layer in self.layers)

    def costs(self, input_hw: tuple[int, int], precision: str) -> ProgramCost:
        """The :class:`ProgramCost` at ``input_hw`` (H, W) and ``precision``: one op per instance."""
        if precision not in BYTES_PER_ELEMENT:
            raise AnchorError(f"precision must be one of {', '.join(BYTES_PER_ELEMENT)}, not {precision!r}")
        h, w = input_hw
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
            raise AnchorError(f"input size must be two positive integers (height, width), not {input_hw!r}")
        ops = []
        for i, layer in enumerate(self.layers):
            for r in range(layer.repeat):
                # Separate ops, not one op with repeat x the work: each is a kernel launch of its own.
                name = f"{self.id}.{i}.{layer.op}" + (f"#{r}" if layer.repeat > 1 else "")
                ops.append(layer.cost((h, w), precision, name))
        return ProgramCost(tuple(ops), precision)


@dataclass(frozen=True)
class Anchor:
    """A published latency: a model at an input size on a device's backend (or compute unit) and precision."""

    id: str
    model: str
    input_hw: tuple[int, int]
    input_provenance: str
    input_text: str
    device: str
    backend: str | None
    unit: str
    precision: str
    latency: Quantity
    runtime: str = ""
    note: str = ""

    @property
    def latency_s(self) -> float:
        """The published latency in seconds."""
        return self.latency.to("s")


# ------------------------------------------------------------------------------------ parsing


_mapping, _table, _text = _checks.mapping, _checks.table, _checks.text


def _count(data: dict[str, Any], key: str, path: str, default: int | None = None) -> int:
    if key not in data and default is not None:
        return default
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        _fail(_join(path, key), f"must be a positive integer, got {value!r}")
    return value


def _provenance(table: dict[str, Any], path: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    kinds = [k for k in ("source", "assumed", "measured") if k in table]
    if not kinds:
        _fail(path, f"no provenance (give {' or '.join(allowed)})")
    if len(kinds) > 1:
        _fail(path, f"more than one provenance ({', '.join(kinds)}); give exactly one")
    if kinds[0] not in allowed:
        _fail(_join(path, kinds[0]), f"not allowed here (use {' or '.join(allowed)})")
    return kinds[0], _text(table, kinds[0], path)


def _number(table: dict[str, Any], key: str, path: str) -> float:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        _fail(_join(path, key), f"must be a positive number, got {value!r}")
    return float(value)


def _bare_number(data: Any, path: str) -> None:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        _fail(path, "no provenance: a bare number; write { value = ..., unit = ..., source = ... }")


def _layer(data: Any, path: str) -> LayerSpec:
    raw = _mapping(data, path)
    if "op" not in raw:
        _fail(_join(path, "op"), "missing")
    op = _text(raw, "op", path)
    if op not in OPS:
        _fail(_join(path, "op"), f"unknown op {op!r} (known: {', '.join(sorted(OPS))})")
    rule = OPS[op]
    _table(raw, path, ("op",) + rule.required, rule.optional + _COMMON)
    where = [k for k in _WHERE if k in raw]
    if len(where) != 1:
        _fail(path, "give exactly one of scale (input size relative to the model input) or pooled = true")
    scale: float | None = None
    if "scale" in raw:
        scale = _number(raw, "scale", path)
    elif raw["pooled"] is not True:
        _fail(_join(path, "pooled"), "must be true (or give scale instead)")
    ints = {k: _count(raw, k, path) for k in ("cin", "cout", "channels", "kernel", "stride", "groups", "factor",
                                               "inputs", "repeat") if k in raw}
    spec: dict[str, Any] = {"repeat": ints.get("repeat", 1), "note": _text(raw, "note", path, "")}
    if "channels" in ints:
        c = ints["channels"]
        cout = c // ints["factor"] ** 2 if op == "pixel_shuffle" else c
        if op == "pixel_shuffle" and c % ints["factor"] ** 2:
            _fail(_join(path, "channels"), f"{c} is not divisible by factor^2 = {ints['factor'] ** 2}")
        spec.update(cin=c, cout=cout, groups=c if op == "dwconv" else 1)
    else:
        spec.update(cin=ints["cin"], cout=ints["cout"], groups=ints.get("groups", 1))
        for key in ("cin", "cout"):
            if ints[key] % spec["groups"]:
                _fail(_join(path, "groups"), f"{spec['groups']} does not divide {key} = {ints[key]}")
    for key in ("kernel", "stride", "factor"):
        if key in ints:
            spec[key] = ints[key]
    spec["inputs"] = ints.get("inputs", 2 if op in ("add", "mul") else 1)
    if op == "upsample":
        spec["mode"] = _text(raw, "mode", path, "nearest")
        if spec["mode"] not in UPSAMPLE_MODES:
            _fail(_join(path, "mode"), f"must be one of {', '.join(UPSAMPLE_MODES)}, got {spec['mode']!r}")
    return LayerSpec(op=op, scale=scale, **spec)


def _reference(data: Any, path: str, kind: str) -> Reference:
    _bare_number(data, path)
    extra = ("height", "width") if kind == "macs" else ()
    table = _table(data, path, ("value", "unit") + extra, REFERENCE_PROVENANCES + ("measured",))
    provenance, text = _provenance(table, path, REFERENCE_PROVENANCES)
    value = _number(table, "value", path)
    allowed = [u for u, (k, _) in REFERENCE_UNITS.items() if k == kind]
    if table["unit"] not in allowed:
        _fail(_join(path, "unit"), f"unknown unit {table['unit']!r} for {kind} (allowed: {', '.join(allowed)})")
    hw = (_count(table, "height", path), _count(table, "width", path)) if kind == "macs" else None
    return Reference(value, table["unit"], provenance, text, hw)


def _model(data: Any, model_id: str) -> ModelSpec:
    path = _join("models", model_id)
    m = _table(data, path, ("name", "source", "layers"), ("macs", "params", "note"))
    rows = m["layers"]
    if not isinstance(rows, list) or not rows:
        _fail(_join(path, "layers"), "must be a non-empty array of layer rows")
    layers = tuple(_layer(row, _join(_join(path, "layers"), i)) for i, row in enumerate(rows))
    model = ModelSpec(model_id, _text(m, "name", path), _text(m, "source", path), layers,
                      _reference(m["macs"], _join(path, "macs"), "macs") if "macs" in m else None,
                      _reference(m["params"], _join(path, "params"), "params") if "params" in m else None,
                      _text(m, "note", path, ""))
    # The table must reproduce the totals it is checked against: a wrong row shows here, at load.
    for key, ref in (("macs", model.macs), ("params", model.params)):
        if ref is None:
            continue
        got = model.costs(ref.input_hw, "fp32").macs if ref.input_hw else model.param_count
        if abs(got - ref.count) > REFERENCE_TOLERANCE * ref.count:
            at = f" at {ref.input_hw[0]}x{ref.input_hw[1]}" if ref.input_hw else ""
            _fail(_join(path, key), f"the layer table gives {got / REFERENCE_UNITS[ref.unit][1]:.4g} {ref.unit}{at}, "
                                    f"more than {REFERENCE_TOLERANCE:.0%} from the reference {ref.value:g} {ref.unit}")
    return model


def _latency(data: Any, path: str) -> Quantity:
    _bare_number(data, path)
    table = _table(data, path, ("value", "unit"), ("source", "assumed", "measured"))
    provenance, text = _provenance(table, path, LATENCY_PROVENANCES)
    value = _number(table, "value", path)
    allowed = [u for u, (dim, _) in UNITS.items() if dim == "time"]
    if table["unit"] not in allowed:
        _fail(_join(path, "unit"), f"unknown unit {table['unit']!r} for time (allowed: {', '.join(allowed)})")
    return Quantity(value, table["unit"], provenance, text)


def _anchor(data: Any, path: str, models: dict[str, ModelSpec], registry: Registry) -> Anchor:
    a = _table(data, path, ("id", "model", "input", "device", "precision", "latency"),
               ("backend", "unit", "runtime", "note"))
    anchor_id = _text(a, "id", path)
    model = _text(a, "model", path)
    if model not in models:
        _fail(_join(path, "model"), f"unknown model {model!r} (known: {', '.join(sorted(models))})")
    p = _join(path, "input")
    _bare_number(a["input"], p)
    raw_input = _table(a["input"], p, ("height", "width"), ("source", "assumed", "measured"))
    input_provenance, input_text = _provenance(raw_input, p, INPUT_PROVENANCES)
    input_hw = (_count(raw_input, "height", p), _count(raw_input, "width", p))
    device_id = _text(a, "device", path)
    known = {**registry.devices, **registry.anchor_devices}
    if device_id not in known:
        _fail(_join(path, "device"), f"unknown device {device_id!r} (known: {', '.join(sorted(known))})")
    device = known[device_id]
    given = [k for k in ("backend", "unit") if k in a]
    if len(given) != 1:
        _fail(path, "give exactly one of backend (a backend of the device) or unit (its compute unit)")
    backend: str | None = None
    if "backend" in a:
        backend = _text(a, "backend", path)
        if backend not in device.backends:
            _fail(_join(path, "backend"), f"{device_id} has no backend {backend!r} "
                                          f"(it has: {', '.join(sorted(device.backends))})")
        unit = device.backends[backend].unit
    else:
        unit = _text(a, "unit", path)
        if unit not in device.units:
            _fail(_join(path, "unit"), f"{device_id} has no compute unit {unit!r} (it has: {', '.join(device.units)})")
        # A unit stands in only where no backend of ours reaches it; otherwise the backend says more.
        on_unit = sorted(b.name for b in device.backends.values() if b.unit == unit)
        if on_unit:
            _fail(_join(path, "unit"), f"{device_id} has backends on {unit!r} ({', '.join(on_unit)}); name one instead")
    precision = _text(a, "precision", path)
    if precision not in PRECISIONS:
        _fail(_join(path, "precision"), f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision not in device.units[unit].peak:
        _fail(_join(path, "precision"), f"unit {unit!r} of {device_id} has no {precision} peak "
                                        f"(it has: {', '.join(device.units[unit].peak)})")
    return Anchor(anchor_id, model, input_hw, input_provenance, input_text, device_id, backend, unit, precision,
                  _latency(a["latency"], _join(path, "latency")), _text(a, "runtime", path, ""),
                  _text(a, "note", path, ""))


def _read(path: Path) -> dict[str, Any]:
    top = _table(_checks.read(path, "the anchor file"), "", ("format", "anchors", "models"))
    if top["format"] != ANCHORS_FORMAT:
        _fail("format", f"must be {ANCHORS_FORMAT!r}, got {top['format']!r}")
    return top


def _models(top: dict[str, Any]) -> dict[str, ModelSpec]:
    if not isinstance(top["models"], dict) or not top["models"]:
        _fail("models", "must be a non-empty table")
    return {model_id: _model(raw, model_id) for model_id, raw in top["models"].items()}


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


# The anchor fits cost the same models thousands of times: parsed once per file version.
@functools.lru_cache(maxsize=8)
def _models_of(key: tuple[str, int, int]) -> dict[str, ModelSpec]:
    return load_models(Path(key[0]))


def load_models(path: Path | None = None) -> dict[str, ModelSpec]:
    """The validated layer tables of an anchor file (default :data:`ANCHORS_PATH`), by model id."""
    return _models(_read(ANCHORS_PATH if path is None else Path(path)))


def load_anchors(path: Path | None = None, registry: Registry | None = None) -> list[Anchor]:
    """Load and validate the anchor file (default :data:`ANCHORS_PATH`, ``mobile/anchors.toml``).

    Devices, backends and units are checked against ``registry`` (default: the shipped device
    registry, anchor-only devices included); every problem raises a one-line :class:`AnchorError`.
    """
    top = _read(ANCHORS_PATH if path is None else Path(path))
    models = _models(top)
    registry = load_registry() if registry is None else registry
    rows = top["anchors"]
    if not isinstance(rows, list) or not rows:
        _fail("anchors", "must be a non-empty array of tables ([[anchors]])")
    anchors: list[Anchor] = []
    seen: set[str] = set()
    for i, raw in enumerate(rows):
        anchor = _anchor(raw, _join("anchors", i), models, registry)
        if anchor.id in seen:
            _fail(_join(_join("anchors", i), "id"), f"duplicate anchor id {anchor.id!r}")
        seen.add(anchor.id)
        anchors.append(anchor)
    return anchors


def model_costs(model_id: str, input_hw: tuple[int, int], precision: str, path: Path | None = None) -> ProgramCost:
    """The :class:`ProgramCost` of anchor model ``model_id`` at input ``input_hw`` (H, W) and ``precision``.

    Conventions of :mod:`seemore.profiling.costs`: conv MACs ``out_h*out_w*cout*cin/groups*k*k``
    (``dwconv`` when ``groups == cin == cout > 1``), linear = matmul, activations, adds, resizes
    and movements with work = output elements, bytes = (inputs + outputs + weights) x element size.
    """
    return _costs_of(_file_key(ANCHORS_PATH if path is None else Path(path)), model_id, tuple(input_hw), precision)


@functools.lru_cache(maxsize=256)
def _costs_of(key: tuple[str, int, int], model_id: str, input_hw: tuple[int, int], precision: str) -> ProgramCost:
    models = _models_of(key)
    if model_id not in models:
        raise AnchorError(f"unknown model {model_id!r}; known: {', '.join(sorted(models))}")
    return models[model_id].costs(input_hw, precision)


def anchor_costs(anchor: Anchor, path: Path | None = None) -> ProgramCost:
    """The :class:`ProgramCost` of an anchor's model at the anchor's input size and precision."""
    return model_costs(anchor.model, anchor.input_hw, anchor.precision, path)
