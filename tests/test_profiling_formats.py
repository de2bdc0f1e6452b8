"""Tests of the phone-side output parsers (seemore.profiling.formats) on the adb transcripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seemore.profiling.formats import (
    EnergySample,
    FormatError,
    PowerError,
    RunnerFailed,
    average_power,
    average_rail_power,
    groups_of,
    parse_benchmark_model,
    parse_enabled_rails,
    parse_energy_value,
    parse_executor_runner,
    parse_minibench_results,
    parse_power_stats_dumpsys,
    rail_group,
)

DATA = Path(__file__).resolve().parent / "data" / "adb"


def read(scenario: str, name: str) -> str:
    return (DATA / scenario / "out" / name).read_text()


def assert_one_line(exc: pytest.ExceptionInfo[BaseException], *fragments: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and message.strip() == message and message
    for fragment in fragments:
        assert fragment in message, message


# --- executor_runner ---------------------------------------------------------------------------


def test_executor_runner_per_iteration_with_warmup():
    t = parse_executor_runner(read("pixel8_ok", "executor_runner.stderr.txt"), warmup=1)
    assert t.runner == "executor_runner"
    assert t.load_ms == pytest.approx(155.861247)
    assert t.first_ms == pytest.approx(118.402331)
    assert t.warmup_mean_ms == pytest.approx(118.402331)
    assert t.count == 10 and len(t.iterations_ms) == 10
    assert t.iterations_ms[0] == pytest.approx(74.912004)
    assert t.mean_ms == pytest.approx(sum(t.iterations_ms) / 10)
    assert t.min_ms == pytest.approx(73.118456) and t.max_ms == pytest.approx(76.334502)
    assert 0.5 < t.std_ms < 1.5
    assert t.median_ms == pytest.approx(74.117, abs=0.01)
    assert t.model == "/data/local/tmp/seemore/seemore_t_x4_xnnpack_int8.pte"


def test_executor_runner_without_warmup_keeps_every_run():
    t = parse_executor_runner(read("pixel8_ok", "executor_runner.stderr.txt"))
    assert t.count == 11 and t.max_ms == pytest.approx(118.402331) and t.warmup_mean_ms is None


def test_executor_runner_accepts_lines_without_log_prefix():
    text = "Model loaded in 12.5 ms.\nIteration 1 of 2: 3.25 ms\nIteration 2 of 2: 2.75 ms\n" \
           "Model executed successfully 2 time(s) in 6.0 ms.\n"
    t = parse_executor_runner(text)
    assert (t.load_ms, t.count, t.mean_ms, t.first_ms) == (12.5, 2, 3.0, 3.25)


def test_executor_runner_older_build_prints_only_the_total():
    t = parse_executor_runner(read("pixel9_ok", "executor_runner.stderr.txt"), warmup=1)
    assert t.count == 6 and t.mean_ms == pytest.approx(360.472886 / 6)
    assert t.iterations_ms == () and t.first_ms is None and t.load_ms is None
    assert any("warm-up" in n for n in t.notes) and any("total" in n for n in t.notes)


def test_executor_runner_abort_is_runner_failed():
    with pytest.raises(RunnerFailed) as exc:
        parse_executor_runner(read("runner_crash", "executor_runner.stderr.txt"))
    assert_one_line(exc, "assert failed (method.ok())", "Loading of method forward failed with status 0x1")


@pytest.mark.parametrize("text, fragment", [
    ("", "no 'Model executed successfully"),
    (read("runner_timeout", "executor_runner.stderr.txt"), "was the run cut short"),
    ("Iteration 1 of 3: 2.0 ms\nModel executed successfully 3 time(s) in 6.0 ms.\n", "1 'Iteration i of N' lines"),
    ("Iteration 1 of 1: 2.0 ms\nModel executed successfully 1 time(s) in 2.0 ms.\n", "all within warmup=1"),
    ("Model executed successfully 0 time(s) in 0.0 ms.\n", "no run to time"),
])
def test_executor_runner_malformed(text, fragment):
    with pytest.raises(FormatError) as exc:
        parse_executor_runner(text, warmup=1 if "all within" in fragment else 0)
    assert not isinstance(exc.value, RunnerFailed)
    assert_one_line(exc, fragment)


# --- benchmark_model ---------------------------------------------------------------------------


def test_benchmark_model_with_op_profiling_and_delegate():
    t = parse_benchmark_model(read("pixel8_ok", "benchmark_model.stderr.txt"))
    assert t.runner == "benchmark_model"
    # microseconds -> milliseconds
    assert t.load_ms == pytest.approx(96.412)
    assert t.first_ms == pytest.approx(121.904)
    assert t.warmup_mean_ms == pytest.approx(86.7341)
    assert t.mean_ms == pytest.approx(79.8716)
    assert (t.count, t.min_ms, t.max_ms, t.std_ms) == (50, pytest.approx(77.85), pytest.approx(84.307),
                                                       pytest.approx(1.322))
    assert t.model == "/data/local/tmp/seemore/seemore_t_x4_int8.tflite"
    [d] = t.delegations
    assert (d.delegate, d.nodes, d.total_nodes, d.partitions) == ("TfLiteXNNPackDelegate", 414, 436, 7)
    assert (t.delegated_nodes, t.total_nodes) == (414, 436)
    # the regular runs' summary, not the initialization one (ModifyGraphWithDelegate)
    by_type = {op.node_type: op for op in t.op_profile}
    assert set(by_type) == {"TfLiteXNNPackDelegate", "TRANSPOSE"}
    xnn, transpose = by_type["TfLiteXNNPackDelegate"], by_type["TRANSPOSE"]
    assert (xnn.nodes, xnn.times_called, xnn.avg_ms, xnn.percent) == (7, 7, 68.502, 86.273)
    assert (transpose.nodes, transpose.times_called) == (22, 22)
    assert sum(op.percent for op in t.op_profile) == pytest.approx(100.0)


def test_benchmark_model_scientific_notation_and_single_warmup_run():
    t = parse_benchmark_model(read("pixel9_ok", "benchmark_model.stderr.txt"))
    assert t.mean_ms == pytest.approx(2950.34)  # avg=2.95034e+06 us
    assert t.warmup_mean_ms == pytest.approx(3512.39)  # Warmup (avg): 3.51239e+06
    assert t.first_ms == pytest.approx(3512.391)
    assert t.load_ms == pytest.approx(17.187)
    assert (t.count, t.min_ms, t.max_ms) == (50, pytest.approx(2727.568), pytest.approx(3189.954))
    assert t.op_profile == ()
    assert t.delegations[0].total_nodes == 458


def test_benchmark_model_all_same_and_older_wording():
    text = ("count=3 curr=4000(all same)\n"
            "curr=5000 count=10 min=4000 max=6000 avg=5.0e+03 std=500\n"  # the older field order
            "Average inference timings in us: Warmup: 4000, Init: 1200, no stats: 5000\n"
            "Replacing 10 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 partitions.\n")
    t = parse_benchmark_model(text)
    assert (t.mean_ms, t.warmup_mean_ms, t.load_ms, t.count, t.std_ms) == (5.0, 4.0, 1.2, 10, 0.5)
    [d] = t.delegations
    assert (d.delegate, d.nodes, d.total_nodes, d.partitions) == ("TfLiteGpuDelegateV2", 10, None, 2)
    single = parse_benchmark_model("count=1 curr=2000\ncount=4 curr=1500(all same)\n"
                                   "Inference timings in us: Init: 10, First inference: 2000, "
                                   "Warmup (avg): 2000, Inference (avg): 1500\n")
    assert (single.min_ms, single.max_ms, single.std_ms, single.count) == (1.5, 1.5, 0.0, 4)


def test_benchmark_model_error_is_runner_failed():
    text = ("INFO: Loaded model /data/local/tmp/m.tflite\n"
            "ERROR: Didn't find op for builtin opcode 'GELU' version '2'. An older version of this builtin "
            "might be supported.\nERROR: Registration failed.\n")
    with pytest.raises(RunnerFailed) as exc:
        parse_benchmark_model(text)
    assert_one_line(exc, "benchmark_model failed: Registration failed.")


@pytest.mark.parametrize("text, fragment", [
    ("INFO: STARTING!\n", "no 'Inference timings in us"),
    ("Inference timings in us: Init: 10, First inference: 20\n", "no 'Inference (avg)' field"),
    ("Inference timings in us: Init: 10, Inference (avg): 20\n", "no 'count=N ... avg=...' statistics line"),
    ("count=0\ncount=0\nInference timings in us: Init: 10, Inference (avg): nan\n", "count=0"),
    ("count=5 first=x\nInference timings in us: Inference (avg): 20\n", "statistics line without avg= or curr="),
])
def test_benchmark_model_malformed(text, fragment):
    with pytest.raises(FormatError) as exc:
        parse_benchmark_model(text)
    assert_one_line(exc, fragment)


def test_benchmark_model_broken_op_table_names_the_line():
    lines = read("pixel8_ok", "benchmark_model.stderr.txt").splitlines()
    last_table = max(i for i, line in enumerate(lines) if "Summary by node type" in line)
    lines[last_table + 2] = "\t   TfLiteXNNPackDelegate\t        7\t    68.502"  # a row cut short
    with pytest.raises(FormatError) as exc:
        parse_benchmark_model("\n".join(lines))
    assert_one_line(exc, f"line {last_table + 3}", "3 columns, the header 7")


# --- benchmark app (minibench) -----------------------------------------------------------------


def test_minibench_results():
    t = parse_minibench_results(read("pixel8_ok", "benchmark_results.json"), num_iter=50)
    assert (t.runner, t.model, t.count) == ("minibench", "seemore_t_x4_xnnpack_int8", 50)
    assert t.mean_ms == pytest.approx(81.37245)
    assert t.trimmed_mean_ms == pytest.approx(79.94122)
    assert t.load_ms == pytest.approx(142.30911)
    assert t.memory_mb == pytest.approx(61.2578125)
    assert t.min_ms is None and t.iterations_ms == ()


def test_minibench_two_builds_need_a_model():
    text = read("pixel9_ok", "benchmark_results.json")
    with pytest.raises(FormatError) as exc:
        parse_minibench_results(text)
    assert_one_line(exc, "seemore_t_x4_xnnpack_fp32", "seemore_t_x4_xnnpack_int8")
    fp32 = parse_minibench_results(text, model="seemore_t_x4_xnnpack_fp32")
    int8 = parse_minibench_results(text, model="seemore_t_x4_xnnpack_int8")
    assert fp32.mean_ms == pytest.approx(214.80273) and int8.mean_ms == pytest.approx(73.01968)
    with pytest.raises(FormatError) as exc:
        parse_minibench_results(text, model="seemore_b_x4_xnnpack_int8")
    assert_one_line(exc, "no results for model 'seemore_b_x4_xnnpack_int8'")


def test_minibench_load_failure_is_runner_failed():
    model = {"name": "seemore_t_x4", "backend": "vulkan", "quantization": "fp16"}
    text = json.dumps([{"benchmarkModel": model, "metric": "model_load_time(ms)", "actualValue": 3.2},
                       {"benchmarkModel": model, "metric": "load_status", "actualValue": 20.0}])
    with pytest.raises(RunnerFailed) as exc:
        parse_minibench_results(text)
    assert_one_line(exc, "seemore_t_x4_vulkan_fp16 failed to load (load_status 20)")


@pytest.mark.parametrize("text, fragment", [
    ("{not json", "is not JSON"),
    ("{}", "expected a non-empty list"),
    ("[]", "(empty)"),
    ('[{"metric": "load_status", "actualValue": 0}]', "record 0 has no 'benchmarkModel' field"),
    ('[{"benchmarkModel": {"name": "m"}, "metric": "avg_inference_latency(ms)", "actualValue": "fast"}]',
     "'actualValue' is not a number"),
    ('[{"benchmarkModel": {"name": "m"}, "metric": "load_status", "actualValue": 0}]',
     "no 'avg_inference_latency(ms)' record"),
])
def test_minibench_malformed(text, fragment):
    with pytest.raises(FormatError) as exc:
        parse_minibench_results(text)
    assert_one_line(exc, fragment)


# --- power rails -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, group", [
    ("S4M_VDD_CPUCL0", "cpu.little"), ("S3M_VDD_CPUCL1", "cpu.mid"), ("S2M_VDD_CPUCL2", "cpu.big"),
    ("S2M_VDD_CPUCL1", "cpu.mid"), ("S3M_VDD_CPUCL2", "cpu.big"),  # Pixel 9 numbering
    ("S2S_VDD_G3D", "gpu"), ("S8S_VDD_G3D_L2", "gpu"), ("S7M_VDD_TPU", "tpu"), ("S10M_VDD_TPU", "tpu"),
    ("s4m_vdd_cpucl0", "cpu.little"), ("TPU", "tpu"),
    ("VSYS_PWR_DISPLAY", None), ("S1M_VDD_MIF", None), ("S6M_VDD_CPUCL2_M", None), ("S9M_VDD_TPU_M", None),
    ("S4M_VDD_CPUCL00", None), ("XTPU", None),
])
def test_rail_group_by_suffix(name, group):
    assert rail_group(name) == group


def test_enabled_rails_both_numberings():
    p8 = parse_enabled_rails(read("pixel8_ok", "enabled_rails.txt"))
    p9 = parse_enabled_rails(read("pixel9_ok", "enabled_rails.txt"))
    assert len(p8) == len(p9) == 16
    assert (p8[0].channel, p8[0].name, p8[0].subsystem, p8[0].group) == (0, "S2M_VDD_CPUCL2", "CPU(BIG)", "cpu.big")
    assert groups_of(p8) == {"cpu.little": ("S4M_VDD_CPUCL0",), "cpu.mid": ("S3M_VDD_CPUCL1",),
                             "cpu.big": ("S2M_VDD_CPUCL2",), "gpu": ("S2S_VDD_G3D", "S8S_VDD_G3D_L2"),
                             "tpu": ("S7M_VDD_TPU",)}
    assert groups_of(p9) == {"cpu.little": ("S4M_VDD_CPUCL0",), "cpu.mid": ("S2M_VDD_CPUCL1",),
                             "cpu.big": ("S3M_VDD_CPUCL2",), "gpu": ("S2S_VDD_G3D", "S8S_VDD_G3D_L2"),
                             "tpu": ("S7M_VDD_TPU",)}


# The powers the synthetic transcripts were written with (watts).
P8_WATTS = {"cpu.little": 0.153, "cpu.mid": 1.204, "cpu.big": 1.912, "gpu": 0.047 + 0.018, "tpu": 0.011}
P9_WATTS = {"cpu.little": 0.141, "cpu.mid": 1.087, "cpu.big": 2.215, "gpu": 0.052 + 0.021, "tpu": 0.009}


@pytest.mark.parametrize("scenario, watts", [("pixel8_ok", P8_WATTS), ("pixel9_ok", P9_WATTS)])
def test_power_from_two_energy_value_readings(scenario, watts):
    start = parse_energy_value(read(scenario, "energy_value_1.txt"))
    end = parse_energy_value(read(scenario, "energy_value_2.txt"))
    assert start.source == "energy_value" and len(start.energy_uws) == 16
    assert end.timestamp_ms - start.timestamp_ms == 10012
    assert average_power(start, end) == pytest.approx(watts, rel=1e-9)
    assert list(average_power(start, end)) == ["cpu.little", "cpu.mid", "cpu.big", "gpu", "tpu"]
    per_rail = average_rail_power(start, end)
    assert per_rail["VSYS_PWR_DISPLAY"] == pytest.approx(0.402 if scenario == "pixel8_ok" else 0.377)


def test_energy_value_units():
    start = parse_energy_value("t=1000\nCH0(T=1000)[S7M_VDD_TPU], 5000000\n")
    end = parse_energy_value("t=3000\nCH0(T=3000)[S7M_VDD_TPU], 9000000\n")
    assert start.energy_uws == {"S7M_VDD_TPU": 5_000_000.0} and start.timestamp_ms == 1000.0
    # 4e6 uWs = 4 J over 2 s = 2 W
    assert average_power(start, end) == {"tpu": pytest.approx(2.0)}


@pytest.mark.parametrize("scenario, watts", [("pixel8_ok", P8_WATTS), ("pixel9_ok", P9_WATTS)])
def test_power_from_two_dumpsys_blocks(scenario, watts):
    start = parse_power_stats_dumpsys(read(scenario, "dumpsys_power_stats_1.txt"))
    end = parse_power_stats_dumpsys(read(scenario, "dumpsys_power_stats_2.txt"))
    # the energy meter block's Elapsed time, not the state-residency block's
    assert (start.elapsed_ms, end.elapsed_ms) == (183422.0, 10012.0)
    assert start.timestamp_ms is None and start.source == "dumpsys"
    assert len(end.energy_uws) == 16 and "CPUCL0" not in end.energy_uws  # energy consumers are skipped
    assert end.subsystems["S8S_VDD_G3D_L2"] == "GPU"
    # mWs -> uWs: the same rails as sysfs, in the same unit
    sysfs = parse_energy_value(read(scenario, "energy_value_2.txt"))
    assert set(end.energy_uws) == set(sysfs.energy_uws)
    for rail, uws in sysfs.energy_uws.items():
        assert end.energy_uws[rail] == pytest.approx(uws, abs=10)  # dumpsys rounds to 0.01 mWs
    # two decimals of mWs over 10 s: within 1 uW
    assert average_power(start, end) == pytest.approx(watts, abs=2e-6)
    assert average_power(start, end, elapsed_ms=20024) == pytest.approx({k: v / 2 for k, v in watts.items()},
                                                                          abs=2e-6)


def test_dumpsys_older_hal_rows_and_header_on_the_elapsed_line():
    text = ("============= PowerStats HAL 2.0 energy meter ==============\n"
            "Elapsed time: 2000 ms             Channel    Cumulative Energy (         Delta)\n"
            "      S7M_VDD_TPU         1000.00 mWs (       10.00)\n"
            "========== End of PowerStats HAL 2.0 energy meter ==========\n")
    sample = parse_power_stats_dumpsys(text)
    assert (sample.elapsed_ms, sample.energy_uws) == (2000.0, {"S7M_VDD_TPU": 1_000_000.0})


@pytest.mark.parametrize("parser, text, fragment", [
    (parse_enabled_rails, "", "no 'CH<n>[RAIL]:subsystem' line"),
    (parse_enabled_rails, "CH0[S7M_VDD_TPU]:TPU\nCH1 S4M_VDD_CPUCL0\n", "line 2"),
    (parse_enabled_rails, "CH0[S7M_VDD_TPU]:TPU\nCH0[S7M_VDD_TPU]:TPU\n", "listed twice"),
    (parse_energy_value, "t=1\n", "no 'CH<n>(T=<ms>)[RAIL], <uWs>' line"),
    (parse_energy_value, "CH0(T=1)[S7M_VDD_TPU], 5\n", "line 1: channel line before the 't=<ms>' line"),
    (parse_energy_value, "t=1\nCH0(T=1)[S7M_VDD_TPU], 5 uWs\n", "line 2: expected"),
    (parse_energy_value, "t=1\nCH0(T=1)[A], 5\nCH1(T=1)[A], 6\n", "rail A appears twice"),
    (parse_power_stats_dumpsys, "Can't find service: android.hardware.power.stats.IPowerStats/default\n",
     "no 'PowerStats HAL 2.0 energy meter' block"),
    (parse_power_stats_dumpsys, "============= PowerStats HAL 2.0 energy meter ==============\n  [A]:B  1.0 mWs\n",
     "has no 'End of PowerStats HAL 2.0 energy meter' line"),
    (parse_power_stats_dumpsys, "============= PowerStats HAL 2.0 energy meter ==============\n"
                                "========== End of PowerStats HAL 2.0 energy meter ==========\n", "has no"),
    (parse_power_stats_dumpsys, "============= PowerStats HAL 2.0 energy meter ==============\n"
                                "  [A]:B   lots of energy\n"
                                "========== End of PowerStats HAL 2.0 energy meter ==========\n", "line 2"),
])
def test_power_parsers_malformed(parser, text, fragment):
    with pytest.raises(FormatError) as exc:
        parser(text)
    assert_one_line(exc, fragment)


def test_average_power_refuses_mismatched_samples():
    start = parse_energy_value(read("pixel8_ok", "energy_value_1.txt"))
    end = parse_energy_value(read("pixel8_ok", "energy_value_2.txt"))
    pixel9 = parse_energy_value(read("pixel9_ok", "energy_value_2.txt"))
    with pytest.raises(PowerError) as exc:
        average_power(start, pixel9)
    assert_one_line(exc, "different rails", "S1S_VDD_CAM", "S6M_VDD_CPUCL2_M")
    with pytest.raises(PowerError) as exc:
        average_power(start, start)
    assert_one_line(exc, "time did not advance")
    with pytest.raises(PowerError) as exc:
        average_power(end, start)  # reversed: time and energy go backwards
    assert_one_line(exc, "time did not advance")
    with pytest.raises(PowerError) as exc:
        average_power(start, end, elapsed_ms=0)
    assert_one_line(exc, "time did not advance")
    reset = EnergySample("energy_value", {**end.energy_uws, "S7M_VDD_TPU": 0.0}, timestamp_ms=end.timestamp_ms)
    with pytest.raises(PowerError) as exc:
        average_power(start, reset)
    assert_one_line(exc, "S7M_VDD_TPU went down", "reset")
    dumpsys = parse_power_stats_dumpsys(read("pixel8_ok", "dumpsys_power_stats_2.txt"))
    with pytest.raises(PowerError) as exc:
        average_power(start, dumpsys)
    assert_one_line(exc, "different sources")
    no_time = EnergySample("dumpsys", dict(dumpsys.energy_uws))
    with pytest.raises(PowerError) as exc:
        average_power(no_time, no_time)
    assert_one_line(exc, "carry no time")


def test_coreml_profile_parses_predictions_and_op_placement() -> None:
    from seemore.profiling.formats import parse_coreml_profile

    doc = {"format": "seemore-mobile/coreml-profile/1", "device": "iPhone 15 Pro", "model": "m.mlpackage",
           "compute_units": "cpuAndNeuralEngine", "load_ms": 120.5, "predictions_ms": [2.0, 4.0, 3.0],
           "ops": [{"name": "a", "device": "ane", "cost": 0.5}, {"name": "b", "device": "ane", "cost": 0.25},
                   {"name": "c", "device": "cpu", "cost": 0.25}]}
    profile = parse_coreml_profile(json.dumps(doc))
    assert profile.timing.median_ms == 3.0 and profile.timing.load_ms == 120.5 and profile.timing.count == 3
    assert profile.ops_by_device == {"ane": 2, "cpu": 1} and profile.cost_by_device["ane"] == 0.75
    for broken in ({**doc, "format": "x"}, {**doc, "predictions_ms": [0]}, {**doc, "ops": [{"device": "npu"}]},
                   {k: v for k, v in doc.items() if k != "model"}):
        with pytest.raises(FormatError) as caught:
            parse_coreml_profile(json.dumps(broken))
        assert "\n" not in str(caught.value)
    with pytest.raises(FormatError, match="not JSON"):
        parse_coreml_profile("{")
