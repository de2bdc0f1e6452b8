"""Self-describing artifacts: every exported file gets a sidecar JSON, both written atomically.

Sidecar layout (``<artifact>.json`` next to ``<artifact>``; shared by all backends):

``format``       ``seemore-mobile/artifact/1``
``artifact``     file name, size in bytes and SHA-256 of the artifact
``model``        model name and full :class:`SeemoReConfig`
``source``       checkpoint path and SHA-256 (``null`` for random weights)
``spec``         the :class:`ExportSpec`
``tools``        Python, torch, executorch, torchao ... versions
``delegation``   backend-specific delegation summary
``quantization`` how an int8 program was made (absent otherwise)
``export_check`` numbers measured by the exporter itself (artifact vs its torch model)
``parity``       reserved for the parity harness (empty when written by an exporter)
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

from seemore.checkpoint import atomic_write, file_sha256
from seemore.config import SeemoReConfig
from seemore.export.spec import ExportSpec

SIDECAR_FORMAT = "seemore-mobile/artifact/1"
_TOOL_PACKAGES: tuple[str, ...] = (
    "seemore-mobile",
    "torch",
    "executorch",
    "torchao",
    "coremltools",
    "litert-torch",
    "numpy",
)


def tool_versions(packages: tuple[str, ...] = _TOOL_PACKAGES) -> dict[str, str | None]:
    """Installed versions of the export toolchain (``None`` for a package that is absent)."""
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def sidecar_path(artifact: str | Path) -> Path:
    """Where the sidecar of ``artifact`` lives: ``model.pte`` -> ``model.pte.json``."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def source_record(checkpoint: str | Path | None) -> dict[str, Any]:
    """Checkpoint path and SHA-256, or a note that the weights were not from a file."""
    if checkpoint is None:
        return {"checkpoint": None, "sha256": None, "note": "weights not loaded from a file"}
    path = Path(checkpoint)
    return {"checkpoint": str(path), "sha256": file_sha256(path)}


def build_sidecar(
    spec: ExportSpec,
    config: SeemoReConfig,
    checkpoint: str | Path | None,
    delegation: dict[str, Any],
    quantization: dict[str, Any] | None = None,
    export_check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sidecar dictionary (without the ``artifact`` entry, added when writing)."""
    out: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "model": {"name": config.name, "config": dataclasses.asdict(config)},
        "source": source_record(checkpoint),
        "spec": spec.to_dict(),
        "tools": tool_versions(),
        "delegation": delegation,
        "export_check": export_check or {},
        "parity": {},
    }
    if quantization is not None:
        out["quantization"] = quantization
    return out


def write_artifact(path: str | Path, payload: bytes, sidecar: dict[str, Any]) -> Path:
    """Atomically write ``payload`` to ``path`` and its sidecar JSON next to it; returns the sidecar path.

    The artifact goes first, so a sidecar never describes a file that is not there.
    """
    path = Path(path)

    def write_payload(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(payload)

    atomic_write(path, write_payload)
    record = dict(sidecar)
    record["artifact"] = {"file": path.name, "bytes": len(payload), "sha256": file_sha256(path)}
    side = sidecar_path(path)

    def write_json(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")

    atomic_write(side, write_json)
    return side


def read_sidecar(artifact: str | Path) -> dict[str, Any]:
    """Load the sidecar of ``artifact``."""
    with open(sidecar_path(artifact), encoding="utf-8") as f:
        return json.load(f)
