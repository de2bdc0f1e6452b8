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
        for name in ("height", "width", "batch", "scale"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(f"{name} must be a positive integer, got {value!r}")
        if self.scale not in SUPPORTED_SCALES:
            raise SpecError(f"scale must be one of {SUPPORTED_SCALES}, got {self.scale}")

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
        parts = [self.backend, self.precision, f"{self.height}x{self.width}"]
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
        return cls(**{k: v for k, v in data.items() if k in known})

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
