"""Saved INT8 programs: the ``convert_pt2e`` output that exporters lower INT8 artifacts from.

A program is written with ``torch.export.save`` at the artifact's fixed input size (batch
dynamic) and with a contract of kind ``quantized-program``: the SHA-256 and config of the
checkpoint it was quantized from, the quantizer (backend), the method (PTQ/QAT) and the recipe.
Exporters find programs by that contract, never by file name (:func:`find_program`): a program
made from another checkpoint, at another size or with another backend's quantizer is refused
with the command that makes the right one (:func:`check_program`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.export import Dim

from seemore.common.files import atomic_write_bytes
from seemore.config import SeemoReConfig
from seemore.contract import (
    ArtifactContract,
    ContractError,
    ExportSpec,
    QuantizationRecord,
    contract_path,
    discover,
    file_record,
    io_records,
    source_record,
    write_contract,
)
from seemore.contract.store import check_file
from seemore.quantize.quantizers import QuantizeError, float_module_names, quantizer_description
from seemore.tiling import tiling_rule

PROGRAM_KIND = "quantized-program"
PROGRAM_SUFFIX = ".pt2"
DEFAULT_PROGRAM_DIR = Path("artifacts") / "quantization"
# Largest batch a saved program accepts (its batch dimension stays dynamic).
MAX_PROGRAM_BATCH = 64


def program_name(config: SeemoReConfig, spec: ExportSpec, method: str) -> str:
    """File name of a saved program, e.g. ``seemore_t_x4_xnnpack_int8_qat_180x320.pt2``."""
    return f"{config.name}_{spec.backend}_int8_{method}_{spec.height}x{spec.width}{PROGRAM_SUFFIX}"


def program_bytes(converted: torch.fx.GraphModule, spec: ExportSpec) -> bytes:
    """``torch.export.save`` bytes of ``converted`` at ``spec``'s fixed height and width.

    The batch dimension stays dynamic (example batch 2: with batch 1 export would fix it), so
    one program serves artifacts of any fixed batch.
    """
    example = torch.full((2, 3, spec.height, spec.width), 0.5)
    with torch.no_grad():
        program = torch.export.export(
            converted, (example,), dynamic_shapes=({0: Dim("batch", min=1, max=MAX_PROGRAM_BATCH)},), strict=False
        )
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


def save_program(
    converted: torch.fx.GraphModule,
    spec: ExportSpec,
    out_dir: str | Path,
    config: SeemoReConfig,
    checkpoint: str | Path | None,
    method: str,
    recipe: dict[str, Any],
) -> tuple[Path, Path]:
    """Write the program and its contract (both atomically); returns both paths.

    ``spec.backend`` names the quantizer the program was made with.
    """
    spec = spec.with_(precision="int8", batch=1, layout="NCHW", io_dtype="float32", runtime="")
    path = Path(out_dir) / program_name(config, spec, method)
    atomic_write_bytes(path, program_bytes(converted, spec))
    inputs, outputs = io_records(spec)
    contract = ArtifactContract(
        kind=PROGRAM_KIND,
        spec=spec,
        artifact=file_record(path, path.parent),
        inputs=inputs,
        outputs=outputs,
        tiling=tiling_rule(spec.height, spec.width),
        source=source_record(checkpoint, config, path.parent),
        quantization=QuantizationRecord(
            method=method,
            quantizer=spec.backend,
            scheme=quantizer_description(spec.backend),
            float_modules=float_module_names(),
            recipe=recipe,
        ),
        structure={"note": f"not lowered: a PT2E quantized torch program, batch dynamic (1..{MAX_PROGRAM_BATCH})"},
    )
    side = write_contract(contract, contract_path(path))
    return path, side


def load_program(path: str | Path) -> torch.fx.GraphModule:
    """A saved quantized program as a runnable module (fixed height and width, any batch).

    ``torchao`` is imported first: it registers the ``quantized_decomposed`` operators the
    program refers to, without which ``torch.export.load`` cannot resolve them.
    """
    import torchao  # noqa: F401  (registers quantized_decomposed ops)

    try:
        return torch.export.load(str(path)).module()
    except Exception as exc:  # torch.export.load raises several unrelated types
        raise QuantizeError(f"{path}: not a saved torch.export program ({type(exc).__name__})") from None


@dataclass
class FoundProgram:
    """A saved program and its contract."""

    path: Path
    contract_file: Path
    contract: ArtifactContract

    @property
    def method(self) -> str:
        """``ptq`` or ``qat``."""
        assert self.contract.quantization is not None
        return self.contract.quantization.method


def qat_command(model: str, spec: ExportSpec, quantizer: str) -> str:
    """The command that makes the program an INT8 export of ``model`` at ``spec`` needs."""
    return f"python quantization/qat.py --model {model} --backend {quantizer} --size {spec.height}x{spec.width}"


def check_program(found: FoundProgram, checkpoint_sha: str | None, spec: ExportSpec, quantizer: str,
                  model: str) -> None:
    """:class:`QuantizeError` (one line, with the command that makes the right program) on any mismatch."""
    c = found.contract
    remedy = f"run `{qat_command(model, spec, quantizer)}` (or export with --ptq)"
    if c.kind != PROGRAM_KIND or c.quantization is None:
        raise QuantizeError(f"{found.path.name} is not a quantized program (contract kind {c.kind}); {remedy}")
    if checkpoint_sha is None or c.source.sha256 != checkpoint_sha:
        theirs = (c.source.sha256 or "random weights")[:12]
        ours = (checkpoint_sha or "random weights")[:12]
        raise QuantizeError(f"{found.path.name} was quantized from another checkpoint (sha256 {theirs}..., not "
                            f"{model}'s {ours}...); {remedy}")
    if c.quantization.quantizer != quantizer:
        raise QuantizeError(f"{found.path.name} was made with the {c.quantization.quantizer} quantizer, but this "
                            f"target needs {quantizer}'s; {remedy}")
    if (c.spec.height, c.spec.width) != (spec.height, spec.width):
        raise QuantizeError(f"{found.path.name} is for {c.spec.height}x{c.spec.width} inputs, not "
                            f"{spec.height}x{spec.width}; {remedy}")
    if c.spec.scale != spec.scale:
        raise QuantizeError(f"{found.path.name} is a x{c.spec.scale} program, not x{spec.scale}; {remedy}")
    try:
        check_file(found.contract_file, c.artifact, "program")
    except ContractError as exc:
        raise QuantizeError(f"{exc}; {remedy}") from None


def read_program(path: str | Path) -> FoundProgram:
    """A program file and its contract (beside it); :class:`QuantizeError` when either is missing or bad."""
    from seemore.contract import read_contract

    path = Path(path)
    if not path.is_file():
        raise QuantizeError(f"{path}: no such program file")
    side = contract_path(path)
    if not side.is_file():
        raise QuantizeError(f"{path}: no contract {side.name} beside it (save programs with quantization/qat.py)")
    try:
        return FoundProgram(path, side, read_contract(side))
    except ContractError as exc:
        raise QuantizeError(str(exc)) from None


def find_program(
    folders: list[Path], checkpoint_sha: str | None, spec: ExportSpec, quantizer: str, model_name: str
) -> tuple[FoundProgram | None, list[FoundProgram]]:
    """The best saved program for an INT8 export, and the programs that nearly match.

    A match has this checkpoint's SHA-256, ``quantizer``, the spec's height, width and scale,
    and an unchanged file; QAT is preferred over PTQ, then the newest. *Near misses* are
    programs of the same model name, size and quantizer made from another checkpoint: the
    silent mistake this lookup exists to prevent.
    """
    matches: list[FoundProgram] = []
    near: list[FoundProgram] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for found in discover(folder):
            c = found.contract
            if c is None or c.kind != PROGRAM_KIND or c.quantization is None:
                continue
            program = FoundProgram(found.path.parent / c.artifact.path, found.path, c)
            same_shape = (c.spec.height, c.spec.width, c.spec.scale) == (spec.height, spec.width, spec.scale)
            if not same_shape or c.quantization.quantizer != quantizer:
                continue
            if c.source.sha256 == checkpoint_sha and checkpoint_sha is not None:
                try:
                    check_file(found.path, c.artifact, "program")
                except ContractError:
                    continue
                matches.append(program)
            elif c.source.model == model_name:
                near.append(program)
    matches.sort(key=lambda p: (p.method == "qat", p.contract.created), reverse=True)
    return (matches[0] if matches else None), near
