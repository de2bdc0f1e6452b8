"""ONNX Runtime (CPU execution provider): the host benchmark's FP32 baseline."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from seemore.runtime.base import RunFn, RuntimeUnavailable


class OnnxRuntimeRunner:
    """Runner of ``.onnx`` files on ONNX Runtime's CPU provider."""

    runtime = "onnxruntime"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads if threads is not None else torch.get_num_threads()

    def available(self, path: Path | None = None) -> str | None:
        """``None`` when onnxruntime is importable."""
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed (pip install 'seemore-mobile[export]')"
        return None

    def load(self, path: Path) -> RunFn:
        """An inference session as a callable on one float tensor."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RuntimeUnavailable(f"{Path(path).name}: ONNX Runtime cannot load it ({type(exc).__name__})") from None
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.contiguous().numpy()})[0])

    def structure(self, path: Path) -> dict[str, Any]:
        """Op types of the ONNX graph; the CPU provider runs all of them (one partition)."""
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        ops = Counter(node.op_type for node in graph.node)

        def shape(value: Any) -> list[int]:
            return [d.dim_value for d in value.type.tensor_type.shape.dim]

        return {"partitions": 1, "ops_outside": 0, "backends": {"CPUExecutionProvider": 1}, "delegates": ["cpu"],
                "ops_outside_by_type": {}, "ops_by_type": dict(sorted(ops.items())),
                "input_shape": shape(graph.input[0]), "output_shape": shape(graph.output[0])}
