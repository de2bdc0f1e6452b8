"""Latency and energy estimates from an artifact's program, when no phone is attached.

The model, kept small enough to state in a report:

* **per op**: ``time = max(work / rate[group], bytes / bandwidth)``, summed over the program's
  ops (:mod:`seemore.profiling.costs`), plus a fixed per-inference ``overhead``; an op whose
  tensors fit in the unit's on-chip memory moves no DRAM bytes, and the host estimating itself
  adds no bandwidth bound (its measured rates contain its memory traffic);
* **rates** per op group (``dense`` convolutions and matmuls, ``dwconv``, ``elementwise``,
  ``reduction``, ``resize``, ``movement``) are *measured* on this host: the per-op timings of
  the host ``.pte`` (ETDump, XNNPACK's operator names mapped to groups) divided into the
  program's work per group (:func:`calibrate`);
* on a **device**, each group's rate is the host's scaled by the ratio of the compute unit's
  peak to the host CPU's peak at that precision (the registry, :mod:`seemore.profiling.devices`),
  times a rate factor, with a per-inference overhead, both fitted per (kind of compute unit,
  precision) to the estimator's own predictions of the published anchors
  (:mod:`seemore.profiling.anchors`; :func:`fit_correction`), leaving out the anchor being checked;
* **energy** per inference is ``time x active power`` of the unit (registry).

Every :class:`Estimate` carries these assumptions as text, and is labelled an estimate wherever
it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    bandwidth (GB/s), active power (W), its kind (``cpu``, ``gpu``, ``ane``, ``npu``) and the
    on-chip memory (MB) an op's tensors may stay in without going to DRAM (0: none assumed)."""

    kind: str
    peaks: Mapping[str, float]
    bandwidth_gbs: float
    power_w: float
    onchip_mb: float = 0.0

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
             correction: float = 1.0, overhead_ms: float | None = None, memory_term: bool = True) -> Estimate:
    """Estimate one inference of ``cost`` on ``unit`` from the host ``calibration``.

    ``correction`` multiplies every scaled rate (the anchors' factor for the unit's kind);
    ``overhead_ms`` replaces the host's measured per-inference overhead, which is otherwise
    scaled like the ops (e.g. the registry's figure for an NPU). The calibration's precision must
    be the one the host ran; the unit's peak at the program's precision divided by the host's peak
    at the calibration precision is the scale. ``memory_term=False`` drops the bandwidth bound:
    for the host itself, whose measured rates already contain its memory traffic (counting it
    again would charge the host's bandwidth twice).
    """
    if correction <= 0 or not math.isfinite(correction):
        raise EstimateError(f"correction factor must be positive, got {correction}")
    scale = unit.peak(cost.precision) / host.peak(calibration.precision) * correction
    group_ms = dict.fromkeys(RATE_GROUPS, 0.0)
    memory_bound = 0.0
    bandwidth = unit.bandwidth_gbs * 1e9
    onchip = unit.onchip_mb * 1e6
    for op in cost.ops:
        group = GROUP_OF_CLASS[op.op_class]
        rate = calibration.rates.get(group)
        if rate is None:
            # A group the calibration program lacks: the dense rate, the only MAC-sized one.
            rate = calibration.rates["dense"]
        compute_s = op.work / (rate * scale)
        # An op whose inputs and outputs fit in the unit's on-chip memory moves nothing over DRAM.
        memory_s = 0.0 if not memory_term or op.bytes <= onchip else op.bytes / bandwidth
        if memory_s > compute_s:
            memory_bound += memory_s * 1e3
        group_ms[group] += max(compute_s, memory_s) * 1e3
    # The host's overhead is CPU work of the runtime (dispatch, copies): it scales like the ops.
    overhead = calibration.overhead_ms / scale if overhead_ms is None else overhead_ms
    latency = sum(group_ms.values()) + overhead
    assumptions = (
        (f"per-op time = max(work / rate, bytes / {unit.bandwidth_gbs:g} GB/s), plus {overhead:.2f} ms per inference"
         if memory_term else f"per-op time = work / measured rate (memory traffic included), plus {overhead:.2f} ms "
         "per inference")
        + (f"; ops whose tensors fit in {unit.onchip_mb:g} MB on chip move no DRAM bytes" if unit.onchip_mb else ""),
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
    and, when the anchors span two or more models, a fitted per-inference overhead (None: the
    unit's own, from the registry or the host's measurement)."""

    factor: float
    overhead_ms: float | None
    anchors: int


# Weight of the prior that keeps the rate factor near 1 where the anchors do not decide it (a
# memory-bound anchor says nothing about compute rates): one unit of log residual per e-fold.
_FACTOR_PRIOR = 0.05


def fit_correction(predict: Callable[[float, float | None], Sequence[float]], published_ms: Sequence[float],
                   fit_overhead: bool) -> Correction:
    """Fit the rate factor (and, with ``fit_overhead``, the per-inference overhead) so that the
    estimator's own predictions of the anchors match their published latencies, in log space
    (every anchor counts alike, whatever its size).

    ``predict(factor, overhead_ms)`` returns the estimates of the anchors with that correction
    (``overhead_ms`` None: the unit's own overhead), so the fit sees exactly the model that later
    predicts: the roofline's memory-bound ops, which no rate factor speeds up, included. A weak
    prior holds the factor near 1 where the anchors leave it free. The overhead is fitted within
    1 us to 50 ms, and only when asked (anchors of one model cannot tell overhead from rate).
    """
    published = [float(v) for v in published_ms]
    if any(v <= 0 or not math.isfinite(v) for v in published):
        raise EstimateError("published anchor latencies must be positive and finite")
    if not published:
        return Correction(1.0, None, 0)
    import numpy as np
    from scipy.optimize import least_squares

    target = np.log(np.asarray(published))

    def residuals(x: np.ndarray) -> np.ndarray:
        overhead = math.exp(x[1]) if fit_overhead else None
        predicted = np.asarray(predict(math.exp(x[0]), overhead), dtype=float)
        if predicted.shape != target.shape or not np.all(np.isfinite(predicted)) or np.any(predicted <= 0):
            raise EstimateError("the estimator gave no positive estimate for an anchor")
        return np.concatenate([np.log(predicted) - target, [_FACTOR_PRIOR * x[0]]])

    start = [0.0, math.log(0.1)] if fit_overhead else [0.0]
    lower = [-20.0, math.log(1e-3)] if fit_overhead else [-20.0]
    upper = [20.0, math.log(50.0)] if fit_overhead else [20.0]
    fit = least_squares(residuals, start, bounds=(lower, upper), diff_step=1e-3)
    overhead = math.exp(fit.x[1]) if fit_overhead else None
    return Correction(math.exp(fit.x[0]), overhead, len(published))
