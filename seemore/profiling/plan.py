"""Per device: every backend's artifacts, estimated per inference and per scenario against the
budgets of the registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from seemore.profiling.anchors import Anchor, anchor_costs
from seemore.profiling.devices import ComputeUnit, Device, Registry, Scenario
from seemore.profiling.estimate import (
    Calibration,
    Correction,
    Estimate,
    EstimateError,
    UnitModel,
    estimate,
    fit_correction,
)
from seemore.profiling.host import BACKEND_ARTIFACTS, FoundArtifact, artifact_cost

HOST_DEVICE = "host"


def unit_model(device: Device, unit_name: str) -> UnitModel:
    """The estimator's view of one compute unit of a registry device."""
    unit: ComputeUnit = device.unit(unit_name)
    peaks = {p: q.to("GMAC/s") for p, q in unit.peak.items()}
    onchip_mb = 0.0 if unit.onchip is None else unit.onchip.to("GB") * 1e3
    return UnitModel(unit_name, peaks, device.memory.bandwidth.to("GB/s"), unit.active_power.to("W"), onchip_mb)


def unit_overhead_ms(device: Device, unit_name: str) -> float | None:
    """The unit's fixed per-inference cost from the registry, or None (the host's measured one)."""
    overhead = device.unit(unit_name).overhead
    return None if overhead is None else overhead.to("ms")


def compute_precision(unit: UnitModel, precision: str) -> str:
    """The precision a unit computes an artifact of ``precision`` in: its own when the unit has a
    peak for it, otherwise fp16 (an int8 graph on a GPU or an fp16-only ANE runs dequantized)."""
    if precision in unit.peaks:
        return precision
    for fallback in ("fp16", "fp32"):
        if fallback in unit.peaks:
            return fallback
    raise EstimateError(f"the {unit.kind} unit has no peak at all")


def calibration_for(calibrations: Mapping[str, Calibration], precision: str) -> Calibration:
    """The host calibration that stands for ``precision``: int8 for int8, fp32 for the floats."""
    return calibrations["int8" if precision == "int8" else "fp32"]


def anchor_estimate(anchor: Anchor, registry: Registry, calibrations: Mapping[str, Calibration],
                    correction: Correction | None = None) -> Estimate:
    """The estimate of one published anchor (its model's layer table on its device's unit);
    ``None``: uncorrected, without overhead (the raw compute estimate the corrections are fitted to)."""
    device = registry.any_device(anchor.device)
    host = unit_model(registry.device(HOST_DEVICE), "cpu")
    unit = unit_model(device, anchor.unit)
    precision = compute_precision(unit, anchor.precision)
    cost = anchor_costs(anchor)
    if cost.precision != precision:
        cost = type(cost)(cost.ops, precision)
    calibration = calibration_for(calibrations, precision)
    if correction is None:
        return estimate(cost, calibration, host, unit, 1.0, 0.0)
    overhead = correction.overhead_ms if correction.overhead_ms is not None else unit_overhead_ms(device, anchor.unit)
    return estimate(cost, calibration, host, unit, correction.factor, overhead)


@dataclass(frozen=True)
class AnchorCheck:
    """One anchor's leave-one-out estimate against its published latency."""

    anchor: Anchor
    estimated_ms: float
    published_ms: float
    correction: Correction
    fitted_from: tuple[str, ...]

    @property
    def ratio(self) -> float:
        """Estimated / published."""
        return self.estimated_ms / self.published_ms

    @property
    def within_2x(self) -> bool:
        """The validation bar: within a factor of 2 either way."""
        return 0.5 <= self.ratio <= 2.0


def _peers(anchors: Sequence[Anchor], unit: str, precision: str, leave_out: str | None) -> list[Anchor]:
    """The anchors that fit the correction of (unit kind, precision): those of the same unit kind
    and precision, or of the same kind at any precision when there are none; never ``leave_out``."""
    same_kind = [b for b in anchors if b.unit == unit and b.id != leave_out]
    same_precision = [b for b in same_kind if b.precision == precision]
    return same_precision or same_kind


def _fit(peers: Sequence[Anchor], registry: Registry, calibrations: Mapping[str, Calibration]) -> Correction:
    """The correction that makes the estimator's own predictions of ``peers`` match their latencies;
    an overhead of its own only when the peers span two or more models."""
    def predict(factor: float, overhead_ms: float | None) -> list[float]:
        correction = Correction(factor, overhead_ms, len(peers))
        return [anchor_estimate(b, registry, calibrations, correction).latency_ms for b in peers]

    return fit_correction(predict, [b.latency_s * 1e3 for b in peers], len({b.model for b in peers}) >= 2)


def anchor_checks(anchors: Sequence[Anchor], registry: Registry,
                  calibrations: Mapping[str, Calibration]) -> list[AnchorCheck]:
    """Every anchor estimated with the correction fitted to the *other* anchors of its unit kind
    and precision (leave-one-out: an anchor never calibrates its own estimate)."""
    out = []
    for a in anchors:
        peers = _peers(anchors, a.unit, a.precision, a.id)
        correction = _fit(peers, registry, calibrations)
        est = anchor_estimate(a, registry, calibrations, correction).latency_ms
        out.append(AnchorCheck(a, est, a.latency_s * 1e3, correction, tuple(b.id for b in peers)))
    return out


def corrections(anchors: Sequence[Anchor], registry: Registry,
                calibrations: Mapping[str, Calibration]) -> dict[tuple[str, str], Correction]:
    """Per (unit kind, precision): the correction fitted to every anchor that stands for it (:func:`_peers`)."""
    out = {}
    for kind in sorted({a.unit for a in anchors}):
        for precision in ("fp32", "fp16", "int8"):
            out[(kind, precision)] = _fit(_peers(anchors, kind, precision, None), registry, calibrations)
    return out


def scenario_tiles(scenario: Scenario, tile: tuple[int, int]) -> int:
    """How many fixed-size tiles the scenario's LR input takes (the contract's tiling rule)."""
    from seemore.tiling import fixed_tile_overlap, plan_tiles

    h, w = scenario.lr_size
    th, tw = tile
    return len(plan_tiles(max(h, th), max(w, tw), (th, tw), fixed_tile_overlap(th, tw), 1, exact=True))


@dataclass(frozen=True)
class ScenarioResult:
    """One artifact on one backend in one scenario, with each budget's verdict."""

    scenario: str
    per: str
    tiles: int
    latency_s: float
    energy_j: float
    power_w: float
    fps: float | None
    checks: Mapping[str, tuple[float, float, bool]]

    @property
    def passed(self) -> bool:
        """Every budget met."""
        return all(ok for _, _, ok in self.checks.values())


def scenario_result(scenario: Scenario, per_tile: Estimate, tile: tuple[int, int]) -> ScenarioResult:
    """Scale one inference's estimate to the scenario and judge it against its budget."""
    tiles = scenario_tiles(scenario, tile)
    latency = tiles * per_tile.latency_ms / 1e3
    energy = tiles * per_tile.energy_mj / 1e3
    budget = scenario.budget
    fps = None
    if scenario.per == "frame":
        assert scenario.frame_rate is not None  # the loader requires it for per-frame scenarios
        rate = scenario.frame_rate.to("fps")
        fps = 1.0 / latency
        # Keeping up, the unit works latency x rate of each second; otherwise it never rests.
        power = energy * rate if fps >= rate else per_tile.power_w
    else:
        power = per_tile.power_w
    checks = {
        "latency": (latency, budget.latency.to("s"), latency <= budget.latency.to("s")),
        "energy": (energy, budget.energy.to("J"), energy <= budget.energy.to("J")),
        "power": (power, budget.power.to("W"), power <= budget.power.to("W")),
    }
    return ScenarioResult(scenario.name, scenario.per, tiles, latency, energy, power, fps, checks)


@dataclass(frozen=True)
class BackendPlan:
    """One artifact (or its absence) on one backend of a device, and its scenario results."""

    backend: str
    unit: str
    precision: str
    artifact: str | None
    mode: str  # "estimated", "measured" or "missing"
    per_tile: Estimate | None = None
    results: tuple[ScenarioResult, ...] = ()
    missing_command: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    tile: tuple[int, int] = (0, 0)  # the artifact's fixed LR input (H, W)


def host_runnable(registry: Registry, artifacts: Mapping[tuple[str, str, str], FoundArtifact]) -> list[FoundArtifact]:
    """The artifacts under the root that the host device's backends run (what ``--validate`` times)."""
    host = registry.device(HOST_DEVICE)
    keys = [key for name in host.backends for key, _, _ in BACKEND_ARTIFACTS.get(name, ())]
    return [artifacts[key] for key in dict.fromkeys(keys) if key in artifacts]


def plan_device(device: Device, registry: Registry, artifacts: Mapping[tuple[str, str, str], FoundArtifact],
                calibrations: Mapping[str, Calibration],
                unit_corrections: Mapping[tuple[str, str], Correction],
                scenarios: Sequence[Scenario], say: Callable[[str], None] = lambda _: None) -> list[BackendPlan]:
    """Estimate every backend of ``device`` with every artifact it runs, in every scenario."""
    host = unit_model(registry.device(HOST_DEVICE), "cpu")
    plans = []
    for backend_name, backend in device.backends.items():
        unit = unit_model(device, backend.unit)
        for key, precision, command in BACKEND_ARTIFACTS.get(backend_name, ()):
            artifact = artifacts.get(key)
            if artifact is None:
                plans.append(BackendPlan(backend_name, backend.unit, precision, None, "missing",
                                         missing_command=command))
                continue
            computed = compute_precision(unit, precision)
            say(f"{device.id} {backend_name}: estimating {artifact.path.name}")
            cost = artifact_cost(artifact, computed)
            # The host's own CPU needs no correction: its rates and overhead are the calibration's.
            fitted = None if device.id == HOST_DEVICE else unit_corrections.get((backend.unit, computed))
            overhead = unit_overhead_ms(device, backend.unit)
            if fitted is not None and fitted.overhead_ms is not None:
                overhead = fitted.overhead_ms
            # On the host itself the measured rates already hold its memory traffic: no second bound.
            per_tile = estimate(cost, calibration_for(calibrations, computed), host, unit,
                                fitted.factor if fitted is not None else 1.0, overhead,
                                memory_term=device.id != HOST_DEVICE)
            notes = () if computed == precision else (
                f"the {backend.unit} unit has no {precision} peak: estimated as {computed} compute",)
            tile = (artifact.contract.spec.height, artifact.contract.spec.width)
            results = tuple(scenario_result(s, per_tile, tile) for s in scenarios)
            plans.append(BackendPlan(backend_name, backend.unit, precision, artifact.path.name, "estimated",
                                     per_tile, results, notes=notes, tile=tile))
    return plans


def plan_to_dict(plan: BackendPlan) -> dict[str, Any]:
    """A JSON-ready view of one plan row."""
    out: dict[str, Any] = {"backend": plan.backend, "unit": plan.unit, "precision": plan.precision,
                           "artifact": plan.artifact, "mode": plan.mode, "notes": list(plan.notes)}
    if plan.missing_command:
        out["missing_command"] = plan.missing_command
    if plan.per_tile is not None:
        e = plan.per_tile
        out["per_inference"] = {"latency_ms": e.latency_ms, "energy_mj": e.energy_mj, "power_w": e.power_w,
                                "overhead_ms": e.overhead_ms, "group_ms": dict(e.group_ms),
                                "memory_bound_ms": e.memory_bound_ms, "assumptions": list(e.assumptions)}
    out["scenarios"] = [{"scenario": r.scenario, "tiles": r.tiles, "latency_s": r.latency_s, "energy_j": r.energy_j,
                         "power_w": r.power_w, "fps": r.fps, "passed": r.passed,
                         "budgets": {k: {"value": v, "limit": lim, "ok": ok} for k, (v, lim, ok) in r.checks.items()}}
                        for r in plan.results]
    return out
