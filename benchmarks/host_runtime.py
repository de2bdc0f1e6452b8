"""Host latency of SeemoRe x4 at 180x320 -> 720x1280: eager PyTorch and every artifact, side by side.

    python benchmarks/host_runtime.py                      # shipped seemore_t_x4, 2 threads
    python benchmarks/host_runtime.py --runs 20 --threads 1
    python benchmarks/host_runtime.py --root artifacts/pipeline --json host_runtime.json

The artifacts (by default XNNPACK FP32/INT8 ``.pte`` and the ONNX Runtime FP32 baseline) are
found through their contracts under ``--root`` (made from this checkpoint at this size) or
exported first. Targets: INT8 ``.pte`` >= 5x eager FP32 and >= 2.5x ONNX Runtime FP32. A thin
CLI over :mod:`seemore.perf.host` (``seemore-host-bench``).
"""

from seemore.perf.host import main

if __name__ == "__main__":
    raise SystemExit(main())
