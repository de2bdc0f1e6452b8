"""ExecuTorch lowering: XNNPACK FP32, XNNPACK INT8 (from a PT2E-quantized program), Vulkan FP16.

Pipeline per artifact (the stages of ExecuTorch's own examples):
quantize (INT8 only) -> :func:`~seemore.export.spec.export_program` at the spec's fixed
shape -> ``to_edge_transform_and_lower`` with the backend's partitioner -> serialise ->
run the ``.pte`` in ``executorch.runtime`` on a real image and compare with its torch
model -> write ``.pte`` and sidecar JSON atomically.

INT8 takes any ``convert_pt2e`` output: :func:`seemore.quantize.quantize_ptq` makes one by
calibrating on real LR training images, and a QAT run (``quantization/qat.py``) hands its
converted model to :func:`export_executorch` (``int8_model=``) instead.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seemore.checkpoint import file_sha256
from seemore.config import SeemoReConfig
from seemore.deploy import ConvLayerNorm2d, ResidualAdd, TopKRoutingMask
from seemore.export.artifact import build_sidecar, write_artifact
from seemore.export.bounds import FAIL, MIN_PARITY_DB, parity_status
from seemore.export.calibration import calibration_images, real_input
from seemore.export.spec import (
    ChannelsLastIO,
    ExportSpec,
    SpecError,
    capture_for_quantization,
    deploy_form,
    export_program,
)
from seemore.flops import macs_by_node
from seemore.model import Router

# (backend, precision) pairs this module can lower.
SUPPORTED: tuple[tuple[str, str], ...] = (
    ("xnnpack", "fp32"),
    ("xnnpack", "int8"),
    ("vulkan", "fp16"),
    ("vulkan", "fp32"),
)
# Modules kept in fp32 inside INT8 programs (see xnnpack_quantizer).
FP32_MODULES: tuple[type[nn.Module], ...] = (Router, TopKRoutingMask, ConvLayerNorm2d, ResidualAdd)
ProgressFn = Callable[[str], None]


class ExportError(RuntimeError):
    """Lowering or checking an artifact failed; the message is one line."""


def _check_supported(spec: ExportSpec) -> None:
    if (spec.backend, spec.precision) not in SUPPORTED:
        pairs = ", ".join(f"{b}/{p}" for b, p in SUPPORTED)
        raise SpecError(f"ExecuTorch export supports {pairs}; got {spec.backend}/{spec.precision}")


# --------------------------------------------------------------------------- quantization


def xnnpack_quantizer(is_qat: bool = False, fp32_modules: Sequence[type[nn.Module]] = FP32_MODULES) -> Any:
    """The XNNPACK PT2E quantizer used for every INT8 artifact (PTQ and QAT alike).

    Static int8 activations, per-channel symmetric int8 weights. By default four module
    types stay in fp32 (:data:`FP32_MODULES`), all cheap: the router (pool, linear) and the
    arithmetic top-k mask, because quantizing the mask's scaled differences would change
    which expert is chosen; the channel LayerNorm, because an int8 variance rounds
    small values to zero and ``rsqrt`` then amplifies every rounding difference; and the
    residual additions, because requantizing the residual stream after every block
    halves the INT8 accuracy (:class:`seemore.deploy.ResidualAdd`). Every conv stays int8.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat))
    for module_type in fp32_modules:
        quantizer.set_module_type(module_type, None)
    return quantizer


def _attr(model: nn.Module, target: str) -> Any:
    """The object a ``get_attr`` node refers to (targets may be dotted paths)."""
    obj: Any = model
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _is_op(node: object, name: str) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and str(node.target).startswith(name)


def snap_biases_to_int32(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Round the fp32 biases of quantized convs/linears onto XNNPACK's int32 bias grid, in place.

    XNNPACK stores the bias of an int8 conv as int32 with scale ``input_scale *
    weight_scale`` (per channel), while ``convert_pt2e`` keeps it in fp32. That rounding
    (at most half a step of that tiny scale) flips the int8 rounding of a few outputs per
    layer, and the flips spread through the network, so the ``.pte`` and its torch model
    drift apart by as much as they both differ from fp32. With the biases pre-rounded
    exactly as XNNPACK rounds them, the torch model is a faithful simulation of the
    ``.pte``; the change to the model is below a thousandth of an activation step.
    """
    for node in model.graph.nodes:
        if node.op != "call_function" or not any(k in str(node.target) for k in ("conv2d", "convolution", "linear")):
            continue
        if len(node.args) < 3 or not isinstance(node.args[2], torch.fx.Node) or node.args[2].op != "get_attr":
            continue
        act, weight, bias_node = node.args[0], node.args[1], node.args[2]
        if not _is_op(act, "quantized_decomposed.dequantize_per_tensor"):
            continue
        if _is_op(weight, "quantized_decomposed.dequantize_per_channel"):
            w_scale = _attr(model, weight.args[1].target)
        elif _is_op(weight, "quantized_decomposed.dequantize_per_tensor"):
            w_scale = torch.tensor(float(weight.args[1]))
        else:
            continue
        bias = _attr(model, bias_node.target)
        scale = (w_scale * float(act.args[1])).to(torch.float32).expand(bias.shape[0]).contiguous()
        zero = torch.zeros(bias.shape[0], dtype=torch.int64)
        q = torch.ops.quantized_decomposed.quantize_per_channel(
            bias.detach().float(), scale, zero, 0, -(2**31), 2**31 - 1, torch.int32
        )
        snapped = torch.ops.quantized_decomposed.dequantize_per_channel(q, scale, zero, 0, -(2**31), 2**31 - 1, torch.int32)
        with torch.no_grad():
            bias.copy_(snapped.to(bias.dtype))
    return model


# --------------------------------------------------------------------------- lowering


def partitioners_for(spec: ExportSpec) -> list[Any]:
    """The ExecuTorch partitioner(s) for ``spec``."""
    _check_supported(spec)
    if spec.backend == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return [XnnpackPartitioner()]
    from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner

    # force_fp16: fp16 arithmetic inside the delegate with fp32 inputs and outputs, so
    # the app feeds the same float buffer to every artifact.
    return [VulkanPartitioner({"force_fp16": spec.precision == "fp16"})]


@contextlib.contextmanager
def _quiet_info_logs() -> Iterator[None]:
    """Silence INFO logging while lowering.

    ExecuTorch's Vulkan modules set the *root* logger to INFO when imported and then log
    every operator and layout transition, which buries the CLI's progress bar.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(previous)


def lower(model: nn.Module, spec: ExportSpec) -> Any:
    """Export ``model`` at ``spec``'s shape and lower it; returns the ``EdgeProgramManager``.

    ``model`` is a reference or deploy SeemoRe for float specs, or a ``convert_pt2e``
    output for INT8 specs.
    """
    from executorch.exir import to_edge_transform_and_lower

    _check_supported(spec)
    if spec.precision == "int8" and not isinstance(model, torch.fx.GraphModule):
        raise ExportError("an int8 spec needs a quantized (convert_pt2e) model; use seemore.quantize first")
    program = export_program(model, spec)
    with _quiet_info_logs():
        return to_edge_transform_and_lower(program, partitioner=partitioners_for(spec))


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


def serialize(edge_manager: Any) -> bytes:
    """The ``.pte`` bytes of a lowered program."""
    with _quiet_info_logs():
        return bytes(edge_manager.to_executorch().buffer)


# --------------------------------------------------------------------------- running


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
                raise ExportError("program has no forward method")
        return list(self._method.execute(list(inputs)))


def load_pte(payload: bytes | str | Path) -> LoadedPte:
    """Load a ``.pte`` (bytes or path) with ``executorch.runtime``; returns its runnable forward method."""
    return LoadedPte(payload)


def run_pte(payload: bytes | str | Path, x: Tensor) -> Tensor:
    """Run a ``.pte`` once on ``x`` and return its output."""
    return load_pte(payload).execute([x.contiguous()])[0]


def set_runtime_threads(threads: int) -> None:
    """Size of the XNNPACK thread pool of ``executorch.runtime`` (an experimental ExecuTorch hook).

    Used to time the ``.pte`` with as many threads as eager PyTorch gets. The runtime logs
    "Resetting threadpool" to stderr (through Python's ``sys.stderr`` or straight to file
    descriptor 2 depending on the build); both are silenced for the call so CLIs keep their
    one-line error output.
    """
    import os

    from executorch.extension.pybindings import portable_lib

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with contextlib.redirect_stderr(null):
                portable_lib._unsafe_reset_threadpool(threads)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def psnr(a: Tensor, b: Tensor, peak: float = 1.0) -> float:
    """PSNR in dB between two tensors on a [0, peak] scale (``inf`` when equal)."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(peak**2 / mse)).item()


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``runs`` calls after ``warmup``."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def fp16_simulation(
    model: nn.Module, spec: ExportSpec, data_root: str | Path | None = None, max_size: tuple[int, int] = (64, 96)
) -> dict[str, Any]:
    """Run the deploy model in torch fp16 on a real crop and compare with fp32.

    A host-side proxy for the Vulkan FP16 artifact, which cannot run here: it catches
    fp16 overflow (non-finite outputs) and gives the size of fp16 rounding. The crop is
    at most ``max_size`` because fp16 convolutions are slow on CPU; GPU shaders may
    accumulate differently, so this is an estimate, not the device's parity.
    """
    h, w = min(spec.height, max_size[0]), min(spec.width, max_size[1])
    x = real_input(h, w, 1, data_root)
    half = copy.deepcopy(model).half().eval()
    with torch.no_grad():
        want = model(x)
        got = half(x.half()).float()
    finite = bool(torch.isfinite(got).all())
    return {
        "crop": [h, w],
        "finite": finite,
        "psnr_db": psnr(got, want) if finite else None,
        "max_abs": (got - want).abs().max().item() if finite else None,
    }


# --------------------------------------------------------------------------- driver


@dataclass
class ExportResult:
    """One written artifact and what the exporter measured about it."""

    spec: ExportSpec
    path: Path
    sidecar: Path
    size_bytes: int
    delegation: dict[str, Any]
    check: dict[str, Any] = field(default_factory=dict)
    # The torch model the artifact was lowered from (eager deploy form, or the converted
    # int8 model), kept for parity checks; not serialised.
    torch_model: nn.Module | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """Artifact file name."""
        return self.path.name


def artifact_name(config: SeemoReConfig, spec: ExportSpec) -> str:
    """File name of an artifact, e.g. ``seemore_t_x4_xnnpack_fp32_180x320.pte``."""
    return f"{config.name}_{spec.tag}.pte"


def check_artifact(
    payload: bytes, reference: nn.Module, x: Tensor, spec: ExportSpec, float_model: nn.Module | None = None
) -> dict[str, Any]:
    """Run the ``.pte`` on ``x`` and compare with ``reference`` (its own torch model).

    ``float_model`` (for INT8) adds the PSNR of the artifact and of its torch model
    against the float model: the quantization error of each, for information (a
    faithful lowering makes the two equal). For INT8 the reference is also re-run on
    channels-last input to measure its own reproducibility (see :mod:`seemore.export.bounds`).
    ``status`` is that module's verdict; ``passed`` is true unless it is ``FAIL``.
    """
    with torch.no_grad():
        want = reference(x)
        floor = None
        if spec.precision == "int8":
            floor = psnr(reference(x.contiguous(memory_format=torch.channels_last)), want)
    got = run_pte(payload, x)
    if got.shape != want.shape:
        raise ExportError(f"artifact output shape {tuple(got.shape)} != torch output {tuple(want.shape)}")
    value = psnr(got, want)
    out: dict[str, Any] = {
        "image": "real photo crop (Set14/Set5 HR, or bundled photos)",
        "against": "converted int8 torch model" if spec.precision == "int8" else "eager fp32 torch model",
        "psnr_db": value,
        "max_abs": (got - want).abs().max().item(),
        "min_psnr_db": MIN_PARITY_DB.get(spec.precision),
        "status": parity_status(spec.precision, value, floor),
    }
    out["passed"] = out["status"] != FAIL
    if floor is not None:
        out["reference_self_psnr_db"] = floor
    if float_model is not None:
        with torch.no_grad():
            floating = float_model(x)
        out["psnr_vs_float_db"] = psnr(got, floating)
        out["torch_model_psnr_vs_float_db"] = psnr(want, floating)
    return out


def export_executorch(
    model: nn.Module,
    specs: Iterable[ExportSpec],
    out_dir: str | Path,
    checkpoint: str | Path | None = None,
    data_root: str | Path | None = None,
    int8_model: torch.fx.GraphModule | None = None,
    int8_source: dict[str, Any] | None = None,
    calibration_limit: int | None = None,
    verify: bool = True,
    bench_runs: int = 0,
    progress: ProgressFn | None = None,
) -> list[ExportResult]:
    """Lower ``model`` for every spec, check each ``.pte`` in the runtime, write it with its sidecar.

    ``model`` is a reference :class:`SeemoRe` (or its deploy form). INT8 specs use
    ``int8_model`` when given (e.g. a QAT ``convert_pt2e`` output, described by
    ``int8_source`` in the sidecar; its biases are snapped to the int32 grid on a copy),
    otherwise PTQ on real calibration images.
    Vulkan artifacts cannot run here (the pip runtime has no Vulkan backend), so their
    check says so. ``bench_runs`` > 0 adds median latencies of the ``.pte`` and of eager
    PyTorch, measured side by side.
    """
    deploy = deploy_form(model).eval()
    # Latency baseline: the model as the caller runs it in PyTorch (usually the reference).
    eager = model.eval()
    config: SeemoReConfig = deploy.config
    out_dir = Path(out_dir)
    say = progress or (lambda _msg: None)
    results: list[ExportResult] = []
    quantized: torch.fx.GraphModule | None = None
    quant_record: dict[str, Any] | None = None
    if int8_model is not None:
        # A copy: the caller's model keeps its biases.
        quantized = snap_biases_to_int32(copy.deepcopy(int8_model))
        quant_record = {**(int8_source or {"method": "provided program"}), "biases": "int32 grid"}
    for spec in specs:
        _check_supported(spec)
        spec.check_model(deploy)
        reference: nn.Module = deploy
        if spec.precision == "int8":
            if quantized is None:
                images = calibration_images(
                    config.scale, data_root, min_size=2 * config.min_input_size, limit=calibration_limit
                )
                say(f"{spec.tag}: PTQ calibration on {len(images)} real training images")
                # The same PTQ as quantization/qat.py --ptq-only (seemore.quantize), biases then
                # snapped to XNNPACK's int32 grid like any provided program.
                from seemore.quantize import quantize_ptq

                captured = capture_for_quantization(deploy, spec)
                quantized = snap_biases_to_int32(quantize_ptq(captured, "xnnpack", images, progress=False))
                quant_record = {
                    "method": "ptq",
                    "quantizer": "XNNPACKQuantizer, per-channel symmetric int8 weights, static int8 activations",
                    "fp32_modules": [m.__name__ for m in FP32_MODULES],
                    "biases": "int32 grid",
                    "calibration_images": len(images),
                    "calibration_data": "whole LR training images (<data root>/train, or bundled photos)",
                }
                # The converted program is the INT8 artifact's torch reference: saved next to
                # it, so the parity harness compares with exactly this program.
                from seemore.quantize import save_program

                program, _ = save_program(quantized, spec, out_dir, config, checkpoint, "ptq", quant_record)
                quant_record = {**quant_record, "program": str(program), "sha256": file_sha256(program)}
            reference = quantized
        say(f"{spec.tag}: export + lower")
        edge = lower(reference, spec)
        delegation = delegation_summary(edge)
        say(f"{spec.tag}: serialise")
        payload = serialize(edge)
        check: dict[str, Any] = {}
        if spec.backend == "vulkan":
            check = {"ran": False, "note": "the pip ExecuTorch runtime has no Vulkan backend; run on a device"}
            if verify and spec.precision == "fp16":
                say(f"{spec.tag}: fp16 simulation in torch")
                check["fp16_simulation"] = fp16_simulation(deploy, spec, data_root)
        elif verify:
            say(f"{spec.tag}: run .pte on a real image")
            x = real_input(spec.height, spec.width, spec.batch, data_root).to(spec.torch_io_dtype)
            ref_io, float_io, eager_io = reference, deploy, eager
            if spec.layout == "NHWC":
                x = x.permute(0, 2, 3, 1).contiguous()
                ref_io, float_io, eager_io = ChannelsLastIO(reference), ChannelsLastIO(deploy), ChannelsLastIO(eager)
            check = check_artifact(payload, ref_io, x, spec, float_model=float_io if spec.precision == "int8" else None)
            check["ran"] = True
            if bench_runs > 0:
                say(f"{spec.tag}: timing {bench_runs} runs")
                # Same thread count for both sides, so the ratio means something.
                set_runtime_threads(torch.get_num_threads())
                check["threads"] = torch.get_num_threads()
                method = load_pte(payload)
                with torch.no_grad():
                    check["pte_median_ms"] = median_ms(lambda: method.execute([x]), bench_runs)
                    check["eager_fp32_median_ms"] = median_ms(lambda: eager_io(x), bench_runs)
        path = out_dir / artifact_name(config, spec)
        sidecar = build_sidecar(
            spec,
            config,
            checkpoint,
            {"backend": spec.backend, **delegation},
            quantization=quant_record if spec.precision == "int8" else None,
            export_check=check,
        )
        side = write_artifact(path, payload, sidecar)
        results.append(ExportResult(spec, path, side, len(payload), delegation, check, torch_model=reference))
        say(f"{spec.tag}: wrote {path}")
    return results
