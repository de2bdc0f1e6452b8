"""ExecuTorch exporter: XNNPACK FP32 / INT8 and Vulkan FP16 / FP32 ``.pte`` files.

Stages (those of ExecuTorch's own test harness): the deploy form (or the INT8 program) is
captured at the spec's fixed shape (:func:`seemore.deploy.capture.export_program`), lowered
with ``to_edge_transform_and_lower`` and the backend's partitioner, and serialised. Everything
else (INT8 program selection, the check, atomic writing, the contract) is the driver's
(:mod:`seemore.export.driver`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seemore.contract.spec import ExportSpec
from seemore.deploy.capture import export_program
from seemore.export.base import ExportError
from seemore.flops import macs_by_node
from seemore.toolchain_logs import quiet_info_logs, quiet_stderr


def partitioners_for(spec: ExportSpec) -> list[Any]:
    """The ExecuTorch partitioner of the spec's backend."""
    if spec.backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return [XnnpackPartitioner()]
    if spec.backend == "vulkan":
        from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner

        # force_fp16: fp16 arithmetic inside the delegate with fp32 inputs and outputs, so
        # the app feeds the same float buffer to every artifact.
        return [VulkanPartitioner({"force_fp16": spec.precision == "fp16"})]
    if spec.backend == "coreml":
        return [coreml_partitioner(spec)]
    raise ExportError(f"the ExecuTorch exporter has no partitioner for {spec.backend}")


def coreml_partitioner(spec: ExportSpec) -> Any:
    """ExecuTorch's Core ML partitioner for ``spec``: an ML program for the spec's iOS version.

    The model type is the uncompiled ``.mlpackage`` (``MODEL``): compiling to ``.mlmodelc``
    needs Apple's compiler, i.e. macOS; the Core ML delegate compiles it on the device at
    first load (and caches it).
    """
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner

    from seemore.export.coreml import deployment_target
    from seemore.toolchain_logs import import_coremltools

    if spec.precision != "fp16":
        raise ExportError("the Core ML-delegated .pte is exported in fp16 (the W8A8 path is the .mlpackage)")
    ct = import_coremltools()
    specs = CoreMLBackend.generate_compile_specs(
        compute_unit=ct.ComputeUnit.ALL, minimum_deployment_target=deployment_target(ct, spec.deployment_target),
        compute_precision=ct.precision.FLOAT16, model_type=CoreMLBackend.MODEL_TYPE.MODEL,
    )
    return CoreMLPartitioner(compile_specs=specs)


def op_name(node: torch.fx.Node) -> str:
    """Readable operator name of a ``call_function`` node, e.g. ``aten.convolution.default``."""
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return f"{target.namespace}.{target._opname}.{target._overloadname}"
    # Edge-dialect overloads already name themselves ``aten.convolution.default``.
    return str(getattr(target, "__name__", None) or target)


def graph_macs(graph_module: torch.fx.GraphModule) -> int:
    """MACs of an ATen or edge-dialect graph, counted by :func:`seemore.flops.macs_by_node`.

    ``macs_by_node`` knows ATen overloads; edge-dialect nodes wrap one (``target._op``),
    so the graph is copied with the wrapped overloads as targets before counting.
    """
    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    for node in graph_module.graph.nodes:
        copy = graph.node_copy(node, lambda n: env[n])
        inner = getattr(node.target, "_op", None)
        if isinstance(inner, torch._ops.OpOverload):
            copy.target = inner
        env[node] = copy
    return sum(macs_by_node(torch.fx.GraphModule(graph_module, graph)).values())


def delegation_summary(edge_manager: Any) -> dict[str, Any]:
    """Delegation of a lowered program: subgraphs, ops in / out of the delegates, MAC share.

    Built on ``executorch.devtools.backend_debug.get_delegation_info`` for the subgraph
    count; ops are counted by operator type. ``getitem`` nodes that only unpack a
    delegate's outputs are not operators and are left out. MACs follow the project's
    fvcore convention (:mod:`seemore.flops`).
    """
    from executorch.devtools.backend_debug import get_delegation_info

    gm = edge_manager.exported_program().graph_module
    info = get_delegation_info(gm)
    delegated: Counter[str] = Counter()
    not_delegated: Counter[str] = Counter()
    macs_in = 0
    for node in gm.graph.nodes:
        if node.op == "get_attr" and node.name.startswith("lowered_module_"):
            inner = getattr(gm, node.target).original_module.graph_module
            macs_in += graph_macs(inner)
            for sub in inner.graph.nodes:
                if sub.op == "call_function":
                    delegated[op_name(sub)] += 1
        elif node.op == "call_function":
            name = op_name(node)
            if "executorch_call_delegate" in name:
                continue
            if name == "getitem" and "executorch_call_delegate" in op_name(node.args[0]):
                continue
            not_delegated[name] += 1
    # The top level holds only what no delegate took (delegate calls count nothing).
    macs_out = graph_macs(gm)
    total = macs_in + macs_out
    return {
        "delegated_subgraphs": info.num_delegated_subgraphs,
        "delegated_ops": sum(delegated.values()),
        "not_delegated_ops": sum(not_delegated.values()),
        "delegated_by_type": dict(sorted(delegated.items())),
        "not_delegated_by_type": dict(sorted(not_delegated.items())),
        "macs_total": total,
        "macs_delegated": macs_in,
        "delegated_mac_share": (macs_in / total) if total else 1.0,
    }


class ExecuTorchExporter:
    """The :class:`~seemore.export.base.Exporter` of ``.pte`` files."""

    runtime = "executorch"
    suffix = ".pte"
    directory = False

    def available(self) -> str | None:
        """``None`` when executorch is importable."""
        try:
            import executorch.exir  # noqa: F401
        except ImportError:
            return "executorch is not installed (pip install 'seemore-mobile[export]')"
        return None

    def lower(self, model: nn.Module, spec: ExportSpec) -> Any:
        """Capture ``model`` at ``spec``'s shape and lower it; returns the ``EdgeProgramManager``."""
        from executorch.exir import to_edge_transform_and_lower

        if spec.precision == "int8" and not isinstance(model, torch.fx.GraphModule):
            raise ExportError("an int8 spec needs a quantized (convert_pt2e) program")
        program = export_program(model, spec)
        # The Core ML delegate runs coremltools, whose per-pass progress bars would bury the CLI's.
        with quiet_info_logs(), quiet_stderr() if spec.backend == "coreml" else contextlib.nullcontext():
            return {"edge": to_edge_transform_and_lower(program, partitioner=partitioners_for(spec))}

    def serialize(self, lowered: Any, path: Path) -> None:
        """Write the ``.pte`` bytes to ``path``."""
        if "bytes" not in lowered:
            with quiet_info_logs():
                lowered["bytes"] = bytes(lowered["edge"].to_executorch().buffer)
        Path(path).write_bytes(lowered["bytes"])

    def structure(self, lowered: Any, path: Path) -> dict[str, Any]:
        """The edge program's delegation summary plus the serialised file's partition counts."""
        from seemore.runtime.executorch import pte_structure

        return {**delegation_summary(lowered["edge"]), **pte_structure(path)}
