"""Performance measurement of artifacts.

* :mod:`seemore.perf.host` - host latency of every artifact of a checkpoint, side by side with
  eager PyTorch (``benchmarks/host_runtime.py``)
"""
