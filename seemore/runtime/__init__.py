"""Runners: load an artifact in its own runtime and call it like a torch module.

* :mod:`seemore.runtime.base` - the :class:`Runner` protocol and the registry by runtime name
* :mod:`seemore.runtime.executorch` - ExecuTorch ``.pte`` (``executorch.runtime``)
* :mod:`seemore.runtime.onnx` - ONNX Runtime (the host benchmark's baseline)
* :mod:`seemore.runtime.mil` - a reference evaluator of Core ML MIL programs (Linux checks of ``.mlpackage``)
* :mod:`seemore.runtime.coreml` - Core ML ``.mlpackage`` (the MIL evaluator anywhere, Core ML itself on macOS)

Runners import their runtime lazily, so ``import seemore.runtime`` needs only torch.
"""

from seemore.runtime.base import RunFn, Runner, RuntimeUnavailable, get_runner, register_runner, runner_names

__all__ = ["RunFn", "Runner", "RuntimeUnavailable", "get_runner", "register_runner", "runner_names"]
