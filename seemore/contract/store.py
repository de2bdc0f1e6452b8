"""Writing, reading and finding contracts; resolving the paths inside them.

A contract lies beside its artifact as ``<artifact name>.json`` (``model.pte.json``,
``model.mlpackage.json``). Paths inside it are relative to the contract's folder, so a folder
of artifacts can be moved or copied anywhere (a Mac for Core ML, a device host) and stays
checkable: :func:`resolve` turns them back into paths, and :func:`find_source_checkpoint` finds
the source checkpoint beside the contract, at its recorded relative path, or among the shipped
checkpoints, always by SHA-256.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from seemore.common.files import atomic_write_text, file_sha256, path_bytes, path_sha256
from seemore.contract.schema import (
    CONTRACT_FORMAT,
    LEGACY_FORMAT,
    ArtifactContract,
    ContractError,
    FileRecord,
    SourceRecord,
)

CONTRACT_SUFFIX = ".json"


def contract_path(artifact: str | Path) -> Path:
    """Where the contract of ``artifact`` lives: ``model.pte`` -> ``model.pte.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + CONTRACT_SUFFIX)


def relative_to(path: str | Path, folder: str | Path) -> str:
    """``path`` relative to ``folder`` in POSIX form (``..`` where needed)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()


def file_record(path: str | Path, folder: str | Path) -> FileRecord:
    """A :class:`FileRecord` of a file or directory artifact, its path relative to ``folder``."""
    path = Path(path)
    return FileRecord(relative_to(path, folder), "directory" if path.is_dir() else "file",
                      path_bytes(path), path_sha256(path))


def write_contract(contract: ArtifactContract, path: str | Path) -> Path:
    """Validate and write ``contract`` to ``path`` atomically; returns the path."""
    contract.validate()
    atomic_write_text(path, contract.to_json())
    return Path(path)


def read_contract(path: str | Path) -> ArtifactContract:
    """Read and validate a contract file; :class:`ContractError` (one line, names the file) otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContractError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ContractError(f"{path}: not UTF-8 text") from None
    try:
        return ArtifactContract.from_json(text)
    except ContractError as exc:
        raise ContractError(f"{path.name}: {exc}") from None


def resolve(contract_file: str | Path, relative: str) -> Path:
    """A path recorded in a contract, made absolute against the contract's folder."""
    return Path(contract_file).parent / relative


def artifact_path(contract_file: str | Path, contract: ArtifactContract) -> Path:
    """The artifact a contract describes."""
    return resolve(contract_file, contract.artifact.path)


def check_file(contract_file: str | Path, record: FileRecord, what: str) -> Path:
    """The path of ``record``, checked to exist and to have the recorded hash; :class:`ContractError` otherwise."""
    path = resolve(contract_file, record.path)
    if not path.exists():
        raise ContractError(f"{what} {record.path} not found next to {Path(contract_file).name}")
    if (record.kind == "directory") != path.is_dir():
        raise ContractError(f"{what} {record.path} should be a {record.kind}")
    if path_sha256(path) != record.sha256:
        raise ContractError(f"{what} {record.path} changed since export (SHA-256 differs from the contract)")
    return path


def find_source_checkpoint(contract_file: str | Path, contract: ArtifactContract) -> Path:
    """The source checkpoint of a contract, found by SHA-256 (see the module docstring)."""
    from seemore.checkpoint import list_shipped

    source = contract.source
    if source.sha256 is None:
        raise ContractError("the contract names no source checkpoint (random weights); nothing to compare with")
    candidates: list[Path] = []
    if source.checkpoint is not None:
        candidates.append(resolve(contract_file, source.checkpoint))
        candidates.append(Path(contract_file).parent / Path(source.checkpoint).name)
    if source.shipped is not None and source.shipped in list_shipped():
        candidates.append(list_shipped()[source.shipped])
    candidates.extend(list_shipped().values())
    seen: set[Path] = set()
    for path in candidates:
        key = path.resolve() if path.exists() else path
        if key in seen or not path.is_file():
            continue
        seen.add(key)
        if file_sha256(path) == source.sha256:
            return path
    where = source.checkpoint or source.shipped or "?"
    raise ContractError(
        f"source checkpoint {where} (sha256 {source.sha256[:12]}...) not found: put it beside the contract"
    )


@dataclass
class FoundContract:
    """A contract file found by :func:`discover`: the contract, or why it could not be read."""

    path: Path
    contract: ArtifactContract | None
    error: str | None = None

    @property
    def name(self) -> str:
        """The artifact's file name (from the contract, or from the contract's own name)."""
        if self.contract is not None:
            return Path(self.contract.artifact.path).name
        return self.path.name.removesuffix(CONTRACT_SUFFIX)


def _looks_like_ours(path: Path, data: object) -> bool:
    if isinstance(data, dict) and data.get("format") in (CONTRACT_FORMAT, LEGACY_FORMAT):
        return True
    # A JSON beside a file of its name is meant as a contract, even when it is not one.
    return Path(str(path).removesuffix(CONTRACT_SUFFIX)).exists()


def discover(root: str | Path) -> list[FoundContract]:
    """Every contract under ``root`` (recursively), sorted by path.

    A JSON file that is ours (our format, or named after a file beside it) but cannot be read
    or validated is returned with its ``error``: callers report it as a failed row, never drop
    it. Other JSON files (run reports such as ``parity.json``) are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not an artifact folder" if root.exists() else "artifact folder does not exist"
        raise ContractError(f"{root}: {what}")
    found: list[FoundContract] = []
    for path in sorted(root.rglob("*" + CONTRACT_SUFFIX)):
        if any(part.endswith(".tmp") for part in path.relative_to(root).parts):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            if _looks_like_ours(path, None):
                found.append(FoundContract(path, None, f"{path.name}: unreadable contract ({type(exc).__name__})"))
            continue
        if not _looks_like_ours(path, data):
            continue
        try:
            found.append(FoundContract(path, ArtifactContract.from_dict(data)))
        except ContractError as exc:
            found.append(FoundContract(path, None, f"{path.name}: {exc}"))
    return found


def source_record(checkpoint: str | Path | None, config: object, folder: str | Path) -> SourceRecord:
    """The :class:`SourceRecord` of a checkpoint, its path relative to the contract ``folder``.

    A shipped checkpoint is also recorded by name, so that an installed seemore-mobile finds it
    wherever the artifact folder goes.
    """
    import dataclasses

    from seemore.checkpoint import list_shipped

    name = getattr(config, "name")
    cfg = dataclasses.asdict(config)  # type: ignore[arg-type]
    if checkpoint is None:
        return SourceRecord(name, cfg, None)
    path = Path(checkpoint)
    sha = file_sha256(path)
    shipped = next((n for n, p in list_shipped().items() if p.resolve() == path.resolve()), None)
    return SourceRecord(name, cfg, sha, relative_to(path, folder), shipped)
