"""Latency and energy estimates from an artifact's program, when no phone is attached.

The model, kept small enough to state in a report:

* **per op**: ``time = max(work / rate[group], bytes / bandwidth)``, summed over the program's
  ops (:mod:`seemore.profiling.costs`), plus a fixed per-inference ``overhead``;
* **rates** per op group (``dense`` convolutions and matmuls, ``dwconv``, ``elementwise``,
  ``reduction``, ``resize``, ``movement``) are *measured* on this host: the per-op timings of
  the host ``.pte`` (ETDump, XNNPACK's operator names mapped to groups) divided into the
  program's work per group (:func:`calibrate`);
* on a **device**, each group's rate is the host's scaled by the ratio of the compute unit's
  peak to the host CPU's peak at that precision (the registry, :mod:`seemore.profiling.devices`),
  times a rate factor, with a per-inference overhead, both fitted per (kind of compute unit,
  precision) to the published anchors (:mod:`seemore.profiling.anchors`; :func:`fit_correction`),
  leaving out the anchor being checked;
* **energy** per inference is ``time x active power`` of the unit (registry).

Every :class:`Estimate` carries these assumptions as text, and is labelled an estimate wherever
it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from seemore.profiling.costs import ProgramCost

# The rate groups of the estimator and the cost classes each one covers.
RATE_GROUPS: tuple[str, ...] = ("dense", "dwconv", "elementwise", "reduction", "resize", "movement")
GROUP_OF_CLASS: dict[str, str] = {"conv": "dense", "matmul": "dense", "dwconv": "dwconv",
                                  "elementwise": "elementwise", "reduction": "reduction", "resize": "resize",
                                  "movement": "movement"}

# XNNPACK operator names in an ETDump ("Convolution (NHWC, F32) IGEMM #3") -> rate group, first
# match wins. 1x1 convolutions run as "Fully Connected": both are the dense group.
_XNNPACK_GROUPS: tuple[tuple[str, str], ...] = (
    ("DWConv", "dwconv"),
    ("Convolution", "dense"),
    ("Fully Connected", "dense"),
    ("Batch Matrix Multiply", "dense"),
    ("Resize", "resize"),
    ("Mean", "reduction"),
    ("Sum", "reduction"),
    ("Softmax", "reduction"),
    ("Max Pooling", "reduction"),
    ("Average Pooling", "reduction"),
    ("Transpose", "movement"),
    ("Copy", "movement"),
    ("Concatenate", "movement"),
    ("Slice", "movement"),
    ("Depth To Space", "movement"),
    ("Constant Pad", "movement"),
    ("Even Split", "movement"),
    ("Static Reshape", "movement"),
)


class EstimateError(ValueError):
    """An estimate cannot be made (a precision the unit has no peak for, no calibration)."""


def xnnpack_group(event_name: str) -> str:
    """The rate group of an XNNPACK operator as ETDump names it; elementwise when none matches
    (Add, Multiply, GELU, Convert, Square Root, ... are all one pass over their elements)."""
    for needle, group in _XNNPACK_GROUPS:
        if needle in event_name:
            return group
    return "elementwise"


# LiteRT builtin op types (benchmark_model's op profile) -> rate group.
_TFLITE_GROUPS: dict[str, str] = {
    "CONV_2D": "dense", "FULLY_CONNECTED": "dense", "BATCH_MATMUL": "dense", "DEPTHWISE_CONV_2D": "dwconv",
    "MEAN": "reduction", "SUM": "reduction", "SOFTMAX": "reduction", "RESIZE_BILINEAR": "resize",
    "TRANSPOSE": "movement", "RESHAPE": "movement", "DEPTH_TO_SPACE": "movement", "CONCATENATION": "movement",
    "SLICE": "movement", "STRIDED_SLICE": "movement", "PAD": "movement",
    **dict.fromkeys(("ADD", "SUB", "MUL", "DIV", "GELU", "MINIMUM", "MAXIMUM", "RSQRT", "QUANTIZE", "DEQUANTIZE",
                     "LOGISTIC", "TANH", "RELU", "RELU6", "SQUARED_DIFFERENCE"), "elementwise"),
}


def measured_group(op_name: str) -> str | None:
    """The rate group of a measured op: an XNNPACK operator (ETDump) or a LiteRT builtin type
    (benchmark_model); None for what is neither (a whole delegate node, a runtime event)."""
    if op_name in _TFLITE_GROUPS:
        return _TFLITE_GROUPS[op_name]
    xnnpack = ("Convolution", "Fully Connected", "Add", "Multiply", "Subtract", "GELU", "Mean", "Softmax",
               "Transpose", "Resize", "Copy", "Concatenate", "Slice", "Depth To Space", "Square", "Reciprocal",
               "Convert", "Static", "Minimum", "Maximum", "Clamp", "Divide", "Batch Matrix", "Constant Pad",
               "Even Split", "Sigmoid", "Tanh")
    return xnnpack_group(op_name) if op_name.startswith(xnnpack) else None


def work_by_group(cost: ProgramCost) -> dict[str, int]:
    """The program's work per rate group."""
    out = dict.fromkeys(RATE_GROUPS, 0)
    for op in cost.ops:
        out[GROUP_OF_CLASS[op.op_class]] += op.work
    return out


@dataclass(frozen=True)
class Calibration:
    """Effective rates of this host's CPU at one precision, from one artifact's per-op timings.

    ``rates`` are work units per second per group; ``overhead_ms`` is what one inference took
    beyond the sum of its ops (the runtime's own dispatch and I/O copies).
    """

    precision: str
    rates: Mapping[str, float]
    overhead_ms: float
    measured_ms: float
    runs: int
    source: str
    group_ms: Mapping[str, float] = field(default_factory=dict)


def calibrate(events: Iterable[tuple[str, float]], execute_ms: float, cost: ProgramCost, runs: int,
              source: str) -> Calibration:
    """A :class:`Calibration` from ETDump operator events (name, mean ms per inference) of one
    artifact, its mean end-to-end time ``execute_ms``, and its program's cost.

    A group with work but no time (ops too short to time) gets the rate of the group's work
    over one microsecond, i.e. effectively free, rather than a division by zero.
    """
    group_ms = dict.fromkeys(RATE_GROUPS, 0.0)
    for name, ms in events:
        group_ms[xnnpack_group(name)] += ms
    work = work_by_group(cost)
    rates = {}
    for group in RATE_GROUPS:
        if work[group] == 0:
            continue
        rates[group] = work[group] / (max(group_ms[group], 1e-3) / 1e3)
    overhead = max(execute_ms - sum(group_ms.values()), 0.0)
    return Calibration(cost.precision, rates, overhead, execute_ms, runs, source, group_ms)


@dataclass(frozen=True)
class UnitModel:
    """What the estimator needs of one compute unit: peaks (GMAC/s) per precision, memory
    bandwidth (GB/s), active power (W) and its kind (``cpu``, ``gpu``, ``ane``, ``npu``)."""

    kind: str
    peaks: Mapping[str, float]
    bandwidth_gbs: float
    power_w: float

    def peak(self, precision: str) -> float:
        """The peak at ``precision``, in GMAC/s."""
        if precision not in self.peaks:
            raise EstimateError(f"the {self.kind} unit has no {precision} peak in the registry")
        return self.peaks[precision]


@dataclass(frozen=True)
class Estimate:
    """The estimated time and energy of one inference of one program on one compute unit."""

    latency_ms: float
    group_ms: Mapping[str, float]
    overhead_ms: float
    energy_mj: float
    power_w: float
    memory_bound_ms: float
    assumptions: tuple[str, ...]


def estimate(cost: ProgramCost, calibration: Calibration, host: UnitModel, unit: UnitModel,
             correction: float = 1.0, overhead_ms: float | None = None) -> Estimate:
    """Estimate one inference of ``cost`` on ``unit`` from the host ``calibration``.

    ``correction`` multiplies every scaled rate (the anchors' factor for the unit's kind);
    ``overhead_ms`` replaces the host's measured per-inference overhead, which is otherwise
    scaled like the ops (e.g. the registry's figure for an NPU). The calibration's precision must be the one the host ran; the unit's
    peak at the program's precision divided by the host's peak at the calibration precision is
    the scale.
    """
    if correction <= 0 or not math.isfinite(correction):
        raise EstimateError(f"correction factor must be positive, got {correction}")
    scale = unit.peak(cost.precision) / host.peak(calibration.precision) * correction
    group_ms = dict.fromkeys(RATE_GROUPS, 0.0)
    memory_bound = 0.0
    bandwidth = unit.bandwidth_gbs * 1e9
    for op in cost.ops:
        group = GROUP_OF_CLASS[op.op_class]
        rate = calibration.rates.get(group)
        if rate is None:
            # A group the calibration program lacks: the dense rate, the only MAC-sized one.
            rate = calibration.rates["dense"]
        compute_s = op.work / (rate * scale)
        memory_s = op.bytes / bandwidth
        if memory_s > compute_s:
            memory_bound += memory_s * 1e3
        group_ms[group] += max(compute_s, memory_s) * 1e3
    # The host's overhead is CPU work of the runtime (dispatch, copies): it scales like the ops.
    overhead = calibration.overhead_ms / scale if overhead_ms is None else overhead_ms
    latency = sum(group_ms.values()) + overhead
    assumptions = (
        f"per-op time = max(work / rate, bytes / {unit.bandwidth_gbs:g} GB/s), plus {overhead:.2f} ms per inference",
        f"rates: this host's {calibration.precision} rates per op group ({calibration.source}) x "
        f"{unit.peak(cost.precision):g} / {host.peak(calibration.precision):g} GMAC/s peak ratio"
        + (f" x {correction:.3g} ({unit.kind} correction fitted to the published anchors)" if correction != 1.0
           else ""),
        f"energy = latency x {unit.power_w:g} W active power of the {unit.kind} unit (registry)",
    )
    return Estimate(latency, group_ms, overhead, latency * unit.power_w, unit.power_w, memory_bound, assumptions)


@dataclass(frozen=True)
class Correction:
    """What the anchors of one (unit kind, precision) say about the raw estimates: a rate factor
    and, with two or more anchors, a fitted per-inference overhead (None: the unit's own)."""

    factor: float
    overhead_ms: float | None
    anchors: int


def fit_correction(raw_ms: Sequence[float], published_ms: Sequence[float]) -> Correction:
    """Fit ``published = overhead + raw / factor`` to anchors, in log space (every anchor counts
    alike, whatever its size). ``raw_ms`` are compute-only estimates (no overhead, factor 1).

    No anchors: factor 1. One: the factor alone (``raw / published``). Two or more: the factor
    and an overhead between 1 us and 50 ms, by least squares of the log ratio.
    """
    if len(raw_ms) != len(published_ms):
        raise EstimateError("one published latency per raw estimate")
    values = [*raw_ms, *published_ms]
    if any(v <= 0 or not math.isfinite(v) for v in values):
        raise EstimateError("anchor latencies and raw estimates must be positive and finite")
    if not raw_ms:
        return Correction(1.0, None, 0)
    if len(raw_ms) == 1:
        return Correction(raw_ms[0] / published_ms[0], None, 1)
    import numpy as np
    from scipy.optimize import least_squares

    raw, published = np.asarray(raw_ms, dtype=float), np.asarray(published_ms, dtype=float)

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.log(math.exp(x[1]) + raw * math.exp(-x[0])) - np.log(published)

    start = [math.log(float(np.exp(np.mean(np.log(raw / published))))), math.log(0.1)]
    fit = least_squares(residuals, start, bounds=([-20.0, math.log(1e-3)], [20.0, math.log(50.0)]))
    return Correction(math.exp(fit.x[0]), math.exp(fit.x[1]), len(raw_ms))
