"""LiteRT ``.tflite`` files in LiteRT's own interpreter (``ai_edge_litert``), XNNPACK delegate applied.

:func:`tflite_structure` reads an artifact back: op types and counts and the largest tensor
rank (from the flatbuffer), XNNPACK partitions and the ops left outside them (the delegated
interpreter's node list, :func:`delegation`), and the GPU-delegate compatibility verdict of
LiteRT's model analyzer.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seemore.runtime.base import RunFn, RuntimeUnavailable
from seemore.toolchain_logs import quiet_fd2

# LiteRT's analyzer marks every op the GPU delegate would not take like this (tflite/python/analyzer).
_GPU_WARNING = "GPU COMPATIBILITY WARNING"


def _interpreter(path: Path, threads: int) -> Any:
    """A LiteRT interpreter of ``path`` with the XNNPACK delegate applied (as on a phone's CPU).

    Its native log ("Created TensorFlow Lite XNNPACK delegate for CPU.") is kept off the
    terminal, where a CLI's output and one-line errors go.
    """
    from ai_edge_litert.interpreter import Interpreter

    with quiet_fd2():
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeUnavailable(f"{Path(path).name}: LiteRT cannot load it ({first})") from None
    return interpreter


def _read_model(path: Path) -> Any:
    """The flatbuffer of a ``.tflite`` as the schema's object API (``ModelT``)."""
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    try:
        return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as exc:  # a corrupt flatbuffer raises whatever the generated code hits
        raise RuntimeUnavailable(
            f"{Path(path).name}: not a readable .tflite flatbuffer ({type(exc).__name__})") from None


def _op_names() -> dict[int, str]:
    """LiteRT's builtin operator codes by number (``BuiltinOperator`` of the schema)."""
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def gpu_compatibility(path: Path) -> dict[str, Any]:
    """LiteRT's own analyzer on ``path`` with the GPU-delegate check: verdict and the flagged lines."""
    from ai_edge_litert import _pywrap_analyzer_wrapper as analyzer

    text = analyzer.ModelAnalyzer(str(path), True, True)
    flagged = [line.strip() for line in text.splitlines() if _GPU_WARNING in line]
    return {"gpu_delegate": "compatible" if not flagged else "incompatible", "gpu_warnings": flagged,
            "gpu_checked_by": "ai_edge_litert analyzer (ModelAnalyzer, gpu_compatibility=True)"}


def _tensor_type(model: Any, index: int) -> dict[str, Any]:
    """A tensor's element type and, for an integer one, its (scale, zero point)."""
    from ai_edge_litert import schema_py_generated as schema

    tensor = model.subgraphs[0].tensors[index]
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    record: dict[str, Any] = {"dtype": names.get(tensor.type, str(tensor.type)).lower()}
    q = tensor.quantization
    if q is not None and q.scale is not None and len(q.scale):
        record["scale"] = float(q.scale[0])
        record["zero_point"] = int(q.zeroPoint[0])
    return record


def delegation(interpreter: Any) -> tuple[int, Counter[str]]:
    """XNNPACK partitions of an interpreter after delegation, and the op types left outside them.

    A delegated interpreter lists the model's ops followed by one ``DELEGATE`` node per partition
    (their inputs and outputs are the partition's). An op belongs to a partition when it lies on
    a path from the partition's outputs back to its inputs; every other op runs outside.
    """
    nodes = interpreter._get_ops_details()
    partitions = [n for n in nodes if n["op_name"] == "DELEGATE"]
    ops = [n for n in nodes if n["op_name"] != "DELEGATE"]
    producer = {int(t): n["index"] for n in ops for t in n["outputs"]}
    by_index = {n["index"]: n for n in ops}
    inside: set[int] = set()
    for part in partitions:
        stop = {int(t) for t in part["inputs"]}
        pending = [int(t) for t in part["outputs"]]
        while pending:
            tensor = pending.pop()
            if tensor in stop or tensor not in producer or producer[tensor] in inside:
                continue
            inside.add(producer[tensor])
            pending += [int(t) for t in by_index[producer[tensor]]["inputs"] if t >= 0]
    return len(partitions), Counter(n["op_name"] for n in ops if n["index"] not in inside)


def tflite_structure(path: Path, threads: int = 1) -> dict[str, Any]:
    """The runner protocol's structure keys for a ``.tflite`` (see :mod:`seemore.runtime.base`), plus
    ``ops_by_type``, ``max_tensor_rank``, ``tensors_above_rank_4``, the GPU verdict and the I/O shapes."""
    model = _read_model(path)
    names = _op_names()
    graph = model.subgraphs[0]
    ops = Counter(names.get(max(model.operatorCodes[op.opcodeIndex].builtinCode,
                                model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode), "CUSTOM")
                  for op in graph.operators)
    ranks = [len(t.shape) if t.shape is not None else 0 for t in graph.tensors]
    interpreter = _interpreter(path, threads)
    partitions, outside = delegation(interpreter)

    def shape(index: int) -> list[int]:
        return [int(d) for d in graph.tensors[index].shape]

    return {
        "partitions": partitions,
        "ops_outside": sum(outside.values()),
        "backends": {"XNNPACK": partitions} if partitions else {},
        "delegates": ["litert"] if partitions else [],  # the spec backend (LiteRT CPU: XNNPACK)
        "ops_outside_by_type": dict(sorted(outside.items())),
        "ops_by_type": dict(sorted(ops.items())),
        "ops_total": len(graph.operators),
        "max_tensor_rank": max(ranks, default=0),
        "tensors_above_rank_4": sum(r > 4 for r in ranks),
        "transposes": ops.get("TRANSPOSE", 0),
        **gpu_compatibility(path),
        "io_dtypes": {"input": _tensor_type(model, graph.inputs[0]), "output": _tensor_type(model, graph.outputs[0])},
        "input_shape": shape(graph.inputs[0]),
        "output_shape": shape(graph.outputs[0]),
    }


def to_input(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """A float array as the interpreter's input tensor wants it (quantized with its scale and
    zero point when the input is integer, as ``tf.lite`` apps do)."""
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
    return np.ascontiguousarray(x, dtype=dtype)


def from_output(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """The interpreter's output as float32 (dequantized with its scale and zero point when it is
    integer: litert-torch's INT8 conversion ends on the last ``quantize`` and leaves the output int8)."""
    if np.issubdtype(y.dtype, np.integer):
        scale, zero = detail["quantization"]
        return ((y.astype(np.float32) - zero) * np.float32(scale)).astype(np.float32)
    return np.array(y, dtype=np.float32)


class LiteRTRunner:
    """Runner of ``.tflite`` files in ``ai_edge_litert``'s interpreter (XNNPACK delegate, as on a phone's CPU)."""

    runtime = "litert"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads if threads is not None else torch.get_num_threads()

    def available(self, path: Path | None = None) -> str | None:
        """``None`` when ai-edge-litert is importable."""
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            return "ai-edge-litert is not installed (pip install 'seemore-mobile[export]')"
        return None

    def load(self, path: Path) -> RunFn:
        """The interpreter as a callable on one float tensor of the artifact's input shape."""
        interpreter = _interpreter(Path(path), self.threads)
        [inp] = interpreter.get_input_details()
        [out] = interpreter.get_output_details()

        def run(x: torch.Tensor) -> torch.Tensor:
            interpreter.set_tensor(inp["index"], to_input(x.detach().numpy(), inp))
            interpreter.invoke()
            return torch.from_numpy(from_output(interpreter.get_tensor(out["index"]), out))

        return run

    def structure(self, path: Path) -> dict[str, Any]:
        """Ops, ranks, partitions and GPU verdict read from the file (:func:`tflite_structure`)."""
        return tflite_structure(Path(path), self.threads)
