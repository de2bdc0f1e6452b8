"""What an artifact is built for: one :class:`ExportSpec` that every backend consumes.

An exporter receives a model and an ``ExportSpec`` and starts from
:func:`seemore.deploy.capture.export_program`, so every artifact is built from the same
deploy-form graph with the same fixed input shape.

Default input size: 180x320 LR (H x W). At x4 that is 720x1280, the 720p frame that
phone screens and video use, and the size at which the paper (and docs/MODEL.md) quotes
MACs, so artifact timings compare directly with the published 11.93 GMAC of SeemoRe-T.
Mobile delegates plan memory and pick kernels for a fixed shape (Core ML's ANE even
refuses flexible shapes), so an artifact has one input size; larger images are tiled in
180x320 pieces and smaller ones padded by the caller.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from seemore.config import SUPPORTED_SCALES

BACKENDS: tuple[str, ...] = ("xnnpack", "vulkan", "coreml", "litert", "cpu")
# The program format an artifact is run by; the backend is the delegate inside it.
RUNTIMES: dict[str, tuple[str, ...]] = {
    "executorch": ("xnnpack", "vulkan", "coreml"),
    "coreml": ("coreml",),
    "litert": ("litert",),
    "onnxruntime": ("cpu",),
}
DEFAULT_RUNTIME: dict[str, str] = {"xnnpack": "executorch", "vulkan": "executorch", "coreml": "coreml",
                                   "litert": "litert", "cpu": "onnxruntime"}
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
LAYOUTS: tuple[str, ...] = ("NCHW", "NHWC")
IO_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16}
# Weight compression of an FP16 artifact (Core ML only, ``coremltools.optimize.coreml``):
# ``w8`` int8 per-channel weights, ``lutN`` N-bit palettized weights (a lookup table).
COMPRESSIONS: dict[str, tuple[str, ...]] = {"coreml": ("", "w8", "lut6")}
# How the app hands pixels over: ``tensor`` (float [0, 1] in the spec's layout) or ``image``
# (Core ML image types: a camera/photo buffer in, an 8-bit image out; the model scales).
IO_KINDS: dict[str, tuple[str, ...]] = {"coreml": ("tensor", "image")}
# Minimum OS of the program (Core ML packages and Core ML-delegated .pte files).
DEPLOYMENT_TARGETS: dict[str, tuple[str, ...]] = {"coreml": ("iOS17", "iOS18")}
DEFAULT_DEPLOYMENT_TARGET: dict[str, str] = {"coreml": "iOS17"}
MAX_ENUMERATED_SIDE = 1023
DEFAULT_LR_HEIGHT = 180
DEFAULT_LR_WIDTH = 320


class SpecError(ValueError):
    """An export spec that cannot be built or does not fit the model; one-line message."""


@dataclass(frozen=True)
class ExportSpec:
    """What an artifact is built for: fixed LR input shape, layout, precision, backend, runtime.

    ``runtime`` is the program format (``executorch`` ``.pte``, ``coreml`` ``.mlpackage``,
    ``litert`` ``.tflite``); empty means the backend's usual one (:data:`DEFAULT_RUNTIME`).
    ``precision`` is the arithmetic inside the backend (fp16 on Vulkan/Core ML GPU, int8
    from a quantized program); ``io_dtype`` is the dtype of the artifact's input and
    output tensors, float32 by default so apps feed every artifact the same buffer.
    """

    backend: str = "xnnpack"
    precision: str = "fp32"
    height: int = DEFAULT_LR_HEIGHT
    width: int = DEFAULT_LR_WIDTH
    batch: int = 1
    scale: int = 4
    layout: str = "NCHW"
    io_dtype: str = "float32"
    runtime: str = ""
    compression: str = ""
    io: str = "tensor"
    deployment_target: str = ""
    # Further fixed input sizes (H, W) the artifact also accepts (Core ML enumerated shapes);
    # ``height`` x ``width`` is the default one, and the one every check runs at.
    sizes: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise SpecError(f"unknown backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        if not self.runtime:
            object.__setattr__(self, "runtime", DEFAULT_RUNTIME[self.backend])
        if self.runtime not in RUNTIMES:
            raise SpecError(f"unknown runtime {self.runtime!r}; choose from {', '.join(RUNTIMES)}")
        if self.backend not in RUNTIMES[self.runtime]:
            raise SpecError(f"runtime {self.runtime} has no {self.backend} backend")
        if self.precision not in PRECISIONS:
            raise SpecError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.layout not in LAYOUTS:
            raise SpecError(f"unknown layout {self.layout!r}; choose from {', '.join(LAYOUTS)}")
        if self.io_dtype not in IO_DTYPES:
            raise SpecError(f"unknown io_dtype {self.io_dtype!r}; choose from {', '.join(IO_DTYPES)}")
        self._check_variant()
        for name in ("height", "width", "batch", "scale"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(f"{name} must be a positive integer, got {value!r}")
        if self.scale not in SUPPORTED_SCALES:
            raise SpecError(f"scale must be one of {SUPPORTED_SCALES}, got {self.scale}")

    def _check_variant(self) -> None:
        """Compression, I/O kind, deployment target and enumerated sizes: only where the backend has them."""
        allowed = COMPRESSIONS.get(self.backend, ("",))
        if self.compression not in allowed:
            raise SpecError(f"compression {self.compression!r} is not available for {self.backend}"
                            + (f" (choose from {', '.join(c for c in allowed if c)})" if len(allowed) > 1 else ""))
        if self.compression and self.precision != "fp16":
            raise SpecError(f"weight compression {self.compression} applies to fp16 artifacts, not {self.precision}")
        kinds = IO_KINDS.get(self.runtime, ("tensor",))
        if self.io not in kinds:
            raise SpecError(f"io {self.io!r} is not available for the {self.runtime} runtime")
        if self.io == "image" and (self.layout != "NCHW" or self.io_dtype != "float32"):
            raise SpecError("image I/O takes no layout or io_dtype of its own")
        targets = DEPLOYMENT_TARGETS.get(self.backend, ())
        if not self.deployment_target and targets:
            object.__setattr__(self, "deployment_target", DEFAULT_DEPLOYMENT_TARGET[self.backend])
        if self.deployment_target and self.deployment_target not in targets:
            raise SpecError(f"deployment target {self.deployment_target!r} is not available for {self.backend}"
                            + (f" (choose from {', '.join(targets)})" if targets else ""))
        sizes = tuple(tuple(s) for s in self.sizes)
        if sizes and self.runtime != "coreml":
            raise SpecError(f"enumerated sizes are a Core ML feature, not available for {self.runtime}")
        for size in sizes:
            if (len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
                raise SpecError(f"sizes must be (height, width) pairs of positive integers, got {list(size)}")
        if sizes and sizes[0] != (self.height, self.width):
            raise SpecError(f"the first enumerated size must be the default {self.height}x{self.width}")
        if len(set(sizes)) != len(sizes):
            raise SpecError("enumerated sizes repeat")
        if len(sizes) > 1 and max(max(s) for s in sizes) > MAX_ENUMERATED_SIDE:
            # With several shapes the Core ML form builds its upsample matrices at run time, in
            # fp16, from pixel positions (i + 0.5): exact only while they stay below 1024.
            raise SpecError(f"enumerated sizes must stay within {MAX_ENUMERATED_SIDE} px a side (fp16 pixel "
                            "positions of the context upsample); export larger sizes as packages of their own")
        object.__setattr__(self, "sizes", sizes)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of the artifact's input tensor in its layout."""
        if self.layout == "NHWC":
            return (self.batch, self.height, self.width, 3)
        return (self.batch, 3, self.height, self.width)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """Shape of the artifact's output tensor in its layout."""
        h, w = self.height * self.scale, self.width * self.scale
        if self.layout == "NHWC":
            return (self.batch, h, w, 3)
        return (self.batch, 3, h, w)

    @property
    def torch_io_dtype(self) -> torch.dtype:
        """``io_dtype`` as a torch dtype."""
        return IO_DTYPES[self.io_dtype]

    @property
    def tag(self) -> str:
        """Short artifact suffix, e.g. ``xnnpack_fp32_180x320`` (batch only when > 1)."""
        parts = [self.backend, self.precision]
        if self.compression:
            parts.append(self.compression)
        parts.append(f"{self.height}x{self.width}")
        if len(self.sizes) > 1:
            parts.append(f"enum{len(self.sizes)}")
        if self.io != "tensor":
            parts.append(self.io)
        if self.deployment_target and self.deployment_target != DEFAULT_DEPLOYMENT_TARGET.get(self.backend):
            parts.append(self.deployment_target.lower())
        if self.batch > 1:
            parts.append(f"b{self.batch}")
        if self.layout != "NCHW":
            parts.append(self.layout.lower())
        if self.runtime != DEFAULT_RUNTIME[self.backend]:
            parts.insert(0, self.runtime)
        return "_".join(parts)

    def with_(self, **changes: Any) -> "ExportSpec":
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (stored in every contract)."""
        out = dataclasses.asdict(self)
        out["sizes"] = [list(s) for s in self.sizes]
        out["input_shape"] = list(self.input_shape)
        out["output_shape"] = list(self.output_shape)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExportSpec":
        """Inverse of :meth:`to_dict` (derived shape fields are ignored); :class:`SpecError` if malformed."""
        if not isinstance(data, dict):
            raise SpecError(f"spec must be an object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"input_shape", "output_shape"})
        if unknown:
            raise SpecError(f"spec has unknown fields {', '.join(unknown)}")
        fields = {k: v for k, v in data.items() if k in known}
        if "sizes" in fields:
            if not isinstance(fields["sizes"], list) or not all(isinstance(s, list) for s in fields["sizes"]):
                raise SpecError("spec.sizes must be a list of [height, width] pairs")
            fields["sizes"] = tuple(tuple(s) for s in fields["sizes"])
        return cls(**fields)

    def example_input(self) -> Tensor:
        """A constant input of the spec's shape and dtype, for tracing only (never for calibration)."""
        return torch.full(self.input_shape, 0.5, dtype=self.torch_io_dtype)

    def check_model(self, model: nn.Module) -> None:
        """Raise :class:`SpecError` when ``model`` (reference or deploy form) cannot take this spec."""
        cfg = getattr(model, "config", None)
        if cfg is None:
            return
        if cfg.scale != self.scale:
            raise SpecError(f"spec scale x{self.scale} does not match model {cfg.name}")
        smallest = cfg.min_input_size
        if self.height < smallest or self.width < smallest:
            raise SpecError(
                f"input {self.height}x{self.width} is too small for {cfg.name}: both sides must be >= {smallest}"
            )
