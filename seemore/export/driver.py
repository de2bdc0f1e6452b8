"""The export driver: everything around a backend's lowering, done once for every backend.

Per target (:mod:`seemore.export.targets`):

1. the spec at the fixed input size, checked against the model;
2. the torch module to lower: the deploy form of the target's backend (Core ML's upsamples
   its context with matmuls, :data:`~seemore.deploy.form.CONTEXT_UPSAMPLE`), or for INT8 the
   saved program of *this*
   checkpoint, found by its SHA-256 (:func:`seemore.quantize.find_program`; a program of another
   checkpoint, size or quantizer is refused with the command that makes the right one), or PTQ
   on real training images when there is none (or with ``ptq``); the backend's reference
   adjustment is applied to a copy;
3. the backend's ``lower`` / ``serialize`` / ``structure`` (:class:`~seemore.export.base.Exporter`),
   written atomically;
4. the check: the artifact run once in its runtime on a real image against that same torch
   module, judged by the bound of its (backend, precision) (:mod:`seemore.parity.bounds`);
   artifacts this host cannot run get a torch FP16 simulation (FP16) or a note;
5. the contract beside the artifact. The INT8 program and a non-shipped source checkpoint are
   copied into the output folder, so the folder is complete wherever it is moved.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seemore.checkpoint import list_shipped
from seemore.common.files import atomic_write, atomic_write_dir, file_sha256
from seemore.common.tensors import psnr_db
from seemore.common.timing import median_ms
from seemore.config import SeemoReConfig
from seemore.contract import (
    ArtifactContract,
    ExportSpec,
    QuantizationRecord,
    contract_path,
    file_record,
    io_records,
    source_record,
    write_contract,
)
from seemore.deploy.capture import deploy_form
from seemore.export.base import ExportError
from seemore.export.calibration import real_input
from seemore.export.targets import Target, exporter_for
from seemore.parity.bounds import FAIL, spec_bound
from seemore.parity.harness import compare_outputs, io_adapter, reference_output
from seemore.quantize import (
    DEFAULT_PROGRAM_DIR,
    FoundProgram,
    adjust_reference,
    calibration_images,
    capture,
    check_program,
    find_program,
    load_program,
    qat_command,
    quantize_ptq,
    read_program,
    save_program,
)
from seemore.runtime import get_runner
from seemore.tiling import tiling_rule

ProgressFn = Callable[[str], None]


@dataclass
class ExportOptions:
    """How to export: size, layout, INT8 sourcing, checks. Defaults are the CLIs' defaults."""

    height: int = 180
    width: int = 320
    batch: int = 1
    layout: str = "NCHW"
    data_root: str | Path | None = None
    # INT8: this program (checked against the checkpoint), else one found in program_dirs, else PTQ.
    int8_program: Path | None = None
    ptq: bool = False
    program_dirs: Sequence[Path] = (DEFAULT_PROGRAM_DIR,)
    calibration_images: int | None = None
    verify: bool = True
    bench_runs: int = 0
    # Core ML: image-typed I/O, the minimum iOS version, further enumerated input sizes (H, W).
    io: str = "tensor"
    deployment_target: str = ""
    extra_sizes: Sequence[tuple[int, int]] = ()


def target_spec(target: Target, options: ExportOptions, scale: int) -> ExportSpec:
    """The spec ``target`` is exported at under ``options`` (the Core ML variants where they apply)."""
    variant: dict[str, Any] = {}
    if target.backend == "coreml" and options.deployment_target:
        variant["deployment_target"] = options.deployment_target
    if target.runtime == "coreml":
        variant["io"] = options.io
        if options.extra_sizes:
            default = (options.height, options.width)
            variant["sizes"] = (default, *[s for s in dict.fromkeys(options.extra_sizes) if s != default])
    return target.spec(options.height, options.width, scale, options.batch, options.layout, **variant)


def package_facts(config: SeemoReConfig, checkpoint_sha: str | None, quant: QuantizationRecord | None,
                  spec: ExportSpec) -> dict[str, str]:
    """The contract's key facts as strings, for artifacts that carry metadata of their own (Core ML)."""
    rule = tiling_rule(spec.height, spec.width)
    facts = {
        "model": config.name,
        "checkpoint_sha256": checkpoint_sha or "random weights",
        "contract": "<artifact name>.json beside the package (seemore-mobile/contract)",
        "tiling": json.dumps(rule, sort_keys=True),
        "input_range": "[0, 1] (8-bit value / 255)" if spec.io == "tensor" else "8-bit RGB image",
    }
    if quant is not None:
        facts["quantization"] = f"{quant.method} with {quant.quantizer} ({quant.scheme})"
    return facts


@dataclass
class ExportResult:
    """One written artifact: its contract, and the torch module it was lowered from (not serialised)."""

    target: Target
    path: Path
    contract_file: Path
    contract: ArtifactContract
    torch_model: nn.Module | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """Artifact file name."""
        return self.path.name

    @property
    def spec(self) -> ExportSpec:
        """The artifact's export spec."""
        return self.contract.spec

    @property
    def check(self) -> dict[str, Any]:
        """What the exporter measured (the contract's ``export_check``)."""
        return self.contract.export_check

    @property
    def failed(self) -> bool:
        """True when the artifact ran here and missed its bound."""
        return bool(self.check.get("ran")) and self.check.get("status") == FAIL


def artifact_name(config: SeemoReConfig, spec: ExportSpec, suffix: str) -> str:
    """File name of an artifact, e.g. ``seemore_t_x4_xnnpack_fp32_180x320.pte``."""
    return f"{config.name}_{spec.tag}{suffix}"


# --------------------------------------------------------------------------- sources


def place_checkpoint(checkpoint: Path | None, out_dir: Path) -> Path | None:
    """The source checkpoint as the contracts will name it: shipped ones where they are,
    others copied into ``out_dir`` (so the folder carries its own reference)."""
    if checkpoint is None:
        return None
    if any(p.resolve() == checkpoint.resolve() for p in list_shipped().values()):
        return checkpoint
    if checkpoint.resolve().parent == out_dir.resolve():
        return checkpoint
    sha = file_sha256(checkpoint)
    target = out_dir / checkpoint.name
    if target.is_file() and file_sha256(target) != sha:
        target = out_dir / f"{checkpoint.stem}-{sha[:12]}{checkpoint.suffix}"
    if not (target.is_file() and file_sha256(target) == sha):
        atomic_write(target, lambda tmp: shutil.copyfile(checkpoint, tmp))
    return target


def place_program(found: FoundProgram, out_dir: Path, checkpoint: Path | None, config: SeemoReConfig) -> Path:
    """The program inside ``out_dir`` (copied with a contract of its own when it lies elsewhere)."""
    if found.path.resolve().parent == out_dir.resolve():
        return found.path
    target = out_dir / found.path.name
    atomic_write(target, lambda tmp: shutil.copyfile(found.path, tmp))
    contract = copy.deepcopy(found.contract)
    contract.artifact = file_record(target, out_dir)
    contract.source = source_record(checkpoint, config, out_dir)
    write_contract(contract, contract_path(target))
    return target


def int8_program(
    deploy: nn.Module, target: Target, spec: ExportSpec, checkpoint: Path | None, out_dir: Path,
    options: ExportOptions, say: ProgressFn, placed: Callable[[], Path | None],
) -> tuple[Path, FoundProgram]:
    """The saved program an INT8 target is lowered from (see the module docstring), inside ``out_dir``.

    ``checkpoint`` is the user's file (its hash and the commands name it); ``placed()`` places it
    for the contracts (:func:`place_checkpoint`), called only once something is written.
    """
    assert target.quantizer is not None
    config: SeemoReConfig = deploy.config
    sha = file_sha256(checkpoint) if checkpoint is not None else None
    model_arg = str(checkpoint) if checkpoint is not None else config.name
    found: FoundProgram | None = None
    if options.int8_program is not None:
        found = read_program(options.int8_program)
        check_program(found, sha, spec, target.quantizer, model_arg)
        say(f"{spec.tag}: INT8 from {found.path.name} ({found.method.upper()})")
    elif not options.ptq:
        found, near = find_program([*options.program_dirs, out_dir], sha, spec, target.quantizer, config.name)
        if found is None and near:
            check_program(near[0], sha, spec, target.quantizer, model_arg)  # raises: another checkpoint's
        if found is not None:
            say(f"{spec.tag}: INT8 from {found.path} ({found.method.upper()}, made from this checkpoint)")
        else:
            print(f"note: no quantized program of this checkpoint at {spec.height}x{spec.width} for "
                  f"{target.quantizer} (`{qat_command(model_arg, spec, target.quantizer)}` makes one): "
                  "INT8 by post-training quantization on training images", file=sys.stderr)
    if found is None:
        images = calibration_images(config.scale, options.data_root, min_size=2 * config.min_input_size,
                                    limit=options.calibration_images)
        say(f"{spec.tag}: PTQ calibration on {len(images)} real training images")
        converted = quantize_ptq(capture(deploy, spec), target.quantizer, images, progress=False)
        recipe = {"calibration_images": len(images),
                  "calibration_data": "whole LR training images (<data root>/train, or bundled photos)"}
        program_spec = spec.with_(backend=target.quantizer, runtime="", io="tensor", sizes=(), deployment_target="")
        path, _ = save_program(converted, program_spec, out_dir, config, placed(), "ptq",
                               recipe)
        found = read_program(path)
    inside = place_program(found, out_dir, placed(), config)
    return inside, (found if inside == found.path else read_program(inside))


# --------------------------------------------------------------------------- checks


def fp16_simulation(model: nn.Module, spec: ExportSpec, data_root: str | Path | None = None,
                    max_size: tuple[int, int] = (64, 96)) -> dict[str, Any]:
    """The deploy model in torch fp16 on a real crop against fp32, judged by the FP16 bound.

    A host-side stand-in for FP16 artifacts this host cannot run: it catches fp16 overflow
    (non-finite outputs) and gives the size of fp16 rounding. The crop is at most ``max_size``
    because fp16 convolutions are slow on CPU; GPU shaders may accumulate differently, so this
    is an estimate, not the device's parity.
    """
    h, w = min(spec.height, max_size[0]), min(spec.width, max_size[1])
    x = real_input(h, w, 1, data_root)
    half = copy.deepcopy(model).half().eval()
    with torch.no_grad():
        want = model(x)
        got = half(x.half()).float()
    result = compare_outputs(got, want, spec_bound(spec))
    return {"crop": [h, w], **result}


def check_artifact(path: Path, spec: ExportSpec, reference: nn.Module, deploy: nn.Module, eager: nn.Module,
                   options: ExportOptions, say: ProgressFn) -> dict[str, Any]:
    """Run the written artifact once on a real image and compare with ``reference`` (see the module docstring)."""
    bound = spec_bound(spec)
    runner = get_runner(spec.runtime)
    reason = "no runner for this runtime" if runner is None else runner.available(path)
    if reason is not None:
        check: dict[str, Any] = {"ran": False, "status": "not run", "note": reason}
        if spec.precision == "fp16":
            say(f"{spec.tag}: fp16 simulation in torch")
            check["fp16_simulation"] = fp16_simulation(deploy, spec, options.data_root)
        return check
    assert runner is not None
    say(f"{spec.tag}: run it on a real image")
    x = real_input(spec.height, spec.width, 1, options.data_root)
    run = io_adapter(runner.load(path), spec)
    with torch.no_grad():
        want = reference_output(reference, spec)(x)
        floor = None
        if bound.floor_margin_db is not None:
            floor = psnr_db(reference(x.contiguous(memory_format=torch.channels_last)), want)
        got = run(x)
    check = {"ran": True, "image": "real photo crop (Set14/Set5 HR, or bundled photos)",
             "against": "its INT8 program" if bound.against == "program" else "eager FP32 deploy form",
             **compare_outputs(got, want, bound, floor)}
    evaluation = getattr(runner, "evaluation", None)
    if evaluation:  # a reference evaluation of the file (Core ML on Linux), not the vendor runtime
        check["evaluated_by"] = evaluation
    if spec.precision == "int8":
        with torch.no_grad():
            floating = deploy(x)
        # The quantization error of the artifact and of its program (equal when lowering is faithful).
        check["psnr_vs_float_db"] = psnr_db(got, floating)
        check["torch_model_psnr_vs_float_db"] = psnr_db(want, floating)
    if options.bench_runs > 0:
        say(f"{spec.tag}: timing {options.bench_runs} runs")
        check["threads"] = torch.get_num_threads()
        with torch.no_grad():
            check["artifact_median_ms"] = median_ms(lambda: run(x), options.bench_runs)
            check["eager_fp32_median_ms"] = median_ms(lambda: eager(x), options.bench_runs)
    return check


# --------------------------------------------------------------------------- driver


def export_targets(
    model: nn.Module,
    targets: Sequence[Target],
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    options: ExportOptions | None = None,
    progress: ProgressFn | None = None,
) -> list[ExportResult]:
    """Export ``model`` (a reference SeemoRe) for every target into ``out_dir``; see the module docstring.

    ``checkpoint`` is the file the weights came from (recorded by SHA-256; ``None`` for random
    weights, which cannot be checked later). Raises :class:`ExportError` /
    :class:`~seemore.quantize.QuantizeError` (one line) when a target cannot be made.
    """
    options = options or ExportOptions()
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    eager = model.eval()
    config: SeemoReConfig = model.config
    forms: dict[str, nn.Module] = {}  # the deploy form of each backend (Core ML's differs), built once
    user_checkpoint = Path(checkpoint) if checkpoint is not None else None
    cache: list[Path | None] = []

    def placed() -> Path | None:
        # Copied into out_dir on the first write only: a refused export leaves nothing behind.
        if not cache:
            cache.append(place_checkpoint(user_checkpoint, out_dir))
        return cache[0]

    results: list[ExportResult] = []
    for target in targets:
        spec = target_spec(target, options, config.scale)
        if spec.backend not in forms:
            forms[spec.backend] = deploy_form(model, spec.backend).eval()
        deploy = forms[spec.backend]
        spec.check_model(deploy)
        spec_bound(spec)  # a target without a parity bound is not exported
        exporter = exporter_for(target.runtime)
        missing = exporter.available()
        if missing is not None:
            raise ExportError(f"{target.name}: {missing}")
        reference: nn.Module = deploy
        quant: QuantizationRecord | None = None
        if spec.precision == "int8":
            program_path, found = int8_program(deploy, target, spec, user_checkpoint, out_dir, options, say, placed)
            assert found.contract.quantization is not None
            reference = adjust_reference(load_program(program_path), target.reference_adjustment)
            made = found.contract.quantization
            quant = QuantizationRecord(
                method=made.method, quantizer=made.quantizer, scheme=made.scheme, float_modules=made.float_modules,
                program=file_record(program_path, out_dir), reference_adjustment=target.reference_adjustment,
                recipe=made.recipe,
            )
        say(f"{spec.tag}: capture + lower")
        lowered = exporter.lower(reference, spec)
        annotate = getattr(exporter, "annotate", None)
        if annotate is not None:  # exporters whose files carry metadata (Core ML)
            sha = file_sha256(user_checkpoint) if user_checkpoint is not None else None
            annotate(lowered, spec, package_facts(config, sha, quant, spec))
        path = out_dir / artifact_name(config, spec, exporter.suffix)
        say(f"{spec.tag}: serialise")
        if exporter.directory:
            atomic_write_dir(path, lambda tmp: exporter.serialize(lowered, tmp))
        else:
            atomic_write(path, lambda tmp: exporter.serialize(lowered, Path(tmp)))
        structure = exporter.structure(lowered, path)
        check = (check_artifact(path, spec, reference, deploy, eager, options, say) if options.verify
                 else {"ran": False, "status": "not run", "note": "not checked (--no-check)"})
        inputs, outputs = io_records(spec)
        contract = ArtifactContract(
            kind="runtime", spec=spec, artifact=file_record(path, out_dir), inputs=inputs, outputs=outputs,
            tiling=tiling_rule(spec.height, spec.width), source=source_record(placed(), config, out_dir),
            quantization=quant, structure=structure, export_check=check,
        )
        side = write_contract(contract, contract_path(path))
        results.append(ExportResult(target, path, side, contract, torch_model=reference))
        say(f"{spec.tag}: wrote {path}")
    return results

