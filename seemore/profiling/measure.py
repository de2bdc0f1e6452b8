"""Measured mode: an artifact timed on an attached Android phone over adb, with its power rails.

For one artifact: push it and its runner (ExecuTorch's ``executor_runner`` for ``.pte``, LiteRT's
``benchmark_model`` for ``.tflite``) to ``/data/local/tmp/seemore``, read the on-device power
meter (Pixel 6 and later: the ODPM rails in sysfs, matched by their ``CPUCL0/1/2``, ``G3D``,
``TPU`` suffixes), run warm-up plus N timed runs, read the meter again, parse the runner's own
output (:mod:`seemore.profiling.formats`) and, for a ``.pte`` with per-op profiling, pull its
ETDump and read it with ``executorch.devtools.Inspector``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seemore.profiling.adb import Adb, AdbError
from seemore.profiling.formats import (
    EnergySample,
    FormatError,
    PowerError,
    RunnerTiming,
    average_power,
    parse_benchmark_model,
    parse_energy_value,
    parse_executor_runner,
)
from seemore.profiling.host import FoundArtifact, ProfileError

REMOTE_DIR = "/data/local/tmp/seemore"
# The two ODPM meters of Pixel 6 and later (main and sub PMIC); each lists 8 enabled channels.
METERS = ("/sys/bus/iio/devices/iio:device0", "/sys/bus/iio/devices/iio:device1")


@dataclass(frozen=True)
class RunnerBinaries:
    """The device-side runners on this machine (the README says how to build them)."""

    executor_runner: Path | None = None
    benchmark_model: Path | None = None

    def for_artifact(self, artifact: FoundArtifact) -> Path:
        """The runner of ``artifact``'s format; :class:`ProfileError` naming the flag when missing."""
        if artifact.path.suffix == ".pte":
            runner, flag, what = self.executor_runner, "--executor-runner", "ExecuTorch's executor_runner"
        elif artifact.path.suffix == ".tflite":
            runner, flag, what = self.benchmark_model, "--benchmark-model", "LiteRT's benchmark_model"
        else:
            raise ProfileError(f"{artifact.path.name}: no Android runner for {artifact.path.suffix} files")
        if runner is None:
            raise ProfileError(f"{artifact.path.name}: pass {flag} PATH ({what} built for arm64-v8a; see the README)")
        if not Path(runner).is_file():
            raise ProfileError(f"{flag} {runner}: no such file")
        return Path(runner)


@dataclass(frozen=True)
class MeasuredRun:
    """One artifact's measured latency on the phone, and its power while it ran."""

    artifact: str
    serial: str
    model: str
    timing: RunnerTiming
    power_w: dict[str, float] = field(default_factory=dict)
    op_ms: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def latency_ms(self) -> float:
        """The median timed run when the runner printed each, else its mean."""
        return self.timing.median_ms if self.timing.median_ms is not None else self.timing.mean_ms

    @property
    def total_power_w(self) -> float | None:
        """Power of every matched rail group together (CPU clusters, GPU, TPU), or None without rails."""
        return sum(self.power_w.values()) if self.power_w else None


def _energy(adb: Adb, timeout_s: float) -> EnergySample:
    result = adb.shell(["cat", *(f"{m}/energy_value" for m in METERS)], timeout_s)
    return parse_energy_value(result.output)


def runner_command(artifact: FoundArtifact, runner: str, runs: int, warmup: int, threads: int,
                   backend: str, op_profile: bool) -> tuple[list[str], str | None]:
    """The shell words that run ``artifact`` on the phone, and the remote ETDump path (or None)."""
    model = f"{REMOTE_DIR}/{artifact.path.name}"
    if artifact.path.suffix == ".pte":
        words = [runner, "--model_path", model, "--num_executions", str(runs + warmup), "--cpu_threads", str(threads)]
        etdump = f"{REMOTE_DIR}/{artifact.path.stem}.etdump" if op_profile else None
        if etdump:
            words += ["--etdump_path", etdump]
        return words, etdump
    words = [runner, f"--graph={model}", f"--num_threads={threads}", f"--num_runs={runs}",
             f"--warmup_runs={warmup}"]
    if backend == "litert-gpu":
        words.append("--use_gpu=true")
    if op_profile:
        words.append("--enable_op_profiling=true")
    return words, None


def measure_artifact(adb: Adb, artifact: FoundArtifact, backend: str, binaries: RunnerBinaries, runs: int,
                     warmup: int, threads: int, op_profile: bool = False, timeout_s: float = 600.0,
                     say: Callable[[str], None] = lambda _: None) -> MeasuredRun:
    """Run ``artifact`` on the selected phone; :class:`ProfileError` (one line) when anything fails."""
    serial = adb.select()
    runner = binaries.for_artifact(artifact)
    model = adb.getprop("ro.product.model") or "unknown model"
    remote_runner = f"{REMOTE_DIR}/{runner.name}"
    try:
        adb.shell(["mkdir", "-p", REMOTE_DIR], 30)
        say(f"{serial}: pushing {artifact.path.name} and {runner.name}")
        adb.push(artifact.path, f"{REMOTE_DIR}/{artifact.path.name}")
        adb.push(runner, remote_runner)
        adb.shell(["chmod", "755", remote_runner], 30)
        notes: list[str] = []
        before: EnergySample | None
        try:
            before = _energy(adb, 30)
        except (AdbError, FormatError) as exc:
            before = None
            notes.append(f"no power rails read ({exc}): latency only")
        words, etdump = runner_command(artifact, remote_runner, runs, warmup, threads, backend, op_profile)
        say(f"{serial}: running {runner.name} ({warmup} warm-up + {runs} timed runs)")
        start = time.monotonic()
        result = adb.shell(words, timeout_s)
        elapsed_ms = (time.monotonic() - start) * 1e3
        power: dict[str, float] = {}
        if before is not None:
            try:
                # The meter's own clock when it has one, else the wall time around the run.
                power = average_power(before, _energy(adb, 30),
                                      None if before.timestamp_ms is not None else elapsed_ms)
            except (AdbError, FormatError, PowerError) as exc:
                notes.append(f"power not computed ({exc})")
        if artifact.path.suffix == ".pte":
            timing = parse_executor_runner(result.output, warmup=warmup)
        else:
            timing = parse_benchmark_model(result.output)
        op_ms: dict[str, float] = {}
        if etdump is not None:
            op_ms = _pulled_etdump(adb, etdump)
        elif timing.op_profile:
            op_ms = {s.node_type: s.avg_ms for s in timing.op_profile}
        if power:
            notes.append("power: mean of the matched rails over the whole runner process (load and warm-up included)")
        return MeasuredRun(artifact.path.name, serial, model, timing, power, op_ms, tuple(notes))
    except (AdbError, FormatError) as exc:
        raise ProfileError(f"{artifact.path.name} on {serial}: {exc}") from None


def _pulled_etdump(adb: Adb, remote: str) -> dict[str, float]:
    """Mean time (ms) per delegated operator of an ETDump pulled from the phone."""
    from executorch.devtools import Inspector

    with tempfile.TemporaryDirectory(prefix="seemore-etdump-") as scratch:
        local = adb.pull(remote, Path(scratch) / Path(remote).name)
        try:
            frame = Inspector(etdump_path=str(local)).to_dataframe()
        except Exception as exc:  # the Inspector raises what its flatbuffer reader hits
            raise ProfileError(f"{Path(remote).name}: not a readable ETDump ({type(exc).__name__})") from None
    rows = frame[frame["event_block_name"] == "Execute"]
    out: dict[str, float] = {}
    for name, ms in zip(rows["event_name"], rows["p50 (ms)"]):
        out[str(name)] = out.get(str(name), 0.0) + float(ms)
    return out
