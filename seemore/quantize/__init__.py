"""INT8 quantization of SeemoRe with PT2E: PTQ, quantization-aware training, saved programs.

* :mod:`seemore.quantize.quantizers` - the PT2E quantizer of each backend (XNNPACK, Core ML, LiteRT)
* :mod:`seemore.quantize.recipe` - capture, PTQ calibration, QAT observers and fine-tuning
* :mod:`seemore.quantize.data` - real training images for calibration and QAT
* :mod:`seemore.quantize.programs` - saved programs with contracts, found by checkpoint hash
* :mod:`seemore.quantize.adjustments` - backend-specific adjustments of an INT8 reference
* :mod:`seemore.quantize.run` - one full run (``python quantization/qat.py``)
"""

from seemore.quantize.adjustments import adjust_reference, snap_biases_to_int32
from seemore.quantize.data import TrainingData, calibration_images, load_training_data, ptq_calibration_images
from seemore.quantize.programs import (
    DEFAULT_PROGRAM_DIR,
    PROGRAM_KIND,
    FoundProgram,
    check_program,
    find_program,
    load_program,
    program_name,
    qat_command,
    read_program,
    save_program,
)
from seemore.quantize.quantizers import (
    QUANT_BACKENDS,
    QuantizeError,
    backend_quantizer,
    float_module_names,
    quantizer_description,
    xnnpack_quantizer,
)
from seemore.quantize.recipe import (
    QATSettings,
    calibrate_qat_observers,
    capture,
    cosine_lr,
    evaluable,
    fake_quantizers,
    freeze_activation_ranges,
    prepare_qat,
    quantize_ptq,
    set_observers,
    train_qat,
)
from seemore.quantize.run import (
    EVAL_SETS,
    MAX_QAT_DROP_DB,
    QuantizationResult,
    evaluate_program,
    format_summary,
    run_quantization,
)

__all__ = [
    "DEFAULT_PROGRAM_DIR",
    "EVAL_SETS",
    "MAX_QAT_DROP_DB",
    "PROGRAM_KIND",
    "QUANT_BACKENDS",
    "FoundProgram",
    "QATSettings",
    "QuantizationResult",
    "QuantizeError",
    "TrainingData",
    "adjust_reference",
    "backend_quantizer",
    "calibrate_qat_observers",
    "calibration_images",
    "capture",
    "check_program",
    "cosine_lr",
    "evaluable",
    "evaluate_program",
    "fake_quantizers",
    "find_program",
    "float_module_names",
    "format_summary",
    "freeze_activation_ranges",
    "load_program",
    "load_training_data",
    "prepare_qat",
    "program_name",
    "ptq_calibration_images",
    "qat_command",
    "quantize_ptq",
    "quantizer_description",
    "read_program",
    "run_quantization",
    "save_program",
    "set_observers",
    "snap_biases_to_int32",
    "train_qat",
    "xnnpack_quantizer",
]
