"""ExecuTorch ``.pte`` files in ``executorch.runtime`` (the pip wheel: XNNPACK and portable kernels).

A ``.pte`` whose delegates this runtime does not register (Vulkan, Core ML: not in the pip
wheel) can still be read (:func:`pte_structure`) but not run: :meth:`ExecuTorchRunner.available`
says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from seemore.runtime.base import RunFn, RuntimeUnavailable


class LoadedPte:
    """The ``forward`` method of a loaded ``.pte``, holding what the runtime borrows.

    ``Runtime.load_program`` on bytes does not copy them, and a method does not keep its
    program alive: dropping either while the method is used reads freed memory (a
    segmentation fault). This object owns all three. The method is loaded on first use, so
    a program whose delegate this runtime lacks (Vulkan) can still be inspected.
    """

    def __init__(self, payload: bytes | str | Path) -> None:
        from executorch.runtime import Runtime

        self._payload = payload
        self._program = Runtime.get().load_program(payload if isinstance(payload, bytes) else Path(payload))
        self._method: Any = None

    @property
    def program(self) -> Any:
        """The ``executorch.runtime`` program (metadata, method names)."""
        return self._program

    def execute(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        """Run ``forward`` on ``inputs`` (contiguous tensors of the exported shapes)."""
        if self._method is None:
            self._method = self._program.load_method("forward")
            if self._method is None:
                raise RuntimeUnavailable("program has no forward method")
        return list(self._method.execute(list(inputs)))


def set_runtime_threads(threads: int) -> bool:
    """Size of the XNNPACK thread pool of ``executorch.runtime`` (an experimental ExecuTorch hook).

    Used to time the ``.pte`` with as many threads as eager PyTorch gets. The runtime logs
    "Resetting threadpool" to stderr (through Python's ``sys.stderr`` or straight to file
    descriptor 2 depending on the build); both are silenced for the call so CLIs keep their
    one-line error output. Returns ``False`` (and does nothing) without ExecuTorch.
    """
    from seemore.toolchain_logs import quiet_fd2

    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError:
        return False

    with quiet_fd2():
        portable_lib._unsafe_reset_threadpool(threads)
    return True


# Delegate id in a .pte -> backend name of the spec.
PTE_DELEGATES: dict[str, str] = {"XnnpackBackend": "xnnpack", "VulkanBackend": "vulkan", "CoreMLBackend": "coreml"}


def pte_structure(path: Path) -> dict[str, Any]:
    """Delegates and operators of a ``.pte`` read from the file itself (no backend needed).

    Counts delegate calls per backend id and the kernel calls (operators outside any
    delegate) of the ``forward`` plan, in the keys of :mod:`seemore.runtime.base`.
    """
    from executorch.exir._serialize._program import deserialize_pte_binary
    from executorch.exir.schema import DelegateCall, KernelCall

    program = deserialize_pte_binary(path.read_bytes()).program
    plans = {plan.name: plan for plan in program.execution_plan}
    if "forward" not in plans:
        raise RuntimeUnavailable(f"{path.name}: no forward method (methods: {', '.join(plans)})")
    plan = plans["forward"]
    delegate_calls: dict[str, int] = {}
    kernels: dict[str, int] = {}
    for chain in plan.chains:
        for instr in chain.instructions:
            args = instr.instr_args
            if isinstance(args, DelegateCall):
                bid = plan.delegates[args.delegate_index].id
                delegate_calls[bid] = delegate_calls.get(bid, 0) + 1
            elif isinstance(args, KernelCall):
                op = plan.operators[args.op_index]
                name = f"{op.name}.{op.overload}" if op.overload else op.name
                kernels[name] = kernels.get(name, 0) + 1
    return {
        "partitions": sum(delegate_calls.values()),
        "ops_outside": sum(kernels.values()),
        "backends": dict(sorted(delegate_calls.items())),
        "delegates": sorted({PTE_DELEGATES.get(d, d) for d in delegate_calls}),
        "ops_outside_by_type": dict(sorted(kernels.items())),
    }


def load_pte(payload: bytes | str | Path) -> LoadedPte:
    """Load a ``.pte`` (bytes or path) with ``executorch.runtime``; returns its runnable forward method."""
    return LoadedPte(payload)


class ExecuTorchRunner:
    """Runner of ``.pte`` files (see the module docstring)."""

    runtime = "executorch"

    def available(self, path: Path | None = None) -> str | None:
        """Why this host cannot run ``path`` (runtime missing, delegate not registered), or ``None``."""
        try:
            from executorch.runtime import Runtime
        except ImportError:
            return "executorch is not installed (pip install 'seemore-mobile[export]')"
        if path is None:
            return None
        registry = Runtime.get().backend_registry
        missing = [d for d in pte_structure(path)["backends"] if not registry.is_available(d)]
        if missing:
            return f"this ExecuTorch runtime registers no {', '.join(missing)} (run it on a device)"
        return None

    def load(self, path: Path) -> RunFn:
        """The ``forward`` method as a callable on one tensor."""
        loaded = LoadedPte(path)
        return lambda x: loaded.execute([x.contiguous()])[0]

    def structure(self, path: Path) -> dict[str, Any]:
        """Delegate calls and operators outside them, and the I/O shapes of ``forward``, read from the file.

        The program loads without its delegates' backends (only the method needs them), so this
        works for Vulkan programs too.
        """
        meta = LoadedPte(path).program.metadata("forward")
        return {**pte_structure(path), "input_shape": list(meta.input_tensor_meta(0).sizes()),
                "output_shape": list(meta.output_tensor_meta(0).sizes())}
