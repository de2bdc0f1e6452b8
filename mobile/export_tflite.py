"""Export SeemoRe to LiteRT (TFLite): FP32, FP16-weight and INT8 ``.tflite`` files, NHWC I/O.

    python mobile/export_tflite.py                              # shipped seemore_t_x4: FP32, FP16, INT8
    python mobile/export_tflite.py --targets litert-int8 --int8-program my_program.pt2
    python mobile/export_tflite.py --layout NCHW --size 360x640 --out /tmp/tflite

Each ``.tflite`` is converted by litert-torch from the deploy form (INT8 from the program
``python quantization/qat.py --backend litert`` saved for this checkpoint, ``--int8-program``,
or PTQ), written with its contract (``<artifact>.json``), and run once in LiteRT's own
interpreter (``ai_edge_litert``, XNNPACK delegate) against its torch model. The contract's
``structure`` holds the op types, the largest tensor rank, the XNNPACK partitions and the
GPU-delegate verdict of LiteRT's analyzer. A thin CLI over :mod:`seemore.export`
(``seemore-export-tflite``).
"""

from seemore.export.cli import tflite_main

if __name__ == "__main__":
    raise SystemExit(tflite_main())
