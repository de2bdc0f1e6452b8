"""Parsers of what the phone-side tools print: text in, frozen dataclasses out.

Runners (one :class:`RunnerTiming` shape for all three, so a caller treats them alike):

* :func:`parse_executor_runner` - ExecuTorch ``executor_runner`` (its ``ET_LOG`` lines, prefix
  ``I 00:00:05.833558 executorch:executor_runner.cpp:564]`` or none)
* :func:`parse_benchmark_model` - LiteRT ``benchmark_model`` (``INFO:`` prefixes, microseconds,
  scientific notation, the delegate line, ``--enable_op_profiling=true`` tables)
* :func:`parse_minibench_results` - the ExecuTorch Android benchmark app's
  ``benchmark_results.json``

Power (Pixel on-device power meters, ODPM):

* :func:`parse_enabled_rails` and :func:`parse_energy_value` - the sysfs files under
  ``/sys/bus/iio/devices/iio:device*/``
* :func:`parse_power_stats_dumpsys` - ``dumpsys android.hardware.power.stats.IPowerStats/default``
* :func:`rail_group` - a rail name to ``cpu.little`` / ``cpu.mid`` / ``cpu.big`` / ``gpu`` / ``tpu``
  by its suffix (the ``S4M``-style prefix is the PMIC channel and changes between phones)
* :func:`average_rail_power`, :func:`average_power` - watts from two samples

Every parser raises :class:`FormatError` with a one-line message (what was expected, which line
or field was missing) on input that does not match; well-formed output that reports a failed run
raises its subclass :class:`RunnerFailed`. The formats are those of ``../shared/docs/PROFILING.md``.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# A number as C++ streams and printf write them: 241.944288, 2.95034e+06, -3, nan.
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"


class FormatError(ValueError):
    """Tool output that does not have the expected form; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class RunnerFailed(FormatError):
    """Well-formed runner output that says the run failed (an abort, a failed load)."""


class PowerError(ValueError):
    """Two energy samples that cannot give a power (different rails, no time between them)."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FormatError(f"{what}: expected a number, got {text!r}") from None


def _shorten(line: str, limit: int = 120) -> str:
    line = line.strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Runner results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delegation:
    """One ``Replacing N out of M node(s) with delegate (NAME) node, yielding P partitions`` line."""

    delegate: str
    nodes: int
    total_nodes: int | None  # None: the older wording without "out of M"
    partitions: int | None


@dataclass(frozen=True)
class OpTypeStat:
    """One row of benchmark_model's "Summary by node type" table (regular runs)."""

    node_type: str
    nodes: int  # the [count] column: nodes of this type in the graph
    avg_ms: float  # per inference, all nodes of the type together
    percent: float
    times_called: int  # per inference


@dataclass(frozen=True)
class RunnerTiming:
    """One runner's latency figures in milliseconds, the same shape for every runner.

    ``count``/``mean_ms`` and the spread describe the timed runs only: warm-up runs are
    excluded where the runner separates them (``first_ms``/``warmup_mean_ms`` report those).
    Fields a runner does not print are None (or empty); ``notes`` says what was inferred.
    """

    runner: str  # "executor_runner" | "benchmark_model" | "minibench"
    mean_ms: float
    count: int | None  # timed runs; None where the runner does not say (minibench)
    load_ms: float | None = None  # program + method load / interpreter init
    first_ms: float | None = None  # the first inference (cold caches, weight packing)
    warmup_mean_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None  # population standard deviation, as benchmark_model prints it
    trimmed_mean_ms: float | None = None  # minibench: mean of the middle 80 % of runs
    iterations_ms: tuple[float, ...] = ()  # each timed run, where the runner prints them
    memory_mb: float | None = None  # minibench: PSS growth over the run
    model: str | None = None  # the model path or name the runner reported
    delegations: tuple[Delegation, ...] = ()
    op_profile: tuple[OpTypeStat, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def median_ms(self) -> float | None:
        """Median of the per-run times, where the runner printed them."""
        return statistics.median(self.iterations_ms) if self.iterations_ms else None

    @property
    def delegated_nodes(self) -> int | None:
        """Nodes taken by delegates (summed over delegate lines); None when no line was printed."""
        return sum(d.nodes for d in self.delegations) if self.delegations else None

    @property
    def total_nodes(self) -> int | None:
        """Nodes of the graph as the delegate line counts them; None when not printed."""
        totals = [d.total_nodes for d in self.delegations if d.total_nodes is not None]
        return max(totals) if totals else None


def _spread(values: list[float]) -> tuple[float, float, float, float]:
    return statistics.fmean(values), min(values), max(values), statistics.pstdev(values)


# --- ExecuTorch executor_runner ---------------------------------------------------------------

_ET_LOADED = re.compile(rf"Model loaded in ({_NUM}) ms")
_ET_ITERATION = re.compile(rf"Iteration (\d+) of (\d+): ({_NUM}) ms")
_ET_TOTAL = re.compile(rf"Model executed successfully (\d+) time\(s\) in ({_NUM}) ms")
_ET_MODEL = re.compile(r"Model file (.+?) is loaded\.")
# ET_LOG's Fatal level (ET_CHECK_MSG failures) and Error level, after the posix PAL's prefix.
_ET_FATAL = re.compile(r"^\s*F \d+:\d\d:\d\d\.\d+ executorch:[^\]]*\]\s*(.*)$")
_ET_ERROR = re.compile(r"^\s*E \d+:\d\d:\d\d\.\d+ executorch:[^\]]*\]\s*(.*)$")


def parse_executor_runner(text: str, warmup: int = 0) -> RunnerTiming:
    """Timing from ``executor_runner --num_executions N`` output (its stdout and stderr together).

    ``warmup`` leading iterations are left out of the statistics (``executor_runner`` has no
    warm-up flag, so a warm-up is run as extra executions); the first iteration is reported as
    ``first_ms`` either way. Builds that print only the ``Model executed successfully N time(s)
    in X ms`` total give the mean per run and no spread. An ``ET_CHECK`` abort raises
    :class:`RunnerFailed` with its message.
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    load_ms: float | None = None
    model: str | None = None
    iterations: list[tuple[int, int, float]] = []
    total: tuple[int, float] | None = None
    fatal: str | None = None
    error: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if m := _ET_FATAL.match(line):
            fatal = fatal or m.group(1)
        elif m := _ET_ERROR.match(line):
            error = m.group(1)
        if m := _ET_LOADED.search(line):
            load_ms = _number(m.group(1), f"executor_runner output line {number} (load time)")
        elif m := _ET_ITERATION.search(line):
            iterations.append((int(m.group(1)), int(m.group(2)),
                               _number(m.group(3), f"executor_runner output line {number} (iteration)")))
        elif m := _ET_TOTAL.search(line):
            total = int(m.group(1)), _number(m.group(2), f"executor_runner output line {number} (total)")
        elif (m := _ET_MODEL.search(line)) and model is None:
            model = m.group(1)
    if total is None:
        if fatal or error:
            raise RunnerFailed(f"executor_runner failed: {fatal or error}")
        raise FormatError("executor_runner output has no 'Model executed successfully N time(s) in X ms.' line "
                          f"(saw {len(iterations)} 'Iteration' lines: was the run cut short?)")
    runs, total_ms = total
    if runs < 1:
        raise FormatError(f"executor_runner output: 'Model executed successfully {runs} time(s)': no run to time")
    notes: list[str] = []
    if not iterations:
        # Older builds: only the total. The mean per run is all there is, warm-up included.
        if warmup:
            notes.append(f"per-iteration times not printed: the {warmup} warm-up run(s) are in the mean")
        notes.append("mean_ms is the total over the run count (no per-iteration lines)")
        return RunnerTiming("executor_runner", mean_ms=total_ms / runs, count=runs, load_ms=load_ms,
                            model=model, notes=tuple(notes))
    if len(iterations) != runs or [i for i, _, _ in iterations] != list(range(1, runs + 1)):
        raise FormatError(f"executor_runner output: {len(iterations)} 'Iteration i of N' lines for "
                          f"'executed successfully {runs} time(s)' (expected iterations 1..{runs})")
    if any(n != runs for _, n, _ in iterations):
        raise FormatError(f"executor_runner output: an 'Iteration i of N' line disagrees with N = {runs}")
    times = [ms for _, _, ms in iterations]
    if warmup >= len(times):
        raise FormatError(f"executor_runner output has {len(times)} iteration(s), all within warmup={warmup}: "
                          "run more executions than warm-up runs")
    timed = times[warmup:]
    mean, low, high, std = _spread(timed)
    return RunnerTiming("executor_runner", mean_ms=mean, count=len(timed), load_ms=load_ms, first_ms=times[0],
                        warmup_mean_ms=statistics.fmean(times[:warmup]) if warmup else None,
                        min_ms=low, max_ms=high, std_ms=std, iterations_ms=tuple(timed), model=model,
                        notes=tuple(notes))


# --- LiteRT benchmark_model -------------------------------------------------------------------

_TFL_PREFIX = re.compile(r"^\s*(?:INFO|WARNING|WARN|ERROR|VERBOSE): ?")
_TFL_ERROR = re.compile(r"^\s*ERROR: ?(.*)$")
_TFL_STAT_LINE = re.compile(r"^\s*(?:count|curr)=")
_TFL_FIELD = re.compile(rf"(\w+)=({_NUM})")
_TFL_SUMMARY = re.compile(r"inference timings in us:\s*(.*)$", re.IGNORECASE)
_TFL_SUMMARY_FIELD = re.compile(rf"([A-Za-z][A-Za-z ()]*?):\s*({_NUM})")
_TFL_DELEGATE = re.compile(r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \(([^)]*)\) node"
                           r"(?:, yielding (\d+) partitions)?")
_TFL_GRAPH = re.compile(r"^Graph: \[(.+)\]\s*$")
_TFL_TABLE_TITLE = re.compile(r"=+ (.+?) =+\s*$")
_TFL_REGULAR_PROFILE = "Operator-wise Profiling Info for Regular Benchmark Runs"
_TFL_COLUMN_SPLIT = re.compile(r"\t+|\s{2,}")
# benchmark_model's "Inference timings" keys, with the older "Average inference timings" wording.
_TFL_SUMMARY_KEYS = {"init": "init", "first inference": "first", "warmup (avg)": "warmup", "warmup": "warmup",
                     "inference (avg)": "inference", "no stats": "inference"}


def _tflite_stat(line: str, number: int) -> dict[str, float]:
    """One ``Stat::OutputToStream`` line: ``count=50 first=.. curr=.. min=.. max=.. avg=.. std=..``,
    or ``count=1 curr=X`` / ``count=N curr=X(all same)`` when every run took the same time."""
    values = {k: _number(v, f"benchmark_model output line {number} ({k})") for k, v in _TFL_FIELD.findall(line)}
    if "count" not in values:
        raise FormatError(f"benchmark_model output line {number}: statistics line without count=: {_shorten(line)!r}")
    if values["count"] > 0 and "avg" not in values:
        if "curr" not in values:
            raise FormatError(f"benchmark_model output line {number}: statistics line without avg= or curr=")
        values.update(avg=values["curr"], min=values["curr"], max=values["curr"], std=0.0)
    return values


def _tflite_op_table(lines: list[str], start: int) -> tuple[OpTypeStat, ...]:
    """The "Summary by node type" table whose title is at ``lines[start]`` (0-based)."""
    header_at = start + 1
    if header_at >= len(lines) or "[" not in lines[header_at]:
        raise FormatError(f"benchmark_model output line {header_at + 1}: expected the '[Node type] [count] ...' "
                          "header under 'Summary by node type'")
    names = [c.strip("[] ").lower() for c in re.findall(r"\[[^\]]+\]", lines[header_at])]
    wanted = {"node type": None, "count": None, "avg ms": None, "avg %": None, "times called": None}
    for key in wanted:
        if key not in names:
            raise FormatError(f"benchmark_model output line {header_at + 1}: 'Summary by node type' header has no "
                              f"[{key}] column")
        wanted[key] = names.index(key)
    rows: list[OpTypeStat] = []
    for i in range(header_at + 1, len(lines)):
        raw = _TFL_PREFIX.sub("", lines[i]).strip()
        if not raw or raw.startswith(("Timings", "Memory", "=")) or raw.endswith("nodes observed"):
            break
        cells = [c for c in _TFL_COLUMN_SPLIT.split(raw) if c]
        if len(cells) != len(names):
            raise FormatError(f"benchmark_model output line {i + 1}: 'Summary by node type' row has {len(cells)} "
                              f"columns, the header {len(names)}: {_shorten(raw)!r}")
        what = f"benchmark_model output line {i + 1}"
        rows.append(OpTypeStat(node_type=cells[wanted["node type"]],
                               nodes=int(_number(cells[wanted["count"]], f"{what} ([count])")),
                               avg_ms=_number(cells[wanted["avg ms"]], f"{what} ([avg ms])"),
                               percent=_number(cells[wanted["avg %"]].rstrip("%"), f"{what} ([avg %])"),
                               times_called=int(_number(cells[wanted["times called"]], f"{what} ([times called])"))))
    if not rows:
        raise FormatError(f"benchmark_model output line {header_at + 1}: 'Summary by node type' table has no rows")
    return tuple(rows)


def parse_benchmark_model(text: str) -> RunnerTiming:
    """Timing from LiteRT ``benchmark_model`` output (stdout and stderr together).

    Microseconds become milliseconds; numbers may be in scientific notation (``avg=2.95034e+06``).
    ``load_ms`` is ``Init``, ``first_ms`` the first inference, ``warmup_mean_ms`` the warm-up
    average; count, min, max and std come from the regular runs' statistics line and the mean
    from ``Inference (avg)``. Every ``Replacing N out of M node(s) with delegate (...)`` line
    becomes a :class:`Delegation`; with ``--enable_op_profiling=true`` the regular runs'
    "Summary by node type" table becomes ``op_profile`` (the initialization profile is skipped).
    """
    lines = text.splitlines()
    stats: list[tuple[int, dict[str, float]]] = []
    summary: dict[str, float] | None = None
    delegations: list[Delegation] = []
    model: str | None = None
    errors: list[str] = []
    regular_profile_at: int | None = None
    node_type_tables: list[int] = []
    for index, line in enumerate(lines):
        number = index + 1
        body = _TFL_PREFIX.sub("", line)
        if m := _TFL_ERROR.match(line):
            errors.append(m.group(1))
        if summary is None and _TFL_STAT_LINE.match(body):
            stats.append((number, _tflite_stat(body, number)))
        elif m := _TFL_SUMMARY.search(body):
            summary = {}
            for key, value in _TFL_SUMMARY_FIELD.findall(m.group(1)):
                name = _TFL_SUMMARY_KEYS.get(key.strip().lower())
                if name:
                    summary[name] = _number(value, f"benchmark_model output line {number} ({key.strip()})")
            if "inference" not in summary:
                raise FormatError(f"benchmark_model output line {number}: 'Inference timings in us' has no "
                                  "'Inference (avg)' field")
        elif m := _TFL_DELEGATE.search(body):
            delegations.append(Delegation(delegate=m.group(3), nodes=int(m.group(1)),
                                          total_nodes=int(m.group(2)) if m.group(2) else None,
                                          partitions=int(m.group(4)) if m.group(4) else None))
        elif (m := _TFL_GRAPH.match(body.strip())) and model is None:
            model = m.group(1)
        elif _TFL_REGULAR_PROFILE in body:
            regular_profile_at = index
        elif (m := _TFL_TABLE_TITLE.search(body)) and m.group(1).strip() == "Summary by node type":
            node_type_tables.append(index)
    if summary is None:
        if errors:
            raise RunnerFailed(f"benchmark_model failed: {errors[-1]}")
        raise FormatError("benchmark_model output has no 'Inference timings in us: Init: ..., Inference (avg): ...' "
                          "line (was the run cut short?)")
    if not stats:
        raise FormatError("benchmark_model output has no 'count=N ... avg=...' statistics line before "
                          "'Inference timings in us'")
    regular = stats[-1][1]  # warm-up statistics come first, the regular runs' last
    if regular["count"] < 1:
        raise FormatError(f"benchmark_model output line {stats[-1][0]}: the regular runs' statistics say count=0 "
                          "(a --dry_run?)")
    op_profile: tuple[OpTypeStat, ...] = ()
    if node_type_tables:
        after = [i for i in node_type_tables if regular_profile_at is not None and i > regular_profile_at]
        # Without the "Regular Benchmark Runs" banner (older builds), the regular runs' table is last.
        op_profile = _tflite_op_table(lines, after[0] if after else node_type_tables[-1])
    ms = 1e-3
    return RunnerTiming(
        "benchmark_model", mean_ms=summary["inference"] * ms, count=int(regular["count"]),
        load_ms=summary["init"] * ms if "init" in summary else None,
        first_ms=summary["first"] * ms if "first" in summary else None,
        warmup_mean_ms=summary["warmup"] * ms if "warmup" in summary else None,
        min_ms=regular["min"] * ms, max_ms=regular["max"] * ms, std_ms=regular["std"] * ms,
        model=model, delegations=tuple(delegations), op_profile=op_profile)


# --- ExecuTorch Android benchmark app (org.pytorch.minibench) ---------------------------------

_MINIBENCH_METRICS = {"avg_inference_latency(ms)": "avg", "trimmean_inference_latency(ms)": "trimmean",
                      "model_load_time(ms)": "load", "load_status": "status", "ram_pss_usage(mb)": "pss"}


def parse_minibench_results(json_text: str, model: str | None = None, num_iter: int | None = None) -> RunnerTiming:
    """Timing from the benchmark app's ``benchmark_results.json`` (a list of metric records).

    The app benchmarks every ``.pte`` in its model folder: pass ``model`` (the ``.pte`` file's
    stem, which the app records as ``benchmarkModel`` name, backend and quantization) when the
    file holds several. The file does not record how many
    runs were timed: pass ``num_iter`` (the ``--ei num_iter`` given) to fill ``count``. A
    non-zero ``load_status`` raises :class:`RunnerFailed`.
    """
    try:
        records = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"benchmark_results.json is not JSON: {exc.msg} "
                          f"(line {exc.lineno} column {exc.colno})") from None
    if not isinstance(records, list) or not records:
        raise FormatError("benchmark_results.json: expected a non-empty list of metric records "
                          f"{{benchmarkModel, metric, actualValue, ...}}, got {type(records).__name__}"
                          + (" (empty)" if isinstance(records, list) else ""))
    by_model: dict[str, dict[str, float]] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise FormatError(f"benchmark_results.json: record {i} is a {type(record).__name__}, expected an object")
        for key in ("benchmarkModel", "metric", "actualValue"):
            if key not in record:
                raise FormatError(f"benchmark_results.json: record {i} has no {key!r} field")
        bench = record["benchmarkModel"]
        if not isinstance(bench, dict) or "name" not in bench:
            raise FormatError(f"benchmark_results.json: record {i}: 'benchmarkModel' has no 'name'")
        value = record["actualValue"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FormatError(f"benchmark_results.json: record {i} ({record['metric']}): 'actualValue' is not a number")
        # The app splits the .pte file name into name_backend_quantization; joined back, it is
        # the file's stem again, which tells apart two builds of one model.
        label = "_".join(str(bench[k]) for k in ("name", "backend", "quantization") if bench.get(k))
        metric = _MINIBENCH_METRICS.get(str(record["metric"]))
        if metric:
            by_model.setdefault(label, {})[metric] = float(value)
    if model is None:
        if len(by_model) > 1:
            raise FormatError("benchmark_results.json holds results for several models "
                              f"({', '.join(sorted(by_model))}): say which one")
        if not by_model:
            raise FormatError("benchmark_results.json: no record with a known metric "
                              f"({', '.join(_MINIBENCH_METRICS)})")
        model = next(iter(by_model))
    elif model not in by_model:
        raise FormatError(f"benchmark_results.json has no results for model {model!r} "
                          f"(it has: {', '.join(sorted(by_model)) or 'none'})")
    metrics = by_model[model]
    status = metrics.get("status")
    if status is not None and status != 0:
        raise RunnerFailed(f"benchmark app: model {model} failed to load (load_status {int(status)})")
    if "avg" not in metrics:
        raise FormatError(f"benchmark_results.json: model {model} has no 'avg_inference_latency(ms)' record")
    return RunnerTiming("minibench", mean_ms=metrics["avg"], count=num_iter, load_ms=metrics.get("load"),
                        trimmed_mean_ms=metrics.get("trimmean"), memory_mb=metrics.get("pss"), model=model)


# --- Core ML on an iPhone: what the user exports ---------------------------------------------

COREML_PROFILE_FORMAT = "seemore-mobile/coreml-profile/1"
_COREML_DEVICES = ("ane", "gpu", "cpu")


@dataclass(frozen=True)
class CoreMLProfile:
    """A Core ML model's measured predictions on an iPhone and where its ops ran.

    Written as JSON (``format = "seemore-mobile/coreml-profile/1"``) by the iOS demo app, or by
    hand from Xcode's performance report (load and median prediction time, the compute unit of
    each op): ``{"format", "device", "model", "compute_units", "load_ms", "predictions_ms": [..],
    "ops": [{"name", "type", "device": "ane"|"gpu"|"cpu", "cost"}]}``; ``ops`` optional
    (``MLComputePlan``'s preferred device and estimated cost per op, iOS 17.4).
    """

    timing: RunnerTiming
    device: str
    compute_units: str
    ops_by_device: Mapping[str, int]
    cost_by_device: Mapping[str, float]


def parse_coreml_profile(json_text: str) -> CoreMLProfile:
    """A :class:`CoreMLProfile` from its JSON; :class:`FormatError` naming the bad field."""
    try:
        doc = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"Core ML profile is not JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    if not isinstance(doc, dict) or doc.get("format") != COREML_PROFILE_FORMAT:
        raise FormatError(f"Core ML profile: 'format' must be {COREML_PROFILE_FORMAT!r}")
    for key in ("device", "model", "compute_units", "predictions_ms"):
        if key not in doc:
            raise FormatError(f"Core ML profile: no {key!r} field")
    times = doc["predictions_ms"]
    if not isinstance(times, list) or not times or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in times):
        raise FormatError("Core ML profile: 'predictions_ms' must be a non-empty list of positive numbers")
    load = doc.get("load_ms")
    if load is not None and (isinstance(load, bool) or not isinstance(load, (int, float))):
        raise FormatError("Core ML profile: 'load_ms' must be a number")
    ops_by_device: dict[str, int] = {}
    cost_by_device: dict[str, float] = {}
    ops = doc.get("ops", [])
    if not isinstance(ops, list):
        raise FormatError("Core ML profile: 'ops' must be a list")
    for i, op in enumerate(ops):
        device = op.get("device") if isinstance(op, dict) else None
        if device not in _COREML_DEVICES:
            raise FormatError(f"Core ML profile: ops[{i}].device must be one of {', '.join(_COREML_DEVICES)}")
        ops_by_device[device] = ops_by_device.get(device, 0) + 1
        cost = op.get("cost", 0.0)
        if isinstance(cost, bool) or not isinstance(cost, (int, float)):
            raise FormatError(f"Core ML profile: ops[{i}].cost must be a number")
        cost_by_device[device] = cost_by_device.get(device, 0.0) + float(cost)
    values = [float(t) for t in times]
    mean, low, high, std = _spread(values)
    timing = RunnerTiming("coreml", mean_ms=mean, count=len(values), load_ms=None if load is None else float(load),
                          min_ms=low, max_ms=high, std_ms=std, iterations_ms=tuple(values), model=str(doc["model"]))
    return CoreMLProfile(timing, str(doc["device"]), str(doc["compute_units"]), ops_by_device, cost_by_device)


# ---------------------------------------------------------------------------------------------
# Power rails
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rail:
    """One power-meter channel: ``CH0[S4M_VDD_CPUCL0]:CPU(LITTLE)`` -> channel 0, name, subsystem."""

    name: str
    subsystem: str
    channel: int | None = None

    @property
    def group(self) -> str | None:
        """:func:`rail_group` of the name."""
        return rail_group(self.name)


@dataclass(frozen=True)
class EnergySample:
    """Cumulative energy per rail at one moment, in microwatt-seconds (uWs).

    ``timestamp_ms`` is the meter's own clock (sysfs ``t=``; None for dumpsys, which prints
    none). ``elapsed_ms`` is dumpsys's ``Elapsed time`` in ``delta`` mode: the time since the
    power HAL's previous ``delta`` dump by any caller, not necessarily by us.
    """

    source: str  # "energy_value" | "dumpsys"
    energy_uws: Mapping[str, float]
    timestamp_ms: float | None = None
    elapsed_ms: float | None = None
    subsystems: Mapping[str, str] = field(default_factory=dict)


# Pixel rail names end in the block they feed; the S<n>M/S<n>S prefix is the PMIC (M main,
# S sub) channel, which moves between phones (Pixel 8: CPUCL1 on S3M, Pixel 9: on S2M).
_RAIL_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("CPUCL0", "cpu.little"),
    ("CPUCL1", "cpu.mid"),
    ("CPUCL2", "cpu.big"),
    ("G3D_L2", "gpu"),
    ("G3D", "gpu"),
    ("TPU", "tpu"),
)
RAIL_GROUPS: tuple[str, ...] = ("cpu.little", "cpu.mid", "cpu.big", "gpu", "tpu")


def rail_group(name: str) -> str | None:
    """``cpu.little`` / ``cpu.mid`` / ``cpu.big`` / ``gpu`` / ``tpu`` for a rail name, else None.

    Matched on the name's last ``_``-separated parts only (``S4M_VDD_CPUCL0`` and
    ``S2M_VDD_CPUCL0`` are both ``cpu.little``); rails of other blocks (display, modem, memory,
    the ``..._M`` memory rails of a cluster) are None.
    """
    upper = name.strip().upper()
    for suffix, group in _RAIL_SUFFIXES:
        if upper == suffix or upper.endswith("_" + suffix):
            return group
    return None


_ENABLED_RAIL = re.compile(r"^\s*CH(\d+)\[([^\]]+)\]:(.*?)\s*$")


def parse_enabled_rails(text: str) -> tuple[Rail, ...]:
    """Rails from ``enabled_rails`` (one ``CH0[S10M_VDD_TPU]:TPU`` line per channel).

    Several meters' files may be concatenated (their channels each start at CH0); a rail name
    seen twice is an error.
    """
    rails: list[Rail] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _ENABLED_RAIL.match(line)
        if not m:
            raise FormatError(f"enabled_rails line {number}: expected 'CH<n>[RAIL]:subsystem', got {_shorten(line)!r}")
        if m.group(2) in seen:
            raise FormatError(f"enabled_rails line {number}: rail {m.group(2)} listed twice")
        seen.add(m.group(2))
        rails.append(Rail(name=m.group(2), subsystem=m.group(3), channel=int(m.group(1))))
    if not rails:
        raise FormatError("enabled_rails: no 'CH<n>[RAIL]:subsystem' line")
    return tuple(rails)


_ENERGY_TIME = re.compile(r"^\s*t=(\d+)\s*$")
_ENERGY_CHANNEL = re.compile(r"^\s*CH(\d+)\(T=(\d+)\)\[([^\]]+)\],\s*(\d+)\s*$")


def parse_energy_value(text: str) -> EnergySample:
    """Sample from ``energy_value`` (``t=16086645``, then ``CH3(T=16086645)[S2M_VDD_CPUCL2], 124265856``).

    Energy is cumulative uWs, the timestamp milliseconds. Several meters' files may be
    concatenated (``cat iio:device*/energy_value``): the sample's time is the first ``t=``
    (the meters are read within a millisecond of each other).
    """
    energy: dict[str, float] = {}
    timestamp: float | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if m := _ENERGY_TIME.match(line):
            timestamp = float(m.group(1)) if timestamp is None else timestamp
        elif m := _ENERGY_CHANNEL.match(line):
            if timestamp is None:
                raise FormatError(f"energy_value line {number}: channel line before the 't=<ms>' line")
            if m.group(3) in energy:
                raise FormatError(f"energy_value line {number}: rail {m.group(3)} appears twice")
            energy[m.group(3)] = float(m.group(4))
        else:
            raise FormatError(f"energy_value line {number}: expected 't=<ms>' or 'CH<n>(T=<ms>)[RAIL], <uWs>', "
                              f"got {_shorten(line)!r}")
    if not energy:
        raise FormatError("energy_value: no 'CH<n>(T=<ms>)[RAIL], <uWs>' line")
    return EnergySample(source="energy_value", energy_uws=energy, timestamp_ms=timestamp)


_PS_BEGIN = "PowerStats HAL 2.0 energy meter"
_PS_END = "End of PowerStats HAL 2.0 energy meter"
_PS_ELAPSED = re.compile(r"Elapsed time:\s*(\d+)\s*ms")
_PS_ROW = re.compile(rf"^\s*(?:\[(?P<name>[^\]]+)\](?::(?P<sub>.*?))?|(?P<bare>\S+))\s+(?P<e>{_NUM})\s*mWs"
                     rf"(?:\s*\(\s*(?P<d>{_NUM})\s*\))?\s*$")


def parse_power_stats_dumpsys(text: str) -> EnergySample:
    """Sample from ``dumpsys android.hardware.power.stats.IPowerStats/default [delta]``.

    Reads the "PowerStats HAL 2.0 energy meter" block only (the state-residency and
    energy-consumer blocks before it are skipped): per channel ``[RAIL]:subsystem <E> mWs
    (<delta>)``, converted to uWs; ``Elapsed time: N ms`` (``delta`` mode) becomes
    ``elapsed_ms``.
    """
    lines = text.splitlines()
    begin = next((i for i, line in enumerate(lines) if _PS_BEGIN in line and _PS_END not in line), None)
    if begin is None:
        raise FormatError(f"power stats dumpsys: no '{_PS_BEGIN}' block (is this the IPowerStats/default HAL dump?)")
    end = next((i for i in range(begin + 1, len(lines)) if _PS_END in lines[i]), None)
    if end is None:
        raise FormatError(f"power stats dumpsys: the energy meter block opened on line {begin + 1} has no "
                          f"'{_PS_END}' line (truncated output?)")
    energy: dict[str, float] = {}
    subsystems: dict[str, str] = {}
    elapsed: float | None = None
    for i in range(begin + 1, end):
        line = lines[i]
        if m := _PS_ELAPSED.search(line):
            elapsed = float(m.group(1))
            line = line[m.end():]  # one HAL version prints the header right after "ms"
        if not line.strip() or ("Channel" in line and "mWs" not in line):
            continue
        m = _PS_ROW.match(line)
        if not m:
            raise FormatError(f"power stats dumpsys line {i + 1}: expected '[RAIL]:subsystem <energy> mWs', "
                              f"got {_shorten(line)!r}")
        name = m.group("name") or m.group("bare")
        if name in energy:
            raise FormatError(f"power stats dumpsys line {i + 1}: rail {name} appears twice")
        energy[name] = _number(m.group("e"), f"power stats dumpsys line {i + 1}") * 1000.0  # mWs -> uWs
        if m.group("sub"):
            subsystems[name] = m.group("sub").strip()
    if not energy:
        raise FormatError(f"power stats dumpsys: the energy meter block (lines {begin + 1}-{end + 1}) has no "
                          "'[RAIL]:subsystem <energy> mWs' row (no meter on this phone?)")
    return EnergySample(source="dumpsys", energy_uws=energy, elapsed_ms=elapsed, subsystems=subsystems)


def _elapsed_ms(start: EnergySample, end: EnergySample, elapsed_ms: float | None) -> float:
    if elapsed_ms is not None:
        dt = float(elapsed_ms)
        origin = "the given elapsed time"
    elif start.timestamp_ms is not None and end.timestamp_ms is not None:
        dt = end.timestamp_ms - start.timestamp_ms
        origin = f"start t={start.timestamp_ms:g} ms, end t={end.timestamp_ms:g} ms"
    elif end.elapsed_ms is not None:
        # dumpsys delta: the HAL's time since its previous delta dump, i.e. since `start` when
        # nobody else dumped in between.
        dt = end.elapsed_ms
        origin = "the end sample's 'Elapsed time'"
    else:
        raise PowerError("the samples carry no time (dumpsys without 'delta'): pass the elapsed time measured "
                         "around them")
    if not math.isfinite(dt) or dt <= 0:
        raise PowerError(f"time did not advance between the two energy samples ({origin}): no power to compute")
    return dt


def average_rail_power(start: EnergySample, end: EnergySample, elapsed_ms: float | None = None) -> dict[str, float]:
    """Mean power per rail in watts between two samples: energy delta (uWs) / time delta.

    The time is ``elapsed_ms`` when given, else the samples' timestamps, else the end sample's
    dumpsys ``Elapsed time``. Samples of different sources or rails, time that did not advance
    and energy that went down (a meter reset) raise :class:`PowerError`.
    """
    if start.source != end.source:
        raise PowerError(f"energy samples come from different sources ({start.source} and {end.source}): "
                         "their clocks and rails do not line up")
    only_start = sorted(set(start.energy_uws) - set(end.energy_uws))
    only_end = sorted(set(end.energy_uws) - set(start.energy_uws))
    if only_start or only_end:
        raise PowerError("energy samples cover different rails "
                         f"(only in the first: {', '.join(only_start) or '-'}; only in the second: "
                         f"{', '.join(only_end) or '-'}): read the same enabled rails twice")
    dt_ms = _elapsed_ms(start, end, elapsed_ms)
    watts: dict[str, float] = {}
    for rail, before in start.energy_uws.items():
        delta = end.energy_uws[rail] - before
        if delta < 0:
            raise PowerError(f"energy of rail {rail} went down between the samples ({before:g} -> "
                             f"{end.energy_uws[rail]:g} uWs): the meter was reset")
        watts[rail] = delta / dt_ms * 1e-3  # uWs per ms = mW; W = 1e-3 * that
    return watts


def average_power(start: EnergySample, end: EnergySample, elapsed_ms: float | None = None) -> dict[str, float]:
    """Mean power in watts per rail group (``cpu.little``, ``cpu.mid``, ``cpu.big``, ``gpu``, ``tpu``).

    Sums :func:`average_rail_power` over the rails of each group (GPU: ``G3D`` + ``G3D_L2``);
    only groups with a rail in the samples appear, and rails of no group are left out (ask
    :func:`average_rail_power` for them).
    """
    groups: dict[str, float] = {}
    for rail, watts in average_rail_power(start, end, elapsed_ms).items():
        group = rail_group(rail)
        if group is not None:
            groups[group] = groups.get(group, 0.0) + watts
    return {g: groups[g] for g in RAIL_GROUPS if g in groups}


def groups_of(rails: Iterable[Rail]) -> dict[str, tuple[str, ...]]:
    """Enabled rails by group (``{"gpu": ("S2S_VDD_G3D", "S8S_VDD_G3D_L2"), ...}``), groups in order."""
    found: dict[str, list[str]] = {}
    for rail in rails:
        if rail.group is not None:
            found.setdefault(rail.group, []).append(rail.name)
    return {g: tuple(found[g]) for g in RAIL_GROUPS if g in found}
