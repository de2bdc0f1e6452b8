"""``python mobile/profile.py``: does the model fit a phone's latency and power budget, on which
backend? Estimated from the exported artifacts with a roofline calibrated on this host and
corrected by published anchors (:mod:`seemore.profiling.estimate`); ``--validate`` checks the
estimator against this host's measured latencies and the anchors.

    python mobile/profile.py --device pixel8
    python mobile/profile.py --device iphone15pro --scenario video --json profile.json
    python mobile/profile.py --validate

With an Android phone attached (``adb``; ``--serial`` picks one) and the device-side runners
given (``--executor-runner`` for ``.pte``, ``--benchmark-model`` for ``.tflite``), each artifact
is *measured* on the phone with its power rails (:mod:`seemore.profiling.measure`); otherwise
every figure is an *estimate*, and the table says which. Exit status 1 when a budget fails
(``--warn-only`` reports and exits 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROG = "seemore-profile"


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    from seemore import cli

    p = cli.make_parser(PROG, __doc__)
    p.add_argument("--device", default=None, metavar="ID",
                   help="device of mobile/devices.toml to profile for (pixel8, pixel9, galaxy-s24, iphone15pro, "
                   "iphone14pro, host)")
    p.add_argument("--validate", action="store_true",
                   help="check the estimator: this host's artifacts estimated vs measured in the same run, and the "
                   "published anchors of mobile/anchors.toml (leave-one-out)")
    p.add_argument("--root", type=Path, default=Path("artifacts"),
                   help="folder searched for the exported artifacts and their contracts (default: artifacts)")
    p.add_argument("--model-name", default="seemore_t_x4",
                   help="model name in the artifacts' contracts (default: seemore_t_x4)")
    p.add_argument("--scenario", nargs="+", default=None, metavar="NAME",
                   help="scenarios of the registry to judge (default: all: photo, video)")
    p.add_argument("--runs", type=cli.positive_int, default=5,
                   help="timed runs of each host artifact for the calibration and --validate (default: 5)")
    p.add_argument("--out", type=Path, default=Path("artifacts") / "profile",
                   help="folder of the Markdown report and its PNG charts (default: artifacts/profile)")
    p.add_argument("--warn-only", action="store_true", help="report failed budgets but exit 0")
    p.add_argument("--serial", default=None, help="adb serial of the phone to measure on (default: the only one attached)")
    p.add_argument("--adb", default=None, metavar="PATH", help="the adb binary (default: adb on PATH)")
    p.add_argument("--executor-runner", type=Path, default=None, metavar="PATH",
                   help="ExecuTorch executor_runner built for the phone (arm64-v8a, event tracer on), for .pte files")
    p.add_argument("--benchmark-model", type=Path, default=None, metavar="PATH",
                   help="LiteRT benchmark_model built for the phone (arm64-v8a), for .tflite files")
    p.add_argument("--op-profile", action="store_true",
                   help="measured mode: per-op times too (ETDump for .pte, --enable_op_profiling for .tflite)")
    p.add_argument("--coreml-report", type=Path, nargs="+", default=(), metavar="JSON",
                   help="iOS: Core ML profiles measured on the phone (format seemore-mobile/coreml-profile/1, written by "
                   "the iOS demo app or from Xcode's performance report; see the README), one per .mlpackage")
    p.add_argument("--timeout", type=cli.positive_int, default=600, metavar="S",
                   help="measured mode: seconds one runner may take on the phone (default: 600)")
    cli.add_threads(p)
    cli.add_json(p)
    cli.add_progress(p)
    return p


def _say(enabled: bool):  # type: ignore[no-untyped-def]
    def say(message: str) -> None:
        if enabled:
            print(message, file=sys.stderr, flush=True)
    return say


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from seemore.cli import UsageError, check_json_path, check_output_folder, run_main, write_json

    args = build_parser().parse_args(argv)

    def body() -> int:
        from seemore.perf.host import cpu_name
        from seemore.profiling.anchors import load_anchors
        from seemore.profiling.devices import load_registry
        from seemore.profiling.host import find_artifacts, host_calibrations
        from seemore.profiling.plan import corrections, host_runnable
        from seemore.toolchain_logs import quiet_toolchain_logs

        quiet_toolchain_logs()
        if args.device is None and not args.validate:
            raise UsageError("give --device ID (or --validate)")
        check_json_path(args.json)
        check_output_folder(args.out)
        registry = load_registry()
        device = registry.device(args.device) if args.device else None  # unknown: lists the known ones
        scenarios = [registry.scenario(s) for s in args.scenario] if args.scenario else list(registry.scenarios.values())
        say = _say(not args.no_progress)
        artifacts = find_artifacts(args.root, args.model_name)
        cpu = cpu_name()
        # --validate: the host artifacts it checks run in the calibration's rounds (same machine state).
        to_measure = host_runnable(registry, artifacts) if args.validate else []
        calibrations, measured = host_calibrations(artifacts, args.threads, args.runs, cpu, say, to_measure)
        anchors = load_anchors(registry=registry)
        fitted = corrections(anchors, registry, calibrations)
        report: dict[str, Any] = {"cpu": cpu, "threads": args.threads, "root": str(args.root),
                                  "calibration": {p: _calibration_dict(c) for p, c in calibrations.items()},
                                  "corrections": {f"{k}/{p}": {"factor": c.factor, "overhead_ms": c.overhead_ms,
                                                               "anchors": c.anchors}
                                                  for (k, p), c in fitted.items()}}
        status = 0
        if args.validate:
            status |= _validate(args, artifacts, calibrations, measured, anchors, registry, report, say)
        if device is not None:
            status |= _profile(args, device, registry, artifacts, calibrations, fitted, scenarios, report, say)
        if args.json is not None:
            write_json(args.json, report)
        return 0 if args.warn_only else status

    from seemore.contract import ContractError
    from seemore.profiling.adb import AdbError
    from seemore.profiling.anchors import AnchorError
    from seemore.profiling.devices import RegistryError
    from seemore.profiling.estimate import EstimateError
    from seemore.profiling.host import ProfileError

    return run_main(PROG, body, expected=(RegistryError, AnchorError, EstimateError, ProfileError, ContractError,
                                          AdbError))


def _calibration_dict(c: Any) -> dict[str, Any]:
    return {"precision": c.precision, "rates_work_per_s": dict(c.rates), "group_ms": dict(c.group_ms),
            "overhead_ms": c.overhead_ms, "measured_ms": c.measured_ms, "runs": c.runs, "source": c.source}


def _profile(args: argparse.Namespace, device: Any, registry: Any, artifacts: Any, calibrations: Any, fitted: Any,
             scenarios: Any, report: dict[str, Any], say: Any) -> int:
    from seemore.common.files import atomic_write_text
    from seemore.profiling.plan import plan_device, plan_to_dict
    from seemore.profiling.report import budget_chart, budget_table, group_time_chart, markdown_report

    plans = plan_device(device, registry, artifacts, calibrations, fitted, scenarios, say)
    plans, phone = _measure(args, device, artifacts, plans, scenarios, say)
    if args.coreml_report:
        plans, phone = _coreml_reports(args.coreml_report, device, plans, scenarios)
    where = f"measured on {phone} where the mode says so, the rest" if phone else "every figure"
    print(f"{device.name} ({device.id}, {device.soc}): {where} ESTIMATED, calibrated on this host "
          f"({report['cpu']}, {args.threads} threads)")
    print(budget_table(plans))
    folder = args.out / device.id
    charts = [("time per op group, one inference", "time_per_op_group.png")]
    group_time_chart(plans, folder / charts[0][1], f"{device.name}: time per op group of one inference (estimated unless measured)")
    for s in scenarios:
        name = f"budget_{s.name}.png"
        budget_chart(plans, s.name, folder / name, f"{device.name}, {s.name}: estimate / budget (log scale)")
        charts.append((f"{s.name}: latency and energy against the budget", name))
    assumptions = sorted({a for p in plans if p.per_tile for a in p.per_tile.assumptions} |
                         {n for p in plans for n in p.notes})
    measured_note = f"Rows in mode `measured` ran on {phone}; the others are estimates." if phone else \
        "Estimated, not measured: no phone was attached."
    header = [measured_note + " Host calibration: " + "; ".join(c.source for c in calibrations.values()) + "."]
    atomic_write_text(folder / "report.md", markdown_report(device.name, plans, charts, assumptions, header))
    print(f"report: {folder / 'report.md'} (+ {len(charts)} PNG charts)")
    report["device"] = {"id": device.id, "name": device.name, "plans": [plan_to_dict(p) for p in plans],
                        "report": str(folder / "report.md"), "charts": [str(folder / f) for _, f in charts]}
    failed = any(not r.passed for p in plans for r in p.results)
    if failed:
        print("some budgets fail (see the table); --warn-only exits 0")
    return 1 if failed else 0


def _measure(args: argparse.Namespace, device: Any, artifacts: Any, plans: list[Any], scenarios: Any,
             say: Any) -> tuple[list[Any], str | None]:
    """Replace the estimated rows by measured ones where a phone and the runner are at hand.

    Without ``--serial`` / ``--adb``, a missing adb or no attached phone leaves the estimates (the
    note says so); any other adb problem is the one-line error.
    """
    import dataclasses

    from seemore.profiling.adb import Adb, AdbError
    from seemore.profiling.estimate import Estimate, measured_group
    from seemore.profiling.measure import RunnerBinaries, measure_artifact
    from seemore.profiling.plan import scenario_result

    if device.platform != "android":
        return plans, None
    adb = Adb(args.adb, args.serial)
    if args.serial is None and args.adb is None:
        # Nothing asked for a phone: no adb, or none attached, means estimates. An attached phone
        # that cannot be used (unauthorized, offline, one of several) is still an error below.
        try:
            attached = adb.devices()
        except AdbError as exc:
            attached, reason = [], str(exc)
        else:
            reason = "adb devices -l lists none"
        if not attached:
            print(f"note: no phone measured ({reason})")
            return plans, None
    serial = adb.select()
    binaries = RunnerBinaries(args.executor_runner, args.benchmark_model)
    by_name = {a.path.name: a for a in artifacts.values()}
    out = []
    for plan in plans:
        artifact = by_name.get(plan.artifact or "")
        runner = binaries.executor_runner if plan.artifact and plan.artifact.endswith(".pte") else \
            binaries.benchmark_model
        if artifact is None or plan.per_tile is None or runner is None:
            out.append(plan)
            continue
        run = measure_artifact(adb, artifact, plan.backend, binaries, args.runs, 2, 4, args.op_profile,
                               args.timeout, say)
        power = run.total_power_w
        energy_note = "energy = measured latency x the mean power of the matched rails" if power else \
            "energy = measured latency x the registry's active power (no rails were read)"
        watts = power if power else plan.per_tile.power_w
        group_ms: dict[str, float] = {}
        for op, ms in run.op_ms.items():
            group = measured_group(op)
            if group is not None:
                group_ms[group] = group_ms.get(group, 0.0) + ms
        other = max(run.latency_ms - sum(group_ms.values()), 0.0) if group_ms else 0.0
        per_tile = Estimate(run.latency_ms, group_ms, other, run.latency_ms * watts, watts, 0.0,
                            (f"measured on {run.model} ({run.serial}) with {run.timing.runner}", energy_note,
                             *run.notes))
        out.append(dataclasses.replace(plan, mode="measured", per_tile=per_tile,
                                       results=tuple(scenario_result(s, per_tile, plan.tile) for s in scenarios)))
    if not any(p.mode == "measured" for p in out):
        print(f"note: {serial} attached, but no runner was given (--executor-runner, --benchmark-model): estimates")
        return out, None
    return out, f"{adb.getprop('ro.product.model') or 'the phone'} ({serial})"


def _coreml_reports(paths: Sequence[Path], device: Any, plans: list[Any], scenarios: Any) -> tuple[list[Any], str]:
    """Replace the Core ML rows whose package a report measured by measured rows."""
    import dataclasses

    from seemore.cli import UsageError
    from seemore.profiling.estimate import Estimate
    from seemore.profiling.formats import FormatError, parse_coreml_profile
    from seemore.profiling.plan import scenario_result

    if device.platform != "ios":
        raise UsageError(f"--coreml-report is for iOS devices; {device.id} is {device.platform}")
    reports = {}
    for path in paths:
        try:
            profile = parse_coreml_profile(Path(path).read_text(encoding="utf-8"))
        except FormatError as exc:
            raise FormatError(f"{path}: {exc}") from None
        reports[Path(profile.timing.model or "").name] = profile
    out, used = [], set()
    for plan in plans:
        profile = reports.get(plan.artifact or "")
        if plan.backend != "coreml" or profile is None or plan.per_tile is None:
            out.append(plan)
            continue
        used.add(plan.artifact)
        latency = profile.timing.median_ms or profile.timing.mean_ms
        # Core ML reports no power: the unit most of the ops ran on, at its registry power.
        where = max(profile.ops_by_device, key=profile.ops_by_device.get) if profile.ops_by_device else plan.unit
        unit = device.units.get(where) or device.units[plan.unit]
        watts = unit.active_power.to("W")
        ops = ", ".join(f"{n} on {d}" for d, n in profile.ops_by_device.items()) or "op placement not reported"
        per_tile = Estimate(latency, {}, 0.0, latency * watts, watts, 0.0,
                            (f"measured on {profile.device} with Core ML ({profile.compute_units}; {ops})",
                             f"energy = measured latency x {watts:g} W, the registry's {where} power (Core ML "
                             "reports no power)"))
        out.append(dataclasses.replace(plan, mode="measured", per_tile=per_tile,
                                       results=tuple(scenario_result(s, per_tile, plan.tile) for s in scenarios)))
    missing = sorted(set(reports) - used)
    if missing:
        raise FormatError(f"no Core ML package under --root matches the report of {', '.join(missing)}")
    return out, ", ".join(sorted({r.device for r in reports.values()}))


def _validate(args: argparse.Namespace, artifacts: Any, calibrations: Any, measured: Any, anchors: Any,
              registry: Any, report: dict[str, Any], say: Any) -> int:
    from seemore.common.tables import format_table
    from seemore.profiling.plan import HOST_DEVICE, anchor_checks, plan_device
    from seemore.profiling.report import anchor_table

    host = registry.device(HOST_DEVICE)
    plans = [p for p in plan_device(host, registry, artifacts, calibrations, {}, [], say) if p.mode == "estimated"]
    chosen = {p.artifact: p for p in plans}
    found = [a for a in artifacts.values() if a.path.name in chosen]
    rows, host_rows, ok = [], [], True
    for artifact in found:
        est = chosen[artifact.path.name].per_tile
        assert est is not None
        med = statistics.median(measured[artifact.path])
        error = est.latency_ms / med - 1
        within = abs(error) <= 0.25
        ok &= within
        in_sample = artifact.key in {("executorch", "xnnpack", "fp32"), ("executorch", "xnnpack", "int8")}
        rows.append([artifact.path.name, f"{med:.1f}", f"{est.latency_ms:.1f}", f"{error:+.0%}",
                     "yes" if within else "NO", "its own ETDump" if in_sample else "the .pte ETDumps"])
        host_rows.append({"artifact": artifact.path.name, "measured_ms": med, "estimated_ms": est.latency_ms,
                          "error": error, "within_25pct": within, "calibrated_on_itself": in_sample})
    print(f"host ({report['cpu']}, {args.threads} threads): estimate vs measured in the same run")
    print(format_table(["artifact", "measured ms", "estimated ms", "error", "within 25%", "calibrated from"], rows))
    checks = anchor_checks(anchors, registry, calibrations)
    print("published anchors, leave-one-out (each one's rate factor and overhead are fitted to the other anchors "
          "of its unit kind and precision)")
    print(anchor_table(checks))
    inside = sum(c.within_2x for c in checks)
    print(f"anchors within 2x: {inside} of {len(checks)}")
    report["validation"] = {"host": host_rows, "anchors": [
        {"id": c.anchor.id, "unit": c.anchor.unit, "precision": c.anchor.precision, "published_ms": c.published_ms,
         "estimated_ms": c.estimated_ms, "ratio": c.ratio, "correction": c.correction.factor,
         "fitted_overhead_ms": c.correction.overhead_ms,
         "fitted_from": list(c.fitted_from), "within_2x": c.within_2x} for c in checks]}
    return 0 if ok and inside == len(checks) else 1
