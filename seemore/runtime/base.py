"""The runner protocol: what the parity harness and the host benchmark need from a runtime.

A runner is registered under the runtime name that an artifact's contract carries
(``spec.runtime``: ``executorch``, ``onnxruntime``, ``coreml``, ``litert``). Nothing in the
harness or the benchmark is specific to one runtime.

Every runner's :meth:`Runner.structure` returns the same keys, read from the artifact file
itself: ``partitions`` (delegate calls), ``ops_outside`` (operators outside any delegate),
``backends`` (delegate id -> calls), ``delegates`` (the spec backend names of those ids) and
``ops_outside_by_type``, and where the file records them ``input_shape`` / ``output_shape``; exporters store the same keys in
the contract, so the harness can check that the file is what the exporter said it wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

RunFn = Callable[[Tensor], Tensor]


class RuntimeUnavailable(RuntimeError):
    """This host cannot run an artifact (runtime not installed, delegate not registered); one line."""


class Runner(Protocol):
    """Runs one runtime's artifacts. Implementations import their runtime lazily."""

    runtime: str

    def available(self, path: Path | None = None) -> str | None:
        """``None`` when this host can run ``path`` (or the runtime at all); otherwise why not."""
        ...

    def load(self, path: Path) -> RunFn:
        """The artifact as a callable on tensors of its own I/O (shape, layout, dtype)."""
        ...

    def structure(self, path: Path) -> dict[str, Any]:
        """Delegation summary read from the file (keys in the module docstring)."""
        ...


_RUNNERS: dict[str, Callable[[], Runner]] = {}


def register_runner(runtime: str, factory: Callable[[], Runner]) -> None:
    """Register the runner of ``runtime`` (replaces an earlier one: tests register fakes)."""
    _RUNNERS[runtime] = factory


def runner_names() -> list[str]:
    """Runtimes that have a registered runner."""
    _register_builtin()
    return sorted(_RUNNERS)


def get_runner(runtime: str) -> Runner | None:
    """A fresh runner of ``runtime``, or ``None`` when none is registered."""
    _register_builtin()
    factory = _RUNNERS.get(runtime)
    return factory() if factory is not None else None


def _register_builtin() -> None:
    # Imported here, not at the top, so that a built-in runner module can import this one.
    if "executorch" not in _RUNNERS:
        from seemore.runtime.coreml import CoreMLRunner
        from seemore.runtime.executorch import ExecuTorchRunner
        from seemore.runtime.litert import LiteRTRunner
        from seemore.runtime.onnx import OnnxRuntimeRunner

        _RUNNERS.setdefault("executorch", ExecuTorchRunner)
        _RUNNERS.setdefault("onnxruntime", OnnxRuntimeRunner)
        _RUNNERS.setdefault("coreml", CoreMLRunner)
        _RUNNERS.setdefault("litert", LiteRTRunner)
