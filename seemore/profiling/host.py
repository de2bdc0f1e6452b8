"""What profiling measures on this host: artifact program costs, per-op ETDump timings of the
host ``.pte`` files (the estimator's calibration) and end-to-end latencies (its validation)."""

from __future__ import annotations

import statistics
import tempfile
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


class TracedPte:
    """A host ``.pte`` loaded with ExecuTorch's event tracer: call it to run one inference on the
    spec's example input, then :meth:`events` reads the per-op times of every run so far."""

    def __init__(self, path: Path, contract: ArtifactContract) -> None:
        from executorch.runtime import Runtime

        from seemore.toolchain_logs import quiet_fd2

        self.path = Path(path)
        self.x = contract.spec.example_input()
        with quiet_fd2():
            self.program = Runtime.get().load_program(self.path, enable_etdump=True, debug_buffer_size=0)
            self.method = self.program.load_method("forward")

    def __call__(self) -> None:
        import torch

        with torch.no_grad():
            self.method.execute([self.x])

    def events(self, keep_etdump: Path | None = None) -> list[tuple[str, float]]:
        """(XNNPACK operator, median ms per inference) of the delegated ops; ``keep_etdump``: copy the file there."""
        from executorch.devtools import Inspector

        from seemore.toolchain_logs import quiet_fd2

        with quiet_fd2(), tempfile.TemporaryDirectory(prefix="seemore-etdump-") as scratch:
            etdump, debug = Path(scratch) / "run.etdp", Path(scratch) / "debug.bin"
            self.program.write_etdump_result_to_file(str(etdump), str(debug))
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
            raise ProfileError(f"{self.path.name}: the ETDump has no delegated operator events")
        return events


def etdump_timings(path: Path, contract: ArtifactContract, threads: int, runs: int,
                   keep_etdump: Path | None = None) -> tuple[list[tuple[str, float]], float]:
    """Per-op median times (ms) of the delegated operators of a host ``.pte`` and its median
    end-to-end time, from ``runs`` executions with ExecuTorch's event tracer after one untimed
    warm-up run. ``keep_etdump``: also copy the ETDump file there."""
    from seemore.common.timing import round_robin_ms
    from seemore.runtime.executorch import set_runtime_threads

    set_runtime_threads(threads)
    traced = TracedPte(path, contract)
    wall = round_robin_ms({"pte": traced}, runs, 1)["pte"]
    return traced.events(keep_etdump), statistics.median(wall)


def _artifact_engine(artifact: FoundArtifact) -> Callable[[], object]:
    """One inference of a host-runnable artifact on a real image, through its runtime's runner."""
    from seemore.export.calibration import real_input
    from seemore.parity.harness import io_adapter
    from seemore.paths import resolve_data_root
    from seemore.runtime import get_runner

    runner = get_runner(artifact.contract.spec.runtime)
    reason = "no runner" if runner is None else runner.available(artifact.path)
    if reason is not None:
        raise ProfileError(f"{artifact.path.name}: cannot run here ({reason})")
    spec = artifact.contract.spec
    run = io_adapter(runner.load(artifact.path), spec)
    x = real_input(spec.height, spec.width, 1, resolve_data_root(None))  # NCHW float: io_adapter feeds the layout
    return lambda: run(x)


def host_calibrations(artifacts: Mapping[tuple[str, str, str], FoundArtifact], threads: int, runs: int,
                      cpu: str, say: Callable[[str], None] = lambda _: None,
                      measure: Sequence[FoundArtifact] = ()) -> tuple[dict[str, Calibration], dict[Path, list[float]]]:
    """The estimator's host calibration per precision, from the ETDumps of the XNNPACK ``.pte``
    files under the root (:class:`ProfileError` naming the command when one is missing), and the
    end-to-end times (ms) of the ``measure`` artifacts.

    Everything runs in the same rounds, taking turns (:func:`seemore.common.timing.round_robin_ms`):
    the calibration and the latencies it is validated against see the same machine, however busy
    a shared host is. A traced ``.pte`` among ``measure`` is timed as it runs traced.
    """
    import torch

    from seemore.cli import apply_threads
    from seemore.common.timing import round_robin_ms
    from seemore.runtime.executorch import set_runtime_threads

    apply_threads(threads)
    set_runtime_threads(threads)
    traced: dict[str, tuple[FoundArtifact, TracedPte]] = {}
    for precision, key in CALIBRATION_ARTIFACTS.items():
        artifact = artifacts.get(key)
        if artifact is None:
            raise ProfileError(f"no host XNNPACK {precision} .pte to calibrate the estimator with: "
                               "run `python mobile/export_executorch.py` (or `bash run.sh pipeline`) first")
        traced[precision] = (artifact, TracedPte(artifact.path, artifact.contract))
    engines: dict[str, Callable[[], object]] = {a.path.name: t for a, t in traced.values()}
    for artifact in measure:
        if artifact.path.name not in engines:
            engines[artifact.path.name] = _artifact_engine(artifact)
    say(f"timing {len(engines)} artifacts side by side ({runs} rounds, the .pte files with ExecuTorch's event tracer)")
    with torch.no_grad():
        times = round_robin_ms(engines, runs, 1, on_round=lambda r: say(f"timing round {r + 1}/{runs}"))
    out = {}
    for precision, (artifact, program) in traced.items():
        source = f"ETDump of {artifact.path.name}, {runs} runs, {threads} threads, {cpu}"
        execute_ms = statistics.median(times[artifact.path.name])
        out[precision] = calibrate(program.events(), execute_ms, artifact_cost(artifact, precision), runs, source)
    return out, {a.path: times[a.path.name] for a in measure}
