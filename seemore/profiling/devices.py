"""The device and budget registry (``mobile/devices.toml``): loaded, validated, in canonical units.

Devices and budgets are data with sources, not code. Layout of ``format = "seemore-mobile/devices/1"``:

``devices.<id>``            ``name``, ``platform`` (android / ios / linux), ``soc``, optional ``note``,
                            optional ``anchor_only`` (boolean, default false; see below)
``  .cpu``                  optional ``isa``; ``clusters``: array of {``role``, ``core``, ``count`` (cores),
                            ``max_clock`` (GHz/MHz)}
``  .gpu`` (optional)       ``name``, optional ``clock`` (GHz/MHz), ``note``
``  .npu`` (optional)       ``name``, booleans ``executorch`` / ``litert`` / ``coreml`` (can it reach the
                            NPU or ANE), ``note``
``  .memory``               ``size`` (GB/MB), ``bandwidth`` (GB/s/MB/s), optional ``type``
``  .units.<cpu|gpu|npu|ane>``  ``description``, ``peak.<fp32|fp16|int8>`` (GMAC/s/TMAC/s, at least one),
                            ``active_power`` (W/mW), optional ``threads``, ``note``, ``overhead``
                            (s/ms: the fixed cost of one inference)
``  .backends.<id>``        ``unit`` (a unit of this device), ``artifact`` (pte / tflite / mlpackage), ``note``
``scenarios.<name>``        ``description``, ``per`` (photo / frame), ``lr_height``/``lr_width``,
                            ``tile_height``/``tile_width`` (px), ``scale`` (x), ``frame_rate`` (fps, for
                            ``per = "frame"``), ``note``; ``.budget``: ``latency`` (s/ms), ``energy``
                            (J/mJ), ``power`` (W/mW), optional ``energy_stretch`` (J/mJ)

Every number is ``{ value, unit, <one of source / assumed / measured> }`` (:class:`Quantity`);
``measured`` is allowed on the host device only. :func:`load_registry` raises
:class:`RegistryError` with a one-line message naming the exact key path of the first problem.

A device with ``anchor_only = true`` is one that published latencies were measured on
(``mobile/anchors.toml``) but that this project does not profile or plan for (the Galaxy S22 of
the ExecuTorch benchmark README). It is validated like any other device, but kept out of
:attr:`Registry.devices` and :meth:`Registry.device` (what profiling and planning iterate) and
listed in :attr:`Registry.anchor_devices` instead; :meth:`Registry.any_device` finds either kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seemore.profiling.tomlfile import TomlChecks

REGISTRY_PATH = Path(__file__).resolve().parents[2] / "mobile" / "devices.toml"
REGISTRY_FORMAT = "seemore-mobile/devices/1"
HOST_DEVICE = "host"
PLATFORMS: tuple[str, ...] = ("android", "ios", "linux")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
PROVENANCES: tuple[str, ...] = ("source", "assumed", "measured")
SCENARIO_KINDS: tuple[str, ...] = ("photo", "frame")

# unit -> (dimension, factor to the dimension's canonical unit). GB is decimal (10^9 bytes).
UNITS: dict[str, tuple[str, float]] = {
    "GHz": ("frequency", 1.0), "MHz": ("frequency", 1e-3),
    "GB/s": ("bandwidth", 1.0), "MB/s": ("bandwidth", 1e-3),
    "GB": ("memory", 1.0), "MB": ("memory", 1e-3),
    "GMAC/s": ("compute", 1.0), "TMAC/s": ("compute", 1e3),
    "W": ("power", 1.0), "mW": ("power", 1e-3),
    "s": ("time", 1.0), "ms": ("time", 1e-3),
    "J": ("energy", 1.0), "mJ": ("energy", 1e-3),
    "fps": ("rate", 1.0),
    "cores": ("cores", 1.0), "threads": ("threads", 1.0),
    "px": ("pixels", 1.0), "x": ("scale", 1.0),
}
CANONICAL: dict[str, str] = {"frequency": "GHz", "bandwidth": "GB/s", "memory": "GB", "compute": "GMAC/s",
                             "power": "W", "time": "s", "energy": "J", "rate": "fps", "cores": "cores",
                             "threads": "threads", "pixels": "px", "scale": "x"}
# Dimensions whose values must be whole numbers.
_INTEGRAL = ("cores", "threads", "pixels", "scale")

# The compute units each platform can have: the ANE is Apple's, Hexagon-style NPUs are not.
UNIT_NAMES: dict[str, tuple[str, ...]] = {"android": ("cpu", "gpu", "npu"), "ios": ("cpu", "gpu", "ane"),
                                          "linux": ("cpu", "gpu", "npu")}


@dataclass(frozen=True)
class BackendRule:
    """What a backend id implies: the artifact kind it consumes, the units and platforms it runs on."""

    artifact: str
    units: tuple[str, ...]
    platforms: tuple[str, ...]


# Core ML exists on Apple platforms only; Vulkan and LiteRT's GPU delegate are not the iOS GPU path.
BACKEND_RULES: dict[str, BackendRule] = {
    "executorch-xnnpack": BackendRule("pte", ("cpu",), ("android", "ios", "linux")),
    "executorch-vulkan": BackendRule("pte", ("gpu",), ("android", "linux")),
    "executorch-coreml": BackendRule("pte", ("ane", "gpu", "cpu"), ("ios",)),
    "litert-cpu": BackendRule("tflite", ("cpu",), ("android", "ios", "linux")),
    "litert-gpu": BackendRule("tflite", ("gpu",), ("android", "linux")),
    "coreml": BackendRule("mlpackage", ("ane", "gpu", "cpu"), ("ios",)),
}


class RegistryError(ValueError):
    """A registry file that is malformed, or a look-up of an unknown name; the message is one line."""


_checks = TomlChecks(RegistryError)
_fail, _join = _checks.fail, TomlChecks.join


def _unknown(name: str, what: str, known: Any) -> RegistryError:
    return RegistryError(f"unknown {what} {name!r}; known: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class Quantity:
    """A number with its unit and provenance (``source``, ``assumed`` or ``measured`` and its text)."""

    value: float
    unit: str
    provenance: str
    text: str

    @property
    def dimension(self) -> str:
        """What the unit measures (``time``, ``compute``, ...)."""
        return UNITS[self.unit][0]

    def to(self, unit: str) -> float:
        """The value in ``unit`` (same dimension); :class:`RegistryError` otherwise."""
        if unit not in UNITS or UNITS[unit][0] != self.dimension:
            raise RegistryError(f"cannot express {self.value:g} {self.unit} in {unit!r}")
        return self.value * UNITS[self.unit][1] / UNITS[unit][1]

    @property
    def canonical(self) -> float:
        """The value in its dimension's canonical unit (GHz, GB/s, GB, GMAC/s, W, s, J, fps, ...)."""
        return self.to(CANONICAL[self.dimension])

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


@dataclass(frozen=True)
class CpuCluster:
    """Cores of one type and clock."""

    role: str
    core: str
    count: Quantity
    max_clock: Quantity


@dataclass(frozen=True)
class Gpu:
    """The device's GPU (clock where known)."""

    name: str
    clock: Quantity | None
    note: str = ""


@dataclass(frozen=True)
class Npu:
    """The device's NPU or Neural Engine, and which runtimes can reach it."""

    name: str
    executorch: bool
    litert: bool
    coreml: bool
    note: str = ""


@dataclass(frozen=True)
class Memory:
    """DRAM size and bandwidth."""

    size: Quantity
    bandwidth: Quantity
    type: str = ""


@dataclass(frozen=True)
class ComputeUnit:
    """Where a backend computes: peak rate per precision and active power."""

    name: str
    description: str
    peak: dict[str, Quantity]
    active_power: Quantity
    threads: Quantity | None = None
    note: str = ""
    # Fixed cost of one inference on this unit (dispatch, I/O transfer); None: the estimator uses
    # the per-inference overhead it measured on the host.
    overhead: Quantity | None = None
    # On-chip memory an op's tensors can stay in without DRAM traffic (an accelerator's SRAM);
    # None: every op's bytes go to DRAM.
    onchip: Quantity | None = None

    def peak_gmacs(self, precision: str) -> float:
        """Peak rate at ``precision`` in GMAC/s; :class:`RegistryError` where the unit has none."""
        if precision not in self.peak:
            raise RegistryError(f"unit {self.name!r} has no {precision} peak; it has: {', '.join(self.peak)}")
        return self.peak[precision].to("GMAC/s")


@dataclass(frozen=True)
class Backend:
    """A runtime + delegate on a device: the unit it runs on and the artifact kind it consumes."""

    name: str
    unit: str
    artifact: str
    note: str = ""


@dataclass(frozen=True)
class Device:
    """One phone (or the host): SoC facts, compute units and the backends that apply."""

    id: str
    name: str
    platform: str
    soc: str
    clusters: tuple[CpuCluster, ...]
    memory: Memory
    units: dict[str, ComputeUnit]
    backends: dict[str, Backend]
    gpu: Gpu | None = None
    npu: Npu | None = None
    isa: str = ""
    note: str = ""
    anchor_only: bool = False

    def unit(self, name: str) -> ComputeUnit:
        """The compute unit ``name``; :class:`RegistryError` listing the known ones otherwise."""
        if name not in self.units:
            raise _unknown(name, f"compute unit of {self.id}", self.units)
        return self.units[name]

    def backend(self, name: str) -> Backend:
        """The backend ``name``; :class:`RegistryError` listing the known ones otherwise."""
        if name not in self.backends:
            raise _unknown(name, f"backend of {self.id}", self.backends)
        return self.backends[name]

    def unit_of(self, backend: str) -> ComputeUnit:
        """The compute unit the backend ``backend`` runs on."""
        return self.units[self.backend(backend).unit]


@dataclass(frozen=True)
class Budget:
    """What one photo or frame may cost."""

    latency: Quantity
    energy: Quantity
    power: Quantity
    energy_stretch: Quantity | None = None


@dataclass(frozen=True)
class Scenario:
    """A use case: input geometry, tiling, rate and its budget."""

    name: str
    description: str
    per: str
    lr_height: Quantity
    lr_width: Quantity
    scale: Quantity
    tile_height: Quantity
    tile_width: Quantity
    budget: Budget
    frame_rate: Quantity | None = None
    note: str = ""

    @property
    def lr_size(self) -> tuple[int, int]:
        """LR input (H, W) in pixels."""
        return int(self.lr_height.value), int(self.lr_width.value)

    @property
    def tile(self) -> tuple[int, int]:
        """Tile (H, W) in LR pixels: the exported fixed input size."""
        return int(self.tile_height.value), int(self.tile_width.value)

    @property
    def output_size(self) -> tuple[int, int]:
        """Output (H, W) in pixels."""
        s = int(self.scale.value)
        return self.lr_size[0] * s, self.lr_size[1] * s


@dataclass(frozen=True)
class Registry:
    """All devices and scenarios of a registry file.

    ``devices`` holds the devices to profile and plan for; ``anchor_devices`` the anchor-only
    ones (published measurements only), so that no listing of ``devices`` meets them by accident.
    """

    devices: dict[str, Device]
    scenarios: dict[str, Scenario]
    path: Path | None = None
    anchor_devices: dict[str, Device] = field(default_factory=dict)

    def device(self, name: str) -> Device:
        """The profiled device ``name`` (not an anchor-only one); :class:`RegistryError` listing the known ids
        otherwise."""
        if name not in self.devices:
            raise _unknown(name, "device", self.devices)
        return self.devices[name]

    def any_device(self, name: str) -> Device:
        """The device ``name``, profiled or anchor-only; :class:`RegistryError` listing both kinds otherwise."""
        if name in self.devices:
            return self.devices[name]
        if name in self.anchor_devices:
            return self.anchor_devices[name]
        raise _unknown(name, "device", {**self.devices, **self.anchor_devices})

    def scenario(self, name: str) -> Scenario:
        """The scenario ``name``; :class:`RegistryError` listing the known ones otherwise."""
        if name not in self.scenarios:
            raise _unknown(name, "scenario", self.scenarios)
        return self.scenarios[name]


# ------------------------------------------------------------------------------------ parsing


_mapping, _table, _text = _checks.mapping, _checks.table, _checks.text


def _choice(data: dict[str, Any], key: str, path: str, allowed: tuple[str, ...]) -> str:
    value = _text(data, key, path)
    if value not in allowed:
        _fail(_join(path, key), f"must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _quantity(data: Any, path: str, dimension: str, host: bool) -> Quantity:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        _fail(path, "no source: a bare number; write { value = ..., unit = ..., source = ... } (or assumed/measured)")
    table = _table(data, path, ("value", "unit"), PROVENANCES)
    kinds = [k for k in PROVENANCES if k in table]
    if not kinds:
        _fail(path, "no source (give exactly one of source, assumed, measured)")
    if len(kinds) > 1:
        _fail(path, f"more than one provenance ({', '.join(kinds)}); give exactly one")
    kind = kinds[0]
    text = _text(table, kind, path)
    if kind == "measured" and not host:
        _fail(_join(path, kind), f"measured values are allowed on the {HOST_DEVICE} device only; use source or assumed")
    value = table["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(_join(path, "value"), f"must be a finite number, got {value!r}")
    if value <= 0:
        _fail(_join(path, "value"), f"must be positive, got {value}")
    if dimension in _INTEGRAL and value != int(value):
        _fail(_join(path, "value"), f"must be a whole number, got {value}")
    unit = table["unit"]
    allowed = [u for u, (dim, _) in UNITS.items() if dim == dimension]
    if unit not in allowed:
        _fail(_join(path, "unit"), f"unknown unit {unit!r} for {dimension} (allowed: {', '.join(allowed)})")
    return Quantity(float(value), unit, kind, text)


def _optional_quantity(data: dict[str, Any], key: str, path: str, dimension: str, host: bool) -> Quantity | None:
    return _quantity(data[key], _join(path, key), dimension, host) if key in data else None


def _clusters(data: Any, path: str, host: bool) -> tuple[CpuCluster, ...]:
    cpu = _table(data, path, ("clusters",), ("isa",))
    clusters = cpu["clusters"]
    if not isinstance(clusters, list) or not clusters:
        _fail(_join(path, "clusters"), "must be a non-empty array of tables")
    out = []
    for i, raw in enumerate(clusters):
        p = _join(_join(path, "clusters"), i)
        c = _table(raw, p, ("role", "core", "count", "max_clock"))
        out.append(CpuCluster(_text(c, "role", p), _text(c, "core", p),
                              _quantity(c["count"], _join(p, "count"), "cores", host),
                              _quantity(c["max_clock"], _join(p, "max_clock"), "frequency", host)))
    return tuple(out)


def _unit(data: Any, path: str, name: str, host: bool) -> ComputeUnit:
    u = _table(data, path, ("description", "peak", "active_power"), ("threads", "note", "overhead", "onchip"))
    peak_path = _join(path, "peak")
    peaks = _table(u["peak"], peak_path, (), PRECISIONS)
    if not peaks:
        _fail(peak_path, f"needs at least one of {', '.join(PRECISIONS)}")
    return ComputeUnit(
        name, _text(u, "description", path),
        {p: _quantity(peaks[p], _join(peak_path, p), "compute", host) for p in PRECISIONS if p in peaks},
        _quantity(u["active_power"], _join(path, "active_power"), "power", host),
        _optional_quantity(u, "threads", path, "threads", host), _text(u, "note", path, ""),
        _optional_quantity(u, "overhead", path, "time", host),
        _optional_quantity(u, "onchip", path, "memory", host),
    )


def _backend(data: Any, path: str, name: str, platform: str, units: dict[str, ComputeUnit]) -> Backend:
    if name not in BACKEND_RULES:
        _fail(path, f"unknown backend (known: {', '.join(sorted(BACKEND_RULES))})")
    rule = BACKEND_RULES[name]
    if platform not in rule.platforms:
        _fail(path, f"{name} does not run on {platform} (only on {', '.join(rule.platforms)})")
    b = _table(data, path, ("unit", "artifact"), ("note",))
    unit = _text(b, "unit", path)
    if unit not in units:
        known = ", ".join(sorted(units)) or "none"
        _fail(_join(path, "unit"), f"names compute unit {unit!r}, which this device lacks (units: {known})")
    if unit not in rule.units:
        _fail(_join(path, "unit"), f"{name} runs on {' or '.join(rule.units)}, not {unit}")
    artifact = _text(b, "artifact", path)
    if artifact != rule.artifact:
        _fail(_join(path, "artifact"), f"{name} consumes {rule.artifact!r} artifacts, not {artifact!r}")
    return Backend(name, unit, artifact, _text(b, "note", path, ""))


def _device(data: Any, device_id: str) -> Device:
    path = _join("devices", device_id)
    host = device_id == HOST_DEVICE
    d = _table(data, path, ("name", "platform", "soc", "cpu", "memory", "units", "backends"),
               ("gpu", "npu", "note", "anchor_only"))
    platform = _choice(d, "platform", path, PLATFORMS)
    anchor_only = d.get("anchor_only", False)
    if not isinstance(anchor_only, bool):
        _fail(_join(path, "anchor_only"), "must be true or false")
    # The host is what the tests and benchmarks run on: it is always profiled.
    if anchor_only and host:
        _fail(_join(path, "anchor_only"), f"the {HOST_DEVICE} device cannot be anchor-only")
    clusters = _clusters(d["cpu"], _join(path, "cpu"), host)
    isa = _text(d["cpu"], "isa", _join(path, "cpu"), "")
    gpu = npu = None
    if "gpu" in d:
        p = _join(path, "gpu")
        g = _table(d["gpu"], p, ("name",), ("clock", "note"))
        gpu = Gpu(_text(g, "name", p), _optional_quantity(g, "clock", p, "frequency", host), _text(g, "note", p, ""))
    if "npu" in d:
        p = _join(path, "npu")
        n = _table(d["npu"], p, ("name", "executorch", "litert", "coreml"), ("note",))
        for key in ("executorch", "litert", "coreml"):
            if not isinstance(n[key], bool):
                _fail(_join(p, key), "must be true or false")
        npu = Npu(_text(n, "name", p), n["executorch"], n["litert"], n["coreml"], _text(n, "note", p, ""))
    p = _join(path, "memory")
    m = _table(d["memory"], p, ("size", "bandwidth"), ("type",))
    memory = Memory(_quantity(m["size"], _join(p, "size"), "memory", host),
                    _quantity(m["bandwidth"], _join(p, "bandwidth"), "bandwidth", host), _text(m, "type", p, ""))
    p = _join(path, "units")
    raw_units = _table(d["units"], p, (), UNIT_NAMES[platform])
    if "cpu" not in raw_units:
        _fail(_join(p, "cpu"), "missing")
    units = {name: _unit(raw, _join(p, name), name, host) for name, raw in raw_units.items()}
    p = _join(path, "backends")
    raw_backends = _mapping(d["backends"], p)
    if not raw_backends:
        _fail(p, "needs at least one backend")
    backends = {name: _backend(raw, _join(p, name), name, platform, units) for name, raw in raw_backends.items()}
    return Device(device_id, _text(d, "name", path), platform, _text(d, "soc", path), clusters, memory, units,
                  backends, gpu, npu, isa, _text(d, "note", path, ""), anchor_only)


def _scenario(data: Any, name: str) -> Scenario:
    path = _join("scenarios", name)
    geometry = ("lr_height", "lr_width", "scale", "tile_height", "tile_width")
    s = _table(data, path, ("description", "per", "budget") + geometry, ("frame_rate", "note"))
    dims = {"scale": "scale"}
    q = {k: _quantity(s[k], _join(path, k), dims.get(k, "pixels"), False) for k in geometry}
    per = _choice(s, "per", path, SCENARIO_KINDS)
    frame_rate = _optional_quantity(s, "frame_rate", path, "rate", False)
    if per == "frame" and frame_rate is None:
        _fail(_join(path, "frame_rate"), "missing (a per-frame scenario needs a frame rate)")
    p = _join(path, "budget")
    b = _table(s["budget"], p, ("latency", "energy", "power"), ("energy_stretch",))
    budget = Budget(_quantity(b["latency"], _join(p, "latency"), "time", False),
                    _quantity(b["energy"], _join(p, "energy"), "energy", False),
                    _quantity(b["power"], _join(p, "power"), "power", False),
                    _optional_quantity(b, "energy_stretch", p, "energy", False))
    # A frame that takes longer than its period cannot keep up, whatever the pipeline.
    if frame_rate is not None and budget.latency.to("s") > 1.0 / frame_rate.to("fps") * (1 + 1e-9):
        _fail(_join(p, "latency"), f"{budget.latency} exceeds the frame period at {frame_rate}")
    return Scenario(name, _text(s, "description", path), per, q["lr_height"], q["lr_width"], q["scale"],
                    q["tile_height"], q["tile_width"], budget, frame_rate, _text(s, "note", path, ""))


def parse_registry(data: Any, path: Path | None = None) -> Registry:
    """Validate a parsed registry document (a ``tomllib`` result) and build the :class:`Registry`."""
    top = _table(data, "", ("format", "devices", "scenarios"))
    if top["format"] != REGISTRY_FORMAT:
        _fail("format", f"must be {REGISTRY_FORMAT!r}, got {top['format']!r}")
    for key in ("devices", "scenarios"):
        if not isinstance(top[key], dict) or not top[key]:
            _fail(key, "must be a non-empty table")
    parsed = [_device(raw, name) for name, raw in top["devices"].items()]
    devices = {d.id: d for d in parsed if not d.anchor_only}
    if not devices:
        _fail("devices", "needs at least one device that is not anchor-only")
    scenarios = {name: _scenario(raw, name) for name, raw in top["scenarios"].items()}
    return Registry(devices, scenarios, path, {d.id: d for d in parsed if d.anchor_only})


def load_registry(path: Path | None = None) -> Registry:
    """Load and validate the registry file (default :data:`REGISTRY_PATH`, ``mobile/devices.toml``)."""
    path = REGISTRY_PATH if path is None else Path(path)
    return parse_registry(_checks.read(path, "the device registry"), path)
