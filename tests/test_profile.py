"""Per-device profiling: the estimator's pieces, the scenario arithmetic, the leave-one-out
anchor validation and ``python mobile/profile.py`` on small exported artifacts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from seemore.profiling.costs import OpCost, ProgramCost
from seemore.profiling.estimate import (
    Calibration,
    EstimateError,
    UnitModel,
    calibrate,
    estimate,
    fit_correction,
    xnnpack_group,
)
from conftest import exit_code, saved_small_model

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 32, 48


def test_xnnpack_operator_names_map_to_rate_groups() -> None:
    assert xnnpack_group("Convolution (NHWC, F32) IGEMM #3") == "dense"
    assert xnnpack_group("Convolution (NHWC, QC8) DWConv #1") == "dwconv"
    assert xnnpack_group("Fully Connected (NC, F32) GEMM #2") == "dense"  # 1x1 convs run as FC
    assert xnnpack_group("Resize Bilinear (NHWC) #1") == "resize"
    assert xnnpack_group("Transpose (ND, X32) #4") == "movement"
    assert xnnpack_group("Mean (ND) Reduce2 #1") == "reduction"
    assert xnnpack_group("GELU (NC) #7") == xnnpack_group("Add (ND) #1") == "elementwise"


def _cost() -> ProgramCost:
    return ProgramCost((OpCost("conv", "conv", 2_000_000_000, 1000), OpCost("fc", "matmul", 1_000_000_000, 1000),
                        OpCost("add", "elementwise", 10_000_000, 80_000_000)), "fp32")


def test_calibration_rates_are_work_over_measured_time_and_the_rest_is_overhead() -> None:
    events = [("Convolution (NHWC, F32) IGEMM #1", 200.0), ("Fully Connected (NC, F32) GEMM #1", 100.0),
              ("Add (ND) #1", 10.0)]
    cal = calibrate(events, 320.0, _cost(), 5, "test")
    assert cal.rates["dense"] == pytest.approx(3e9 / 0.3)
    assert cal.rates["elementwise"] == pytest.approx(1e7 / 0.01)
    assert cal.overhead_ms == pytest.approx(10.0)
    # The host estimating itself gives back what it measured.
    host = UnitModel("cpu", {"fp32": 100.0}, 1e6, 10.0)
    est = estimate(_cost(), cal, host, host)
    assert est.latency_ms == pytest.approx(320.0)
    assert est.energy_mj == pytest.approx(320.0 * 10.0)


def test_a_faster_unit_scales_compute_and_a_narrow_memory_bounds_it() -> None:
    cal = Calibration("fp32", {"dense": 1e10, "elementwise": 1e9}, 0.0, 0.0, 1, "test")
    host = UnitModel("cpu", {"fp32": 100.0}, 1e6, 10.0)
    fast = UnitModel("gpu", {"fp16": 400.0}, 1e6, 3.0)
    cost = ProgramCost(_cost().ops, "fp16")
    est = estimate(cost, cal, host, fast)
    assert est.group_ms["dense"] == pytest.approx(3e9 / (1e10 * 4) * 1e3)
    assert est.memory_bound_ms == 0
    slow_memory = UnitModel("gpu", {"fp16": 400.0}, 0.1, 3.0)  # 0.1 GB/s: the 80 MB add takes 800 ms
    est = estimate(cost, cal, host, slow_memory, correction=2.0)
    assert est.group_ms["elementwise"] == pytest.approx(800.0)
    assert est.memory_bound_ms >= 800.0
    with pytest.raises(EstimateError, match="int8"):
        estimate(ProgramCost(cost.ops, "int8"), cal, host, fast)


def _linear_model(raw: list[float]):  # type: ignore[no-untyped-def]
    """An estimator stand-in: raw / factor, plus the overhead (0.2 ms when the unit's own is used)."""
    return lambda factor, overhead: [r / factor + (0.2 if overhead is None else overhead) for r in raw]


def test_correction_fits_the_estimators_own_predictions() -> None:
    assert fit_correction(_linear_model([]), [], fit_overhead=False).factor == 1.0
    # One anchor: the factor alone, fitted with the unit's own overhead in the prediction
    # (20 / f + 0.2 = 10.2 -> f = 2; the weak prior towards 1 moves it a little).
    one = fit_correction(_linear_model([20.0]), [10.2], fit_overhead=False)
    assert one.factor == pytest.approx(2.0, rel=1e-2) and one.overhead_ms is None
    # published = 0.5 ms + raw / 4, exactly: both come back.
    two = fit_correction(_linear_model([4.0, 400.0]), [1.5, 100.5], fit_overhead=True)
    assert two.factor == pytest.approx(4.0, rel=2e-2) and two.overhead_ms == pytest.approx(0.5, rel=5e-2)
    # A memory-bound anchor (no rate factor changes its estimate) leaves the factor at the prior's 1.
    stuck = fit_correction(lambda factor, overhead: [3.0], [1.0], fit_overhead=False)
    assert stuck.factor == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(EstimateError):
        fit_correction(_linear_model([1.0]), [0.0], fit_overhead=False)
    with pytest.raises(EstimateError):
        fit_correction(lambda factor, overhead: [0.0], [1.0], fit_overhead=False)


def test_ops_that_fit_on_chip_move_no_dram_bytes() -> None:
    cal = Calibration("fp32", {"dense": 1e10, "elementwise": 1e9}, 0.0, 0.0, 1, "test")
    host = UnitModel("cpu", {"fp32": 100.0}, 1e6, 10.0)
    cost = ProgramCost(_cost().ops, "fp16")
    dram = UnitModel("npu", {"fp16": 400.0}, 0.1, 3.0)
    sram = UnitModel("npu", {"fp16": 400.0}, 0.1, 3.0, onchip_mb=1e3)  # every op of _cost() fits in 1 GB
    assert estimate(cost, cal, host, dram).memory_bound_ms >= 800.0
    on_chip = estimate(cost, cal, host, sram)
    assert on_chip.memory_bound_ms == 0 and on_chip.latency_ms < estimate(cost, cal, host, dram).latency_ms
    assert any("on chip" in a for a in on_chip.assumptions)
    # The host estimating itself: its measured rates hold its memory traffic, no second bound.
    assert estimate(cost, cal, host, dram, memory_term=False).memory_bound_ms == 0


def test_scenarios_tile_like_the_contract_and_judge_each_budget() -> None:
    from seemore.profiling.devices import load_registry
    from seemore.profiling.estimate import Estimate
    from seemore.profiling.plan import scenario_result, scenario_tiles

    registry = load_registry()
    photo, video = registry.scenario("photo"), registry.scenario("video")
    assert scenario_tiles(photo, (180, 320)) == 20  # 750x1000 LR: 5 rows x 4 columns of windows
    assert scenario_tiles(video, (180, 320)) == 1
    per_tile = Estimate(10.0, {}, 0.0, 20.0, 2.0, 0.0, ())  # 10 ms and 20 mJ per tile at 2 W
    r = scenario_result(video, per_tile, (180, 320))
    rate = video.frame_rate.to("fps") if video.frame_rate else math.nan
    assert r.fps == pytest.approx(100.0) and r.power_w == pytest.approx(0.020 * rate)
    assert r.checks["latency"][2] and r.checks["energy"][2] and r.passed
    slow = scenario_result(video, Estimate(50.0, {}, 0.0, 100.0, 2.0, 0.0, ()), (180, 320))
    assert not slow.checks["latency"][2] and slow.power_w == 2.0  # cannot keep up: never rests
    p = scenario_result(photo, per_tile, (180, 320))
    assert p.latency_s == pytest.approx(0.2) and p.energy_j == pytest.approx(0.4)


def test_anchor_validation_never_uses_an_anchor_for_its_own_correction() -> None:
    from seemore.profiling.anchors import load_anchors
    from seemore.profiling.devices import load_registry
    from seemore.profiling.plan import anchor_checks

    registry = load_registry()
    anchors = load_anchors(registry=registry)
    cal = {"fp32": Calibration("fp32", {g: 1e10 for g in ("dense", "dwconv", "elementwise", "reduction",
                                                           "resize", "movement")}, 1.0, 0.0, 1, "test"),
           "int8": Calibration("int8", {g: 2e10 for g in ("dense", "dwconv", "elementwise", "reduction",
                                                           "resize", "movement")}, 1.0, 0.0, 1, "test")}
    checks = anchor_checks(anchors, registry, cal)
    assert len(checks) == len(anchors)
    for c in checks:
        assert c.anchor.id not in c.fitted_from and c.fitted_from
        assert all(next(a for a in anchors if a.id == peer).unit == c.anchor.unit for peer in c.fitted_from)
        assert c.estimated_ms > 0 and c.ratio == pytest.approx(c.estimated_ms / c.published_ms)


def main(argv: list[str]) -> int:
    from seemore.profiling.cli import main as profile_main

    return exit_code(profile_main, argv)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from seemore.export import ExportOptions, export_targets, get_target

    tmp = tmp_path_factory.mktemp("profile")
    model, ckpt = saved_small_model(tmp, output_in_image_range=True)
    out = tmp / "artifacts"
    for name, layout in (("xnnpack-fp32", "NCHW"), ("xnnpack-int8", "NCHW"), ("litert-fp32", "NHWC"),
                         ("coreml-fp16", "NCHW")):
        export_targets(model, [get_target(name)], out, ckpt,
                       ExportOptions(height=H, width=W, layout=layout, calibration_images=1, program_dirs=(),
                                     verify=False))
    return out


def test_profile_prints_estimated_budget_rows_writes_the_report_and_fails_on_budgets(
        root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--root", str(root), "--model-name", "seemore_t_x4", "--runs", "2", "--threads", "1", "--no-progress",
            "--out", str(tmp_path / "report")]
    code = main([*args, "--device", "pixel8", "--json", str(tmp_path / "p.json")])
    out = capsys.readouterr().out
    assert "ESTIMATED" in out and "litert-cpu" in out and "missing" in out  # no Vulkan .pte in this root
    assert "make it: python mobile/export_executorch.py" in out
    doc = json.loads((tmp_path / "p.json").read_text())
    plans = {(p["backend"], p["precision"]): p for p in doc["device"]["plans"]}
    xnn = plans[("executorch-xnnpack", "int8")]
    assert xnn["mode"] == "estimated" and xnn["per_inference"]["latency_ms"] > 0
    assert {s["scenario"] for s in xnn["scenarios"]} == {"photo", "video"}
    failed = any(not s["passed"] for p in doc["device"]["plans"] for s in p["scenarios"])
    assert code == (1 if failed else 0)
    report = tmp_path / "report" / "pixel8"
    assert (report / "report.md").read_text().count("![") == 3
    for png in ("time_per_op_group.png", "budget_photo.png", "budget_video.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*args, "--device", "pixel8", "--warn-only"]) == 0


def test_validate_compares_host_estimates_with_measured_latencies(root: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--root", str(root), "--runs", "2", "--threads", "1", "--no-progress", "--validate",
                 "--json", str(tmp_path / "v.json")])
    out = capsys.readouterr().out
    assert "estimate vs measured in the same run" in out and "leave-one-out" in out
    doc = json.loads((tmp_path / "v.json").read_text())["validation"]
    assert {h["artifact"].split("_")[3] for h in doc["host"]} >= {"xnnpack", "litert"}
    assert all(h["measured_ms"] > 0 and h["estimated_ms"] > 0 for h in doc["host"])
    assert len(doc["anchors"]) >= 10
    ok = all(h["within_25pct"] for h in doc["host"]) and all(a["within_2x"] for a in doc["anchors"])
    assert code == (0 if ok else 1)


def test_bad_input_is_one_line(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--device", "pixel7", "--root", str(root), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown device 'pixel7'" in err[0] and "pixel8" in err[0]
    assert main(["--device", "pixel8", "--root", str(tmp_path / "empty"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "python mobile/export_executorch.py" in err[0]
    assert main(["--root", str(root)]) == 2  # neither --device nor --validate
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _fake_adb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scenario: Path) -> Path:
    """The transcript-replaying fake adb (tests/fake_adb) first on PATH, playing ``scenario``."""
    import os
    import sys

    here = Path(__file__).resolve().parent
    python_dir = tmp_path / "python_bin"
    python_dir.mkdir(exist_ok=True)
    if not (python_dir / "python3").exists():
        (python_dir / "python3").symlink_to(sys.executable)
    run_dir = tmp_path / "fake_adb_run"
    monkeypatch.setenv("PATH", os.pathsep.join([str(here / "fake_adb"), str(python_dir), os.environ["PATH"]]))
    monkeypatch.setenv("FAKE_ADB_RUN_DIR", str(run_dir))
    monkeypatch.setenv("FAKE_ADB_SCENARIO", str(scenario))
    return run_dir


def _calls(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "calls.jsonl").read_text().splitlines()]


def test_measured_mode_on_a_replayed_pixel8_pushes_runs_reads_rails_and_marks_rows_measured(
        root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from seemore.profiling.host import etdump_timings, find_artifacts

    # The Pixel 8 transcripts, with real ETDumps of the small .pte files where the phone's would be.
    scenario = tmp_path / "pixel8"
    shutil.copytree(Path(__file__).resolve().parent / "data" / "adb" / "pixel8_ok", scenario)
    artifacts = find_artifacts(root)
    for precision in ("fp32", "int8"):
        pte = artifacts[("executorch", "xnnpack", precision)]
        etdump = scenario / "files" / "data" / "local" / "tmp" / "seemore" / f"{pte.path.stem}.etdump"
        etdump_timings(pte.path, pte.contract, 1, 1, keep_etdump=etdump)
    run_dir = _fake_adb(monkeypatch, tmp_path, scenario)
    runner, bench = tmp_path / "executor_runner", tmp_path / "benchmark_model"
    runner.write_bytes(b"\x7fELF arm64 runner stand-in")
    bench.write_bytes(b"\x7fELF arm64 runner stand-in")
    code = main(["--device", "pixel8", "--root", str(root), "--runs", "10", "--threads", "1", "--no-progress",
                 "--out", str(tmp_path / "report"), "--executor-runner", str(runner), "--benchmark-model",
                 str(bench), "--op-profile", "--json", str(tmp_path / "m.json"), "--warn-only"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    assert "measured on Pixel 8 (38021FDJH00A1K)" in out
    plans = {(p["backend"], p["precision"]): p for p in json.loads((tmp_path / "m.json").read_text())["device"]["plans"]}
    measured = plans[("executorch-xnnpack", "int8")]
    assert measured["mode"] == "measured"
    # The replayed executor_runner log: 11 executions, 2 warm-up, the median of the other 9.
    assert measured["per_inference"]["latency_ms"] == pytest.approx(74.2, abs=0.5)
    assert measured["per_inference"]["group_ms"]  # per-op times from the pulled (real) ETDump
    assert plans[("litert-cpu", "fp32")]["mode"] == "measured"
    assert plans[("executorch-vulkan", "fp16")]["mode"] == "missing"
    calls = _calls(run_dir)
    verbs = [c["verb"] for c in calls]
    first_run = next(i for i, c in enumerate(calls) if "executor_runner" in c.get("shell", "") and
                     "--model_path" in c.get("shell", ""))
    assert "push" in verbs[:first_run]  # the artifact and runner are on the phone before it runs
    assert sum("energy_value" in c.get("shell", "") for c in calls) >= 2  # rails read around each run


def test_measured_mode_errors_are_one_line(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(__file__).resolve().parent / "data" / "adb"
    runner = tmp_path / "executor_runner"
    runner.write_bytes(b"\x7fELF")
    base = ["--device", "pixel8", "--root", str(root), "--runs", "2", "--threads", "1", "--no-progress",
            "--out", str(tmp_path / "r"), "--executor-runner", str(runner), "--timeout", "5"]
    for scenario, expected in (("unauthorized", "unauthorized"), ("two_devices", "--serial"),
                               ("runner_crash", "executor_runner"), ("runner_timeout", "timed out")):
        _fake_adb(monkeypatch, tmp_path, data / scenario)
        assert main(base) == 1, scenario
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0], (scenario, err)
    # No adb at all and no --serial: estimates, said plainly; with --serial: the one-line error.
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert main([*base, "--warn-only"]) == 0
    assert "no phone measured" in capsys.readouterr().out
    assert main([*base, "--serial", "X1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "adb not found" in err[0]


def _coreml_report(path: Path, model: str, **changes: Any) -> Path:
    doc = {"format": "seemore-mobile/coreml-profile/1", "device": "iPhone 15 Pro", "model": model,
           "compute_units": "all", "load_ms": 210.0, "predictions_ms": [3.2, 3.0, 3.1, 3.4, 3.0],
           "ops": [{"name": "conv_0", "type": "conv", "device": "ane", "cost": 0.4},
                   {"name": "gelu_0", "type": "gelu", "device": "ane", "cost": 0.1},
                   {"name": "softmax_0", "type": "softmax", "device": "cpu", "cost": 0.01}]}
    doc.update(changes)
    path.write_text(json.dumps(doc))
    return path


def test_a_coreml_report_from_the_phone_makes_its_row_measured(root: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    package = "seemore_t_x4_coreml_fp16_32x48.mlpackage"
    args = ["--device", "iphone15pro", "--root", str(root), "--runs", "2", "--threads", "1", "--no-progress",
            "--out", str(tmp_path / "r"), "--warn-only", "--json", str(tmp_path / "i.json")]
    assert main([*args, "--coreml-report", str(_coreml_report(tmp_path / "p.json", package))]) == 0
    out = capsys.readouterr().out
    assert "measured on iPhone 15 Pro" in out
    plans = {(p["backend"], p["precision"]): p for p in json.loads((tmp_path / "i.json").read_text())["device"]["plans"]}
    row = plans[("coreml", "fp16")]
    assert row["mode"] == "measured" and row["per_inference"]["latency_ms"] == pytest.approx(3.1)
    assert "2 on ane" in row["per_inference"]["assumptions"][0]
    assert plans[("executorch-xnnpack", "fp32")]["mode"] == "estimated"
    # A report of a package that is not under --root, a malformed one, an Android device: one line each.
    for report, device in ((_coreml_report(tmp_path / "q.json", "other.mlpackage"), "iphone15pro"),
                           (_coreml_report(tmp_path / "m.json", package, predictions_ms=[]), "iphone15pro"),
                           (_coreml_report(tmp_path / "a.json", package), "pixel8")):
        code = main([*args[:1], device, *args[2:], "--coreml-report", str(report)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code in (1, 2) and len(err) == 1, err


def test_mobile_profile_script_does_not_shadow_the_standard_library_profile() -> None:
    # Every script in mobile/ runs with mobile/ first on sys.path, where `import profile` (cProfile
    # does it) finds mobile/profile.py: it must hand over the standard library's module.
    import subprocess
    import sys

    mobile = Path(__file__).resolve().parent.parent / "mobile"
    code = ("import sys; sys.path.insert(0, %r); import profile, cProfile; "
            "assert callable(profile.run) and profile.__file__.endswith('profile.py') "
            "and 'mobile' not in profile.__file__, profile.__file__" % str(mobile))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
