"""One parity harness for every artifact: run it in its own runtime, compare it with PyTorch.

Artifacts are found by their contracts (:func:`seemore.contract.discover`). For each one the
runner of its runtime (:func:`seemore.runtime.get_runner`) checks the file's structure against
the contract, runs it on the benchmark LR images (Set5 and Set14 at the artifact's scale) and
the harness compares it with its torch reference under the bound of its (backend, precision)
(:mod:`seemore.parity.bounds`):

* float artifacts vs the eager reference model of the source checkpoint (found by SHA-256);
* INT8 artifacts vs the fake-quantized program the contract names (hash-checked), with the
  reference adjustment the contract records; the program's own channels-last self-parity is
  measured alongside;
* plus the task metrics (Y-channel PSNR/SSIM against HR, crop = scale) of the artifact.

Images of any size go through the one tiling plan of fixed-shape artifacts
(:func:`seemore.tiling.run_fixed_tiles`, the rule the contract gives the apps); torch reference
and artifact get the very same tiles, so the parity number measures the runtime, not the
tiling. Task metrics therefore include the padding and per-tile routing and can differ slightly
from whole-image evaluation (:mod:`seemore.evaluate`).

Nothing here is specific to one runtime. A contract that cannot be read, an artifact that
changed, a missing reference or bound are failed rows, never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seemore.checkpoint import CheckpointError, load_model
from seemore.common.files import atomic_write_text
from seemore.common.progress import progress
from seemore.common.tensors import image_to_tensor, max_abs, psnr_db, tensor_to_image
from seemore.contract import ArtifactContract, ContractError, ExportSpec, FoundContract, discover
from seemore.contract.schema import jsonable, now_utc, tool_versions
from seemore.contract.store import artifact_path, check_file, find_source_checkpoint
from seemore.parity.bounds import AT_FLOOR, FAIL, PASS, BoundError, ParityBound, judge, spec_bound, worst
from seemore.paths import DataError
from seemore.runtime import RunFn, RuntimeUnavailable, get_runner
from seemore.tiling import run_fixed_tiles

DEFAULT_ROOT = Path("artifacts")
DEFAULT_SETS: tuple[str, ...] = ("Set5", "Set14")
NOT_RUN, SKIPPED, ERROR = "not run", "skipped", "error"


class ParityError(RuntimeError):
    """An artifact cannot be checked (missing reference, bad contract); one-line message."""


@dataclass
class ParityResult:
    """What the harness found about one artifact."""

    artifact: str
    backend: str
    precision: str
    status: str  # pass, at floor, FAIL, not run, skipped, error
    runtime: str = "?"
    ran: bool = False
    against: str | None = None
    parity_min_db: float | None = None
    parity_mean_db: float | None = None
    max_abs: float | None = None
    bound_db: float | None = None
    # PSNR of the torch reference against itself run with a different (exactly equivalent)
    # memory layout: how reproducible the reference is under fp32 rounding (INT8 only).
    reference_floor_db: float | None = None
    task: dict[str, dict[str, float]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """True when a bound or a check failed, or the artifact could not be checked."""
        return self.status in (FAIL, ERROR)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (also what goes into the contract's ``parity``)."""

        def rounded(x: float | None) -> float | None:
            # Non-finite values stay (jsonable writes them as "inf"/"nan"): a bit-exact match is a result.
            return None if x is None else round(x, 4) if math.isfinite(x) else x

        return jsonable({
            "artifact": self.artifact,
            "backend": self.backend,
            "precision": self.precision,
            "runtime": self.runtime,
            "status": self.status,
            "ran": self.ran,
            "against": self.against,
            "parity_min_psnr_db": rounded(self.parity_min_db),
            "parity_mean_psnr_db": rounded(self.parity_mean_db),
            "max_abs": self.max_abs,
            "bound_db": self.bound_db,
            "reference_self_parity_min_psnr_db": rounded(self.reference_floor_db),
            "task": self.task,
            "checks": self.checks,
            "notes": self.notes,
        })


def eight_bit(x: Tensor) -> Tensor:
    """``x`` (nominally [0, 1]) as an 8-bit image would hold it: clamped and rounded to levels of 1/255."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def io_adapter(run: RunFn, spec: ExportSpec) -> RunFn:
    """Wrap a runner of the artifact's native I/O (layout, dtype, batch) into NCHW float32 batch-1 I/O.

    A batch-``n`` artifact gets the image ``n`` times and returns the first output. An image-I/O
    artifact (Core ML image types) takes 8-bit pixel values (0..255) and returns them: the
    adapter hands it the image's levels and gives back its output as an 8-bit image in [0, 1].
    """
    if spec.io == "image":

        def adapted_image(x: Tensor) -> Tensor:
            y = run(torch.round(x.clamp(0.0, 1.0) * 255.0).float().contiguous())
            return eight_bit(y.float() / 255.0)

        return adapted_image

    def adapted(x: Tensor) -> Tensor:
        if spec.batch > 1:
            x = x.expand(spec.batch, -1, -1, -1)
        if spec.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        y = run(x.to(spec.torch_io_dtype).contiguous())
        if spec.layout == "NHWC":
            y = y.permute(0, 3, 1, 2)
        return y[:1].float()

    return adapted


def reference_output(model: nn.Module | RunFn, spec: ExportSpec) -> RunFn:
    """``model`` as an artifact of ``spec`` is judged against it: an image-I/O artifact's reference
    is the output rounded to 8 bits, which is all an image can hold."""
    if spec.io == "image":
        return lambda x: eight_bit(model(x))
    return model


def compare_outputs(got: Tensor, want: Tensor, bound: ParityBound, floor_db: float | None = None) -> dict[str, Any]:
    """One comparison of an artifact's output with its reference's, judged against ``bound``."""
    if got.shape != want.shape:
        raise ParityError(f"artifact output shape {tuple(got.shape)} != torch output {tuple(want.shape)}")
    finite = bool(torch.isfinite(got).all())
    value = psnr_db(got, want) if finite else math.nan
    levels = max_abs(got, want) * 255.0 if finite and bound.max_levels is not None else None
    status = judge(bound, value, floor_db, levels)
    out: dict[str, Any] = {
        "psnr_db": value,
        "max_abs": max_abs(got, want) if finite else None,
        "finite": finite,
        "min_psnr_db": bound.min_db,
        "status": status,
        "passed": status != FAIL,
    }
    if floor_db is not None:
        out["reference_self_psnr_db"] = floor_db
    if levels is not None:
        out["max_levels"] = round(levels, 3)
    return out


def structure_problems(contract: ArtifactContract, found: dict[str, Any]) -> list[str]:
    """Where the artifact file's structure disagrees with its contract (empty when it agrees)."""
    problems: list[str] = []
    spec = contract.spec
    foreign = [d for d in found.get("delegates", []) if d != spec.backend]
    if foreign:
        problems.append(f"delegates {foreign} are not {spec.backend}")
    if "partitions" in found and found["partitions"] == 0:
        problems.append("no delegate: nothing runs on the backend")
    for key, tensor in (("input_shape", contract.inputs[0]), ("output_shape", contract.outputs[0])):
        if key in found and list(found[key]) != list(tensor.shape):
            problems.append(f"{key.replace('_', ' ')} {found[key]} differs from the contract's {tensor.shape}")
    recorded = contract.structure
    for key in ("partitions", "ops_outside"):
        if key in recorded and key in found and recorded[key] != found[key]:
            problems.append(f"{key}: the file has {found[key]}, the contract says {recorded[key]}")
    return problems


@dataclass
class Harness:
    """Shared state of one parity run: data, sets, and the references already built."""

    data_root: str | Path | None = None
    sets: Sequence[str] = DEFAULT_SETS
    progress: bool = True
    # Count "at floor" INT8 results as failures.
    strict: bool = False
    _references: dict[str, tuple[nn.Module, str]] = field(default_factory=dict)
    _images: dict[int, list[tuple[str, str, np.ndarray, np.ndarray]]] = field(default_factory=dict)

    def images(self, scale: int) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
        """(set, image name, LR uint8, HR uint8) of every benchmark image at ``scale``."""
        if scale not in self._images:
            from seemore.benchmark import load_named_benchmark

            out = []
            for name in self.sets:
                display, images = load_named_benchmark(name, scale, self.data_root)
                out.extend((display, img.name, img.lr, img.hr) for img in images)
            self._images[scale] = out
        return self._images[scale]

    def reference(self, contract_file: Path, contract: ArtifactContract) -> tuple[nn.Module, str]:
        """The torch model an artifact must match (cached per source), and a description of it."""
        bound = spec_bound(contract.spec)
        if bound.against == "program":
            quant = contract.quantization
            if quant is None or quant.program is None:
                raise ParityError("the contract names no quantized program to compare with")
            key = f"program:{quant.program.sha256}:{quant.reference_adjustment}"
            if key not in self._references:
                from seemore.quantize import adjust_reference, load_program

                try:
                    path = check_file(contract_file, quant.program, "quantized program")
                except ContractError as exc:
                    raise ParityError(str(exc)) from None
                adjusted = adjust_reference(load_program(path), quant.reference_adjustment)
                label = f"fake-quant program {path.name}" + (
                    f" ({quant.reference_adjustment})" if quant.reference_adjustment else "")
                self._references[key] = (adjusted, label)
            return self._references[key]
        key = f"source:{contract.source.sha256}"
        if key not in self._references:
            try:
                path = find_source_checkpoint(contract_file, contract)
                model = load_model(path).eval()
            except (ContractError, CheckpointError) as exc:
                raise ParityError(str(exc)) from None
            self._references[key] = (model, f"eager PyTorch reference ({path.name})")
        return self._references[key]

    def compare(self, contract_file: Path, contract: ArtifactContract, result: ParityResult, run: RunFn) -> None:
        """Run ``run`` (the artifact, NCHW float I/O) and its torch reference on every image; fill ``result``."""
        from seemore.metrics import sr_metrics

        spec = contract.spec
        bound = spec_bound(spec)
        torch_model, against = self.reference(contract_file, contract)
        model = reference_output(torch_model, spec)
        result.ran, result.against, result.bound_db = True, against, bound.min_db
        per_image: list[float] = []
        floor: list[float] = []
        worst_abs = 0.0
        scores: dict[str, list[tuple[float, float]]] = {}
        images = self.images(spec.scale)
        # INT8: the reference re-run on channels-last input: the same arithmetic in another
        # summation order, which bounds the parity any runtime can reach against it.
        measure_floor = bound.floor_margin_db is not None
        tile = (spec.height, spec.width)
        bar = progress(images, desc=result.artifact, unit="img", enabled=self.progress, leave=False)
        with torch.no_grad():
            for set_name, _name, lr, hr in bar:
                x = image_to_tensor(lr)
                got = run_fixed_tiles(run, x, *tile, spec.scale)
                want = run_fixed_tiles(model, x, *tile, spec.scale)
                finite = bool(torch.isfinite(got).all())
                per_image.append(psnr_db(got, want) if finite else math.nan)
                if measure_floor:
                    again = run_fixed_tiles(lambda t: torch_model(t.contiguous(memory_format=torch.channels_last)),
                                            x, *tile, spec.scale)
                    floor.append(psnr_db(again, want))
                if finite:
                    worst_abs = max(worst_abs, max_abs(got, want))
                scores.setdefault(set_name, []).append(sr_metrics(tensor_to_image(got), hr, spec.scale))
        result.reference_floor_db = min(floor) if floor else None
        result.parity_min_db = math.nan if any(math.isnan(p) for p in per_image) else min(per_image)
        result.parity_mean_db = float(np.mean([min(p, 200.0) for p in per_image]))
        result.max_abs = worst_abs
        result.task = {
            s: {"psnr": round(float(np.mean([p for p, _ in v])), 4), "ssim": round(float(np.mean([q for _, q in v])), 5)}
            for s, v in scores.items()
        }
        result.checks["images"] = len(images)
        result.checks["tiling"] = f"{spec.height}x{spec.width} tiles (the contract's rule)"
        floors: list[float | None] = list(floor) if floor else [None] * len(per_image)
        levels = worst_abs * 255.0 if bound.max_levels is not None else None
        result.status = worst([judge(bound, p, f, levels) for p, f in zip(per_image, floors)])
        if levels is not None:
            result.checks["max_levels"] = round(levels, 3)
        result.checks["per_image_parity_db"] = [round(min(p, 999.0), 2) for p in per_image]
        if floor:
            result.checks["per_image_reference_self_db"] = [round(min(f, 999.0), 2) for f in floor]
        if result.status == AT_FLOOR and self.strict:
            result.status = FAIL
        if result.status != PASS:
            shown = "NaN/inf output" if math.isnan(result.parity_min_db) else f"{result.parity_min_db:.1f} dB"
            result.notes.append(f"parity {shown} < {bound.min_db:.0f} dB on the worst image")
        if result.reference_floor_db is not None and result.status != PASS:
            result.notes.append(
                f"the torch reference reproduces itself only to {result.reference_floor_db:.1f} dB when run on "
                "channels-last input (same arithmetic, other fp32 rounding): int8 rounding amplifies 1-ulp "
                f"differences; 'at floor' = within {bound.floor_margin_db:.1f} dB of that on every image below "
                f"{bound.min_db:.0f} dB, the target not met"
            )

    def compare_native(self, found: FoundContract, contract: ArtifactContract, result: ParityResult, runner: Any,
                       path: Path) -> None:
        """Runtimes whose default runner is a reference evaluation of the file (Core ML on Linux:
        its MIL program) also run the vendor runtime itself where the host has it, under the same
        bound; each such run is a row of ``checks["native"]`` and the worst status counts."""
        native_runs = getattr(runner, "native_runs", None)
        if native_runs is None:
            return
        runs, reason = native_runs(path)
        result.checks["evaluated_by"] = getattr(runner, "evaluation", "the runtime")
        if reason is not None:
            result.notes.append(f"{reason}: the {contract.spec.runtime} runtime itself did not run here")
        rows: dict[str, Any] = {}
        for label, run in runs.items():
            sub = ParityResult(result.artifact, result.backend, result.precision, PASS, runtime=result.runtime)
            self.compare(found.path, contract, sub, io_adapter(run, contract.spec))
            rows[label] = {"status": sub.status, "parity_min_psnr_db": sub.parity_min_db, "max_abs": sub.max_abs}
            result.status = worst([result.status, sub.status])
        result.checks["native"] = rows

    def check(self, found: FoundContract) -> ParityResult:
        """Check one discovered artifact; anything that goes wrong becomes a failed row."""
        if found.contract is None:
            return ParityResult(found.name, "?", "?", ERROR, notes=[found.error or "unreadable contract"])
        contract = found.contract
        spec = contract.spec
        result = ParityResult(found.name, spec.backend, spec.precision, PASS, runtime=spec.runtime)
        if contract.kind != "runtime":
            result.status = SKIPPED
            result.notes.append("PT2E quantized torch program (an exporter input: the reference of its INT8 artifacts)")
            return result
        try:
            check_file(found.path, contract.artifact, "artifact")
        except ContractError as exc:
            result.status = FAIL if "changed since export" in str(exc) else ERROR
            result.notes.append(str(exc))
            return result
        try:
            spec_bound(spec)
            runner = get_runner(spec.runtime)
            if runner is None:
                result.status = SKIPPED
                result.notes.append(f"no runner registered for the {spec.runtime} runtime")
                return result
            path = artifact_path(found.path, contract)
            missing = runner.available(None)
            if missing is not None:
                result.status = NOT_RUN
                result.notes.append(f"not run: {missing}")
                return result
            structure = runner.structure(path)
            result.checks["structure"] = structure
            problems = structure_problems(contract, structure)
            if problems:
                result.status = FAIL
                result.notes.extend(problems)
                return result
            reason = runner.available(path)
            if reason is not None:
                result.status = NOT_RUN
                result.notes.append(f"not run: {reason} (structure checked against the contract)")
                return result
            self.compare(found.path, contract, result, io_adapter(runner.load(path), spec))
            self.compare_native(found, contract, result, runner, path)
            return result
        except (ParityError, BoundError, ContractError, CheckpointError, DataError, RuntimeUnavailable) as exc:
            result.status = ERROR
            result.notes.append(" ".join(str(exc).split()))
            return result
        except Exception as exc:  # a runtime failure (a file that does not load) is a result, not a crash
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            result.status = ERROR
            result.notes.append(f"{type(exc).__name__}: {first}")
            return result


def write_back(found: FoundContract, result: ParityResult) -> None:
    """Store ``result`` in the artifact's contract under ``parity`` (atomically)."""
    assert found.contract is not None
    found.contract.parity = {
        **result.to_dict(),
        "checked_at": now_utc(),
        "harness": "seemore.parity",
        "tools": tool_versions(),
    }
    atomic_write_text(found.path, found.contract.to_json())


def run_parity(
    root: str | Path = DEFAULT_ROOT,
    data_root: str | Path | None = None,
    sets: Sequence[str] = DEFAULT_SETS,
    write: bool = True,
    progress: bool = True,
    strict: bool = False,
    on_result: Callable[[ParityResult], None] | None = None,
) -> list[ParityResult]:
    """Discover and check every artifact under ``root``; optionally write results back.

    ``strict`` makes an INT8 result "at floor" a failure (the bound taken literally).
    """
    harness = Harness(data_root, tuple(sets), progress, strict)
    results = []
    for found in discover(root):
        result = harness.check(found)
        results.append(result)
        if write and found.contract is not None and result.status not in (SKIPPED, ERROR):
            write_back(found, result)
        if on_result is not None:
            on_result(result)
    return results


def results_json(root: str | Path, sets: Sequence[str], results: Sequence[ParityResult]) -> dict[str, Any]:
    """The ``--json`` document of a parity run."""
    return {"root": str(root), "sets": list(sets), "results": [r.to_dict() for r in results]}
