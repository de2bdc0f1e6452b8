"""Export of SeemoRe to phone runtimes.

Every backend consumes one :class:`ExportSpec` and starts from :func:`export_program`
(the deploy-form graph at the spec's fixed shape); every artifact is written with a
sidecar JSON (:mod:`seemore.export.artifact`). Backend modules import their toolchain
lazily, so ``import seemore.export`` needs only torch.

* :mod:`seemore.export.spec` - the spec, size parsing, the shared capture step
* :mod:`seemore.export.artifact` - sidecar JSON and atomic artifact writing
* :mod:`seemore.export.calibration` - real images for calibration and checks
* :mod:`seemore.export.executorch_export` - XNNPACK FP32 / INT8 and Vulkan FP16 ``.pte``
"""

from seemore.export.artifact import build_sidecar, read_sidecar, sidecar_path, tool_versions, write_artifact
from seemore.export.spec import (
    DEFAULT_LR_HEIGHT,
    DEFAULT_LR_WIDTH,
    ExportSpec,
    SpecError,
    capture_for_quantization,
    export_program,
    parse_size,
)

__all__ = [
    "DEFAULT_LR_HEIGHT",
    "DEFAULT_LR_WIDTH",
    "ExportSpec",
    "SpecError",
    "build_sidecar",
    "capture_for_quantization",
    "export_program",
    "parse_size",
    "read_sidecar",
    "sidecar_path",
    "tool_versions",
    "write_artifact",
]
