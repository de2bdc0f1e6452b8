"""What profiling measures on this host: artifact program costs, per-op ETDump timings of the
host ``.pte`` files (the estimator's calibration) and end-to-end latencies (its validation)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seemore.contract import ArtifactContract, contract_path
from seemore.profiling.costs import ProgramCost, program_costs
from seemore.profiling.estimate import Calibration, calibrate

# Which contracts each registry backend runs: (runtime, backend, precision) of the artifact,
# the precision the unit computes in, and the command that makes the artifact.
BACKEND_ARTIFACTS: dict[str, tuple[tuple[tuple[str, str, str], str, str], ...]] = {
    "executorch-xnnpack": ((("executorch", "xnnpack", "fp32"), "fp32", "python mobile/export_executorch.py"),
                           (("executorch", "xnnpack", "int8"), "int8", "python mobile/export_executorch.py")),
    "executorch-vulkan": ((("executorch", "vulkan", "fp16"), "fp16", "python mobile/export_executorch.py"),),
    "litert-cpu": ((("litert", "litert", "fp32"), "fp32", "python mobile/export_tflite.py"),
                   (("litert", "litert", "int8"), "int8", "python mobile/export_tflite.py")),
    # The GPU delegate computes in fp16 and reads the fp16 weights of this file directly.
    "litert-gpu": ((("litert", "litert", "fp16"), "fp16", "python mobile/export_tflite.py"),),
    "coreml": ((("coreml", "coreml", "fp16"), "fp16", "python mobile/export_coreml.py"),
               (("coreml", "coreml", "int8"), "int8", "python mobile/export_coreml.py")),
    "executorch-coreml": ((("executorch", "coreml", "fp16"), "fp16", "python mobile/export_coreml.py"),),
}
# The host .pte files whose ETDumps calibrate the estimator, by precision.
CALIBRATION_ARTIFACTS: dict[str, tuple[str, str, str]] = {
    "fp32": ("executorch", "xnnpack", "fp32"), "int8": ("executorch", "xnnpack", "int8")}


class ProfileError(RuntimeError):
    """Profiling cannot go on (a missing artifact, a runtime that failed); one line."""


@dataclass(frozen=True)
class FoundArtifact:
    """An artifact under the profiling root whose file still matches its contract."""

    path: Path
    contract: ArtifactContract

    @property
    def key(self) -> tuple[str, str, str]:
        """(runtime, backend, precision) of its spec."""
        s = self.contract.spec
        return s.runtime, s.backend, s.precision


def find_artifacts(root: Path, model: str | None = None) -> dict[tuple[str, str, str], FoundArtifact]:
    """Runtime artifacts under ``root`` (by runtime, backend, precision), of one model name when
    given; the first found wins, plain (uncompressed) ones before compressed ones."""
    from seemore.contract import ContractError, discover
    from seemore.contract.store import check_file

    found: dict[tuple[str, str, str], FoundArtifact] = {}
    if not root.is_dir():
        return found
    candidates = []
    for item in discover(root):
        c = item.contract
        if c is None or c.kind != "runtime" or c.spec.batch != 1:
            continue
        if model is not None and c.source.model != model:
            continue
        try:
            path = check_file(item.path, c.artifact, "artifact")
        except ContractError:
            continue  # a stale or changed file: never profiled under its old contract
        candidates.append((bool(c.spec.compression), str(path), FoundArtifact(path, c)))
    for _, _, artifact in sorted(candidates, key=lambda t: (t[0], t[1])):
        found.setdefault(artifact.key, artifact)
    return found


# Exported programs per (source or program hash, backend form, height, width): an artifact's fp32
# and fp16 files share one export; only the bytes per element differ.
_PROGRAMS: dict[tuple[str, ...], Any] = {}


def artifact_cost(artifact: FoundArtifact, precision: str) -> ProgramCost:
    """The program cost of what ``artifact`` computes, at its fixed shape and ``precision``.

    Float artifacts: the source checkpoint's deploy form for the artifact's backend, exported
    at the spec's shape; INT8 ones: their quantized program, exported again at that shape (as
    the exporter lowers it). The export is cached per source, shape and form (fp32 and fp16 files share it).
    """
    from seemore.checkpoint import CheckpointError, load_model
    from seemore.contract import ContractError
    from seemore.contract.store import check_file, find_source_checkpoint
    from seemore.deploy.capture import export_program

    contract, spec = artifact.contract, artifact.contract.spec
    file = contract_path(artifact.path)
    quant = contract.quantization
    use_program = spec.precision == "int8" and quant is not None and quant.program is not None
    key = (quant.program.sha256 if use_program else contract.source.sha256, spec.backend, str(spec.height),
           str(spec.width))
    if key not in _PROGRAMS:
        try:
            if use_program:
                from seemore.quantize import load_program

                model: Any = load_program(check_file(file, quant.program, "quantized program"))
            else:
                model = load_model(find_source_checkpoint(file, contract)).eval()
        except (ContractError, CheckpointError) as exc:
            raise ProfileError(str(exc)) from None
        _PROGRAMS[key] = export_program(model, spec).graph_module
    return program_costs(_PROGRAMS[key], precision)


def etdump_timings(path: Path, contract: ArtifactContract, threads: int, runs: int,
                   keep_etdump: Path | None = None) -> tuple[list[tuple[str, float]], float]:
    """Per-op median times (ms) of the delegated operators of a host ``.pte`` and its median
    end-to-end time, from ``runs`` executions with ExecuTorch's event tracer after one untimed
    warm-up run. ``keep_etdump``: also copy the ETDump file there."""
    import torch
    from executorch.devtools import Inspector
    from executorch.runtime import Runtime

    from seemore.runtime.executorch import set_runtime_threads
    from seemore.toolchain_logs import quiet_fd2

    set_runtime_threads(threads)
    x = contract.spec.example_input()
    with quiet_fd2():
        program = Runtime.get().load_program(Path(path), enable_etdump=True, debug_buffer_size=0)
        method = program.load_method("forward")
        with torch.no_grad():
            method.execute([x])
            wall = []
            for _ in range(runs):
                start = time.perf_counter()
                method.execute([x])
                wall.append((time.perf_counter() - start) * 1e3)
        with tempfile.TemporaryDirectory(prefix="seemore-etdump-") as scratch:
            etdump, debug = Path(scratch) / "run.etdp", Path(scratch) / "debug.bin"
            program.write_etdump_result_to_file(str(etdump), str(debug))
            frame = Inspector(etdump_path=str(etdump)).to_dataframe()
            if keep_etdump is not None:  # a copy of the real file, e.g. to replay as a phone's
                Path(keep_etdump).parent.mkdir(parents=True, exist_ok=True)
                Path(keep_etdump).write_bytes(etdump.read_bytes())
    rows = frame[(frame["event_block_name"] == "Execute") & frame["is_delegated_op"].astype(bool)]
    # Medians per op, like the wall time's: the untimed warm-up run (weight packing) is in the
    # tracer's record too, and a mean would count it.
    events = [(str(name), float(ms)) for name, ms in zip(rows["event_name"], rows["p50 (ms)"])
              if not str(name).startswith("DELEGATE_CALL")]
    if not events:
        raise ProfileError(f"{Path(path).name}: the ETDump has no delegated operator events")
    return events, statistics.median(wall)


def host_calibrations(artifacts: Mapping[tuple[str, str, str], FoundArtifact], threads: int, runs: int,
                      cpu: str, say: Callable[[str], None] = lambda _: None) -> dict[str, Calibration]:
    """The estimator's host calibration per precision, from the ETDumps of the XNNPACK ``.pte``
    files under the root; :class:`ProfileError` naming the command when one is missing."""
    out = {}
    for precision, key in CALIBRATION_ARTIFACTS.items():
        artifact = artifacts.get(key)
        if artifact is None:
            raise ProfileError(f"no host XNNPACK {precision} .pte to calibrate the estimator with: "
                               "run `python mobile/export_executorch.py` (or `bash run.sh pipeline`) first")
        say(f"calibrating on {artifact.path.name} ({runs} runs with ExecuTorch's event tracer)")
        events, execute_ms = etdump_timings(artifact.path, artifact.contract, threads, runs)
        source = f"ETDump of {artifact.path.name}, {runs} runs, {threads} threads, {cpu}"
        out[precision] = calibrate(events, execute_ms, artifact_cost(artifact, precision), runs, source)
    return out


def measure_latencies(artifacts: Sequence[FoundArtifact], threads: int, runs: int, warmup: int = 1,
                      say: Callable[[str], None] = lambda _: None) -> dict[Path, list[float]]:
    """End-to-end times (ms) of host-runnable artifacts, measured side by side (round robin)."""
    import torch

    from seemore.cli import apply_threads
    from seemore.common.timing import round_robin_ms
    from seemore.parity.harness import io_adapter
    from seemore.runtime import get_runner

    from seemore.export.calibration import real_input
    from seemore.paths import resolve_data_root

    apply_threads(threads)
    data_root = resolve_data_root(None)
    engines: dict[str, Callable[[], object]] = {}
    paths: dict[str, Path] = {}
    for artifact in artifacts:
        runner = get_runner(artifact.contract.spec.runtime)
        reason = "no runner" if runner is None else runner.available(artifact.path)
        if reason is not None:
            raise ProfileError(f"{artifact.path.name}: cannot run here ({reason})")
        spec = artifact.contract.spec
        run = io_adapter(runner.load(artifact.path), spec)
        x = real_input(spec.height, spec.width, 1, data_root)  # NCHW float: io_adapter feeds the artifact's layout
        name = artifact.path.name
        engines[name] = lambda run=run, x=x: run(x)
        paths[name] = artifact.path
    with torch.no_grad():
        times = round_robin_ms(engines, runs, warmup, on_round=lambda r: say(f"timing round {r + 1}/{runs}"))
    return {paths[name]: t for name, t in times.items()}
