"""Export SeemoRe to Core ML for the Apple Neural Engine: FP16, W8A8 and weight-compressed packages.

    python mobile/export_coreml.py                            # shipped seemore_t_x4: FP16, W8A8, w8, lut6, .pte
    python mobile/export_coreml.py --image-io --targets coreml-fp16     # camera buffer in, image out
    python mobile/export_coreml.py --sizes 360x640 720x1280 --deployment-target iOS18

Each ``.mlpackage`` (ML program, fixed input size, iOS 17 by default) is written with its
contract (``<artifact>.json``) and carries the contract's key facts in its metadata. The
Core ML-delegated ``.pte`` (ExecuTorch's ``CoreMLPartitioner``) is written beside them. Core ML
prediction exists only on macOS: here each package's own MIL program is read back and evaluated
op by op (:mod:`seemore.runtime.mil`) against its torch model; ``python mobile/parity.py``
checks every package on Set5/Set14 the same way, and with Core ML itself on a Mac. W8A8 comes
from the program ``python quantization/qat.py --backend coreml`` saved for this checkpoint,
``--int8-program``, or PTQ. A thin CLI over :mod:`seemore.export` (``seemore-export-coreml``).
"""

from seemore.export.cli import coreml_main

if __name__ == "__main__":
    raise SystemExit(coreml_main())
