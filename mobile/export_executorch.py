"""Export SeemoRe to ExecuTorch ``.pte`` files: XNNPACK FP32, XNNPACK INT8 and Vulkan FP16.

    python mobile/export_executorch.py                         # shipped seemore_t_x4, all three
    python mobile/export_executorch.py --model my.safetensors --targets xnnpack-fp32
    python mobile/export_executorch.py --size 360x640 --layout NHWC --out /tmp/pte

Each ``.pte`` is written with its contract (``<artifact>.json``: spec, I/O, tiling rule, source
checkpoint SHA-256, quantization, structure, check) into ``--out``. The XNNPACK files are run
once in ``executorch.runtime`` on a real image against their torch model and judged by the
parity bound of their backend and precision; Vulkan files cannot run on this host (no Vulkan
backend in the pip runtime): a torch FP16 simulation on a real crop stands in. INT8 comes from
the program ``python quantization/qat.py`` saved for this checkpoint (found by its SHA-256),
``--int8-program``, or PTQ. A thin CLI over :mod:`seemore.export` (``seemore-export-executorch``).
"""

from seemore.export.cli import executorch_main

if __name__ == "__main__":
    raise SystemExit(executorch_main())
