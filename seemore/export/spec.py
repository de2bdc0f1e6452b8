"""The export contract shared by every backend: one :class:`ExportSpec`, one capture step.

An exporter (ExecuTorch here; Core ML and LiteRT later) receives a model and an
``ExportSpec`` and starts from :func:`export_program`, so every artifact is built from
the same deploy-form graph with the same fixed input shape.

Default input size: 180x320 LR (H x W). At x4 that is 720x1280, the 720p frame that
phone screens and video use, and the size at which the paper (and SEEMORE.md) quotes
MACs, so artifact timings compare directly with the published 11.93 GMAC of SeemoRe-T.
Mobile delegates plan memory and pick kernels for a fixed shape (Core ML's ANE even
refuses flexible shapes), so an artifact has one input size; larger images are tiled in
180x320 pieces and smaller ones padded by the caller.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.export import Dim, ExportedProgram

from seemore.config import SUPPORTED_SCALES
from seemore.deploy import DeploySeemoRe
from seemore.model import SeemoRe

BACKENDS: tuple[str, ...] = ("xnnpack", "vulkan", "coreml", "litert")
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
LAYOUTS: tuple[str, ...] = ("NCHW", "NHWC")
IO_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16}
DEFAULT_LR_HEIGHT = 180
DEFAULT_LR_WIDTH = 320


class SpecError(ValueError):
    """An export spec that cannot be built or does not fit the model; one-line message."""


@dataclass(frozen=True)
class ExportSpec:
    """What an artifact is built for: fixed LR input shape, layout, precision, backend.

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

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise SpecError(f"unknown backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise SpecError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.layout not in LAYOUTS:
            raise SpecError(f"unknown layout {self.layout!r}; choose from {', '.join(LAYOUTS)}")
        if self.io_dtype not in IO_DTYPES:
            raise SpecError(f"unknown io_dtype {self.io_dtype!r}; choose from {', '.join(IO_DTYPES)}")
        if self.scale not in SUPPORTED_SCALES:
            raise SpecError(f"scale must be one of {SUPPORTED_SCALES}, got {self.scale}")
        for name in ("height", "width", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(f"{name} must be a positive integer, got {value!r}")

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
        return "_".join(parts)

    def with_(self, **changes: Any) -> "ExportSpec":
        """A copy with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (stored in every sidecar)."""
        out = dataclasses.asdict(self)
        out["input_shape"] = list(self.input_shape)
        out["output_shape"] = list(self.output_shape)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExportSpec":
        """Inverse of :meth:`to_dict` (derived shape fields are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
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


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (e.g. ``180x320``) into ``(H, W)``; :class:`SpecError` otherwise."""
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise SpecError(f"size must look like HxW (e.g. 180x320), got {text!r}")
    h, w = int(parts[0]), int(parts[1])
    if h < 1 or w < 1:
        raise SpecError(f"size must be positive, got {text!r}")
    return h, w


class ChannelsLastIO(nn.Module):
    """Wrap an NCHW model so that it takes and returns NHWC tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def deploy_form(model: nn.Module) -> nn.Module:
    """The module to export: a reference :class:`SeemoRe` becomes :class:`DeploySeemoRe`.

    Other modules (a deploy model, a quantized GraphModule from ``convert_pt2e``) are
    returned unchanged.
    """
    if isinstance(model, SeemoRe):
        return DeploySeemoRe.from_reference(model)
    return model


def export_program(model: nn.Module, spec: ExportSpec) -> ExportedProgram:
    """Capture ``model`` for ``spec``: deploy form, eval mode, fixed input shape and dtype.

    This is the first step of every backend. The result has the spec's static input
    shape; NHWC specs get a permute on each side, which delegates fuse into their
    layout handling.
    """
    spec.check_model(model)
    module = deploy_form(model)
    if not isinstance(module, torch.fx.GraphModule):
        module = module.eval()
        if spec.torch_io_dtype != torch.float32:
            # A copy: the caller's model keeps its dtype.
            module = copy.deepcopy(module).to(spec.torch_io_dtype)
    if spec.layout == "NHWC":
        module = ChannelsLastIO(module)
    with torch.no_grad():
        return torch.export.export(module, (spec.example_input(),), strict=False)


def capture_for_quantization(model: nn.Module, spec: ExportSpec) -> torch.fx.GraphModule:
    """Export the deploy form with dynamic batch, height and width, ready for ``prepare_pt2e``.

    Calibration (and QAT) then runs on real images of any size and any batch; the
    converted model is exported again at the spec's fixed shape by the lowering step.
    Height and width must be at least twice the model's minimum input size: below that
    the stride-4 context branch shrinks to one pixel and export specialises the graph.
    """
    spec.check_model(model)
    module = deploy_form(model).eval()
    cfg = getattr(module, "config", None)
    smallest = 2 * (cfg.min_input_size if cfg is not None else 16)
    example = torch.full((2, 3, max(smallest, 32), max(smallest, 32)), 0.5)
    dims = {
        0: Dim("batch", min=1, max=1024),
        2: Dim("height", min=smallest, max=8192),
        3: Dim("width", min=smallest, max=8192),
    }
    return torch.export.export(module, (example,), dynamic_shapes=({**dims},), strict=False).module()
