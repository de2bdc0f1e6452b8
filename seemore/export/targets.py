"""The registry of export targets: what each CLI and the pipeline can produce, as data.

A target is one (runtime, backend, precision) with what its INT8 path needs: the PT2E quantizer
its program must be made with, and the backend's reference adjustment
(:mod:`seemore.quantize.adjustments`). Each runtime has one exporter module
(:func:`exporter_for`); a new backend is one module and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seemore.contract.spec import ExportSpec
from seemore.export.base import Exporter, ExportError


@dataclass(frozen=True)
class Target:
    """One kind of artifact an exporter can write."""

    name: str
    runtime: str
    backend: str
    precision: str
    description: str
    quantizer: str | None = None
    reference_adjustment: str | None = None

    compression: str = ""

    def spec(self, height: int, width: int, scale: int, batch: int = 1, layout: str = "NCHW",
             **variant: Any) -> ExportSpec:
        """The export spec of this target at a fixed input size (``variant``: ``io``,
        ``deployment_target``, ``sizes`` where the runtime has them)."""
        return ExportSpec(self.backend, self.precision, height, width, batch=batch, scale=scale, layout=layout,
                          runtime=self.runtime, compression=self.compression, **variant)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("xnnpack-fp32", "executorch", "xnnpack", "fp32", "ExecuTorch XNNPACK (CPU), FP32"),
        Target("xnnpack-int8", "executorch", "xnnpack", "int8",
               "ExecuTorch XNNPACK (CPU), INT8 static activations, per-channel weights",
               quantizer="xnnpack", reference_adjustment="int32-bias-grid"),
        Target("vulkan-fp16", "executorch", "vulkan", "fp16", "ExecuTorch Vulkan (GPU), FP16 inside, FP32 I/O"),
        Target("vulkan-fp32", "executorch", "vulkan", "fp32", "ExecuTorch Vulkan (GPU), FP32"),
        Target("onnx-fp32", "onnxruntime", "cpu", "fp32", "ONNX Runtime CPU, FP32 (host baseline)"),
        Target("coreml-fp16", "coreml", "coreml", "fp16", "Core ML ML program, FP16 (Neural Engine)"),
        Target("coreml-int8", "coreml", "coreml", "int8",
               "Core ML ML program, W8A8 (int8 weights, 8-bit activations) from a CoreMLQuantizer program",
               quantizer="coreml"),
        Target("coreml-w8", "coreml", "coreml", "fp16", "Core ML ML program, int8 per-channel weights, FP16 compute",
               compression="w8"),
        Target("coreml-lut6", "coreml", "coreml", "fp16", "Core ML ML program, 6-bit palettized weights, FP16 compute",
               compression="lut6"),
        Target("executorch-coreml-fp16", "executorch", "coreml", "fp16",
               "ExecuTorch .pte with the Core ML delegate (CoreMLPartitioner), FP16"),
        Target("litert-fp32", "litert", "litert", "fp32", "LiteRT .tflite, FP32 (CPU / XNNPACK)"),
        Target("litert-fp16", "litert", "litert", "fp16",
               "LiteRT .tflite, FP16 weights (GPU delegate computes in fp16, CPU in fp32)"),
        Target("litert-int8", "litert", "litert", "int8",
               "LiteRT .tflite, INT8 static activations, per-channel weights (litert-torch PT2EQuantizer)",
               quantizer="litert"),
    )
}
# What each CLI exports when no --targets are given.
# The I/O layout each runtime's CLI and the pipeline export by default: LiteRT takes NHWC (what
# Android bitmaps and its GPU delegate want); the others keep PyTorch's NCHW.
DEFAULT_LAYOUTS: dict[str, str] = {"executorch": "NCHW", "onnxruntime": "NCHW", "coreml": "NCHW", "litert": "NHWC"}

DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "executorch": ("xnnpack-fp32", "xnnpack-int8", "vulkan-fp16"),
    "onnxruntime": ("onnx-fp32",),
    "coreml": ("coreml-fp16", "coreml-int8", "coreml-w8", "coreml-lut6", "executorch-coreml-fp16"),
    "litert": ("litert-fp32", "litert-fp16", "litert-int8"),
}
# Runtimes whose CLI also exports targets of another runtime (Core ML's CLI writes the Core
# ML-delegated .pte too: the same model for the same chip, in ExecuTorch's file format).
CLI_TARGETS: dict[str, tuple[str, ...]] = {"coreml": ("executorch-coreml-fp16",)}
_CLI_OWNED = frozenset(name for names in CLI_TARGETS.values() for name in names)


def targets_for(runtime: str) -> list[Target]:
    """Every target the ``runtime``'s export CLI offers (its own, plus :data:`CLI_TARGETS`)."""
    extra = CLI_TARGETS.get(runtime, ())
    return [t for t in TARGETS.values() if (t.runtime == runtime and t.name not in _CLI_OWNED) or t.name in extra]



def get_target(name: str) -> Target:
    """A target by name; :class:`ExportError` naming the known ones otherwise."""
    if name not in TARGETS:
        raise ExportError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}")
    return TARGETS[name]


def exporter_for(runtime: str) -> Exporter:
    """The exporter module of ``runtime`` (imported here: each one imports its toolchain lazily)."""
    if runtime == "executorch":
        from seemore.export.executorch import ExecuTorchExporter

        return ExecuTorchExporter()
    if runtime == "onnxruntime":
        from seemore.export.onnx import OnnxExporter

        return OnnxExporter()
    if runtime == "coreml":
        from seemore.export.coreml import CoreMLExporter

        return CoreMLExporter()
    if runtime == "litert":
        from seemore.export.litert import LiteRTExporter

        return LiteRTExporter()
    raise ExportError(f"no exporter for the {runtime} runtime")
