"""Export of SeemoRe to phone runtimes: one driver, one module per runtime, targets as data.

* :mod:`seemore.export.targets` - the registry of targets (runtime, backend, precision, INT8 needs)
* :mod:`seemore.export.base` - the :class:`Exporter` protocol a runtime module implements
* :mod:`seemore.export.driver` - INT8 program selection, lowering, the check, atomic writing,
  the contract: the same for every target
* :mod:`seemore.export.executorch` - ExecuTorch ``.pte`` (XNNPACK FP32/INT8, Vulkan FP16/FP32)
* :mod:`seemore.export.onnx` - ONNX (the host benchmark's ONNX Runtime baseline)
* :mod:`seemore.export.calibration` - real images for the exporter's check

Runtime modules import their toolchain lazily, so ``import seemore.export`` needs only torch.
The export spec and contract live in :mod:`seemore.contract`.
"""

from seemore.contract import ExportSpec, SpecError
from seemore.export.base import Exporter, ExportError
from seemore.export.driver import ExportOptions, ExportResult, artifact_name, export_targets
from seemore.export.targets import DEFAULT_LAYOUTS, DEFAULT_TARGETS, TARGETS, Target, exporter_for, get_target, targets_for

__all__ = [
    "DEFAULT_LAYOUTS",
    "DEFAULT_TARGETS",
    "TARGETS",
    "ExportError",
    "ExportOptions",
    "ExportResult",
    "ExportSpec",
    "Exporter",
    "SpecError",
    "Target",
    "artifact_name",
    "export_targets",
    "exporter_for",
    "get_target",
    "targets_for",
]
