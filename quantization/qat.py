"""Quantize SeemoRe to INT8 with PT2E: PTQ baseline and quantization-aware training (QAT).

    python quantization/qat.py                                  # shipped seemore_t_x4, XNNPACK, QAT
    python quantization/qat.py --backend coreml --steps 200
    python quantization/qat.py --ptq-only --json runs/ptq.json
    python quantization/qat.py --model my.safetensors --out /tmp/q

Prints Set5/Set14 x4 PSNR/SSIM of FP32, PTQ INT8 and QAT INT8 and saves the INT8 program with
its contract into ``--out`` (default ``artifacts/quantization``), where
``python mobile/export_executorch.py`` finds it by the checkpoint's SHA-256. A thin CLI over
:mod:`seemore.quantize` (``seemore-qat``).
"""

from seemore.quantize.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
