"""The exporter protocol: what one backend module provides to the driver.

A backend turns a torch module (the deploy form, or an INT8 program) into an artifact for a
fixed :class:`~seemore.contract.spec.ExportSpec`; the driver (:mod:`seemore.export.driver`) does
everything else, the same way for every backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from torch import nn

from seemore.contract.spec import ExportSpec


class ExportError(RuntimeError):
    """Lowering or checking an artifact failed; the message is one line."""


class Exporter(Protocol):
    """One runtime's artifacts. Implementations import their toolchain lazily."""

    runtime: str  # the spec runtime it writes (executorch, coreml, litert, onnxruntime)
    suffix: str  # file suffix (.pte, .mlpackage, .tflite, .onnx)
    directory: bool  # True when the artifact is a directory tree (.mlpackage)

    def available(self) -> str | None:
        """``None`` when the toolchain is importable here; otherwise what is missing."""
        ...

    def lower(self, model: nn.Module, spec: ExportSpec) -> Any:
        """Capture and convert ``model`` for ``spec``; returns the backend's lowered object."""
        ...

    def serialize(self, lowered: Any, path: Path) -> None:
        """Write the artifact to ``path`` (a temporary name the driver then renames)."""
        ...

    def structure(self, lowered: Any, path: Path) -> dict[str, Any]:
        """Delegation / partitions / op list of the written artifact (``partitions`` and
        ``ops_outside`` as :mod:`seemore.runtime.base` defines them)."""
        ...
