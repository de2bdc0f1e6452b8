"""Runners: load an artifact in its own runtime and call it like a torch module.

* :mod:`seemore.runtime.base` - the :class:`Runner` protocol and the registry by runtime name
* :mod:`seemore.runtime.executorch` - ExecuTorch ``.pte`` (``executorch.runtime``)
* :mod:`seemore.runtime.onnx` - ONNX Runtime (the host benchmark's baseline)

Runners import their runtime lazily, so ``import seemore.runtime`` needs only torch.
"""

from seemore.runtime.base import RunFn, Runner, RuntimeUnavailable, get_runner, register_runner, runner_names

__all__ = ["RunFn", "Runner", "RuntimeUnavailable", "get_runner", "register_runner", "runner_names"]
