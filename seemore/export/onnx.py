"""ONNX exporter (``torch.onnx.export``, dynamo): the ONNX Runtime FP32 baseline of the host benchmark."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seemore.contract.spec import ExportSpec
from seemore.deploy.capture import io_module
from seemore.export.base import ExportError
from seemore.toolchain_logs import quiet_info_logs


class OnnxExporter:
    """The :class:`~seemore.export.base.Exporter` of ``.onnx`` files (weights embedded)."""

    runtime = "onnxruntime"
    suffix = ".onnx"
    directory = False

    def available(self) -> str | None:
        """``None`` when the dynamo ONNX exporter (onnxscript) and onnx are importable."""
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as exc:
            return f"{exc.name} is not installed (pip install 'seemore-mobile[export]')"
        return None

    def lower(self, model: nn.Module, spec: ExportSpec) -> Any:
        """The ONNX program of ``model`` at the spec's fixed shape."""
        if spec.precision != "fp32":
            raise ExportError("the ONNX baseline is FP32 only")
        spec.check_model(model)
        module = io_module(model, spec)
        # The dynamo exporter prints its progress to stdout; the CLI's table is what goes there.
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), quiet_info_logs():
            return torch.onnx.export(module, (spec.example_input(),), dynamo=True, external_data=False)

    def serialize(self, lowered: Any, path: Path) -> None:
        """Write the ``.onnx`` file (one file, weights inside)."""
        with contextlib.redirect_stdout(io.StringIO()), quiet_info_logs():
            lowered.save(str(path), external_data=False)

    def structure(self, lowered: Any, path: Path) -> dict[str, Any]:
        """Op types of the graph; the CPU provider runs every op (one partition)."""
        from seemore.runtime.onnx import OnnxRuntimeRunner

        return OnnxRuntimeRunner().structure(path)
