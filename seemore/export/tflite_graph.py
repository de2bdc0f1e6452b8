"""Exact rewrites of a converted ``.tflite`` graph, so that LiteRT's XNNPACK delegate takes it whole.

litert-torch's output has two things a phone's CPU path pays for:

* **int8 GELU**: the converter folds the program's ``dequantize -> gelu -> quantize`` into one
  int8 ``GELU`` (a lookup-table kernel), which LiteRT's XNNPACK delegate does not take: every one
  is an op outside XNNPACK and splits the graph (37 partitions in SeemoRe-T at full size).
  :func:`float_gelu` writes each back as what the program computes, ``DEQUANTIZE -> GELU (fp32)
  -> QUANTIZE``, which XNNPACK runs inside its one partition.
* **the pixel shuffle**: PyTorch's NCHW ``pixel_shuffle`` becomes a chain of ``RESHAPE`` /
  ``TRANSPOSE`` ops (four transposes with NHWC I/O). :func:`depth_to_space` replaces the chain
  with one ``DEPTH_TO_SPACE`` and reorders the producing conv's output channels to match.

Both are checked rather than assumed: the shuffle chain's data movement is simulated on an index
array and replaced only when it is a depth-to-space up to a channel permutation; the
exporter's export check and parity then compare the rewritten file against eager PyTorch or
the program, as for any artifact.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seemore.export.base import ExportError


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _read(data: bytes) -> Any:
    return _schema().ModelT.InitFromPackedBuf(bytearray(data), 0)


def _write(model: Any, size_hint: int) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(size_hint + 65536)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _opcode(model: Any, builtin: int) -> int:
    """The index of ``builtin`` in the model's operator codes, added when it is not there yet."""
    schema = _schema()
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    # Codes above 127 live only in ``builtinCode``; the deprecated int8 field holds the placeholder.
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _builtin(model: Any, op: Any) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _float_twin(subgraph: Any, index: int, suffix: str) -> int:
    """A new fp32 activation tensor with the shape of tensor ``index``; its index."""
    schema = _schema()
    source = subgraph.tensors[index]
    tensor = schema.TensorT()
    tensor.shape = list(source.shape)
    tensor.type = schema.TensorType.FLOAT32
    tensor.buffer = 0  # buffer 0 is the schema's empty sentinel: a runtime-computed tensor
    name = source.name.decode() if isinstance(source.name, bytes) else str(source.name)
    tensor.name = f"{name}/{suffix}"
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def float_gelu(data: bytes) -> tuple[bytes, int]:
    """``data`` with every int8 ``GELU`` as ``DEQUANTIZE -> GELU (fp32) -> QUANTIZE``; and how many.

    The program these files come from computes exactly this (its GELU runs on dequantized values
    and its output is quantized again); the int8 kernel tabulates the same function, so the two
    differ at most where the table and XNNPACK round a tie differently.
    """
    schema = _schema()
    model = _read(data)
    dequantize = _opcode(model, schema.BuiltinOperator.DEQUANTIZE)
    quantize = _opcode(model, schema.BuiltinOperator.QUANTIZE)
    rewritten = 0
    for subgraph in model.subgraphs:
        operators = []
        for op in subgraph.operators:
            if _builtin(model, op) != schema.BuiltinOperator.GELU \
                    or subgraph.tensors[op.inputs[0]].type != schema.TensorType.INT8:
                operators.append(op)
                continue
            float_in = _float_twin(subgraph, op.inputs[0], "dequantized")
            float_out = _float_twin(subgraph, op.outputs[0], "float")
            to_float, to_int8 = schema.OperatorT(), schema.OperatorT()
            to_float.opcodeIndex, to_float.inputs, to_float.outputs = dequantize, [op.inputs[0]], [float_in]
            to_int8.opcodeIndex, to_int8.inputs, to_int8.outputs = quantize, [float_out], [op.outputs[0]]
            op.inputs, op.outputs = [float_in], [float_out]
            operators += [to_float, op, to_int8]  # execution order is list order
            rewritten += 1
        subgraph.operators = operators
    if not rewritten:
        return data, 0
    return _write(model, len(data)), rewritten


def _constant(model: Any, subgraph: Any, index: int) -> np.ndarray | None:
    """The int32 contents of constant tensor ``index`` (a reshape's shape, a transpose's perm)."""
    raw = model.buffers[subgraph.tensors[index].buffer].data
    if raw is None or len(raw) == 0:
        return None
    return np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes(), dtype=np.int32)


def _simulate(model: Any, subgraph: Any, chain: list[Any], values: np.ndarray) -> np.ndarray | None:
    """``values`` moved by ``chain`` (RESHAPE / TRANSPOSE ops), or ``None`` if one is not constant."""
    schema = _schema()
    for op in chain:
        if _builtin(model, op) == schema.BuiltinOperator.TRANSPOSE:
            perm = _constant(model, subgraph, op.inputs[1])
            if perm is None:
                return None
            values = values.transpose(tuple(int(p) for p in perm))
        else:
            values = values.reshape([int(d) for d in subgraph.tensors[op.outputs[0]].shape])
    return values


def _consumers(subgraph: Any) -> dict[int, list[Any]]:
    readers: dict[int, list[Any]] = {}
    for op in subgraph.operators:
        for index in op.inputs:
            if index >= 0:
                readers.setdefault(index, []).append(op)
    return readers


def _reorder_rows(model: Any, subgraph: Any, index: int, order: np.ndarray) -> None:
    """Permute constant tensor ``index`` along axis 0 (its data and per-channel quantization)."""
    tensor = subgraph.tensors[index]
    users = [t for t in subgraph.tensors if t.buffer == tensor.buffer]
    if len(users) != 1:
        raise ExportError("the pixel-shuffle conv shares a weight buffer; cannot reorder its channels")
    buffer = model.buffers[tensor.buffer]
    types = _schema().TensorType
    dtype = {types.FLOAT32: np.float32, types.FLOAT16: np.float16, types.INT32: np.int32,
             types.INT8: np.int8, types.UINT8: np.uint8}.get(tensor.type)
    if dtype is None or buffer.data is None:
        raise ExportError("the pixel-shuffle conv's weights are not a constant of a known type")
    shape = [int(d) for d in tensor.shape]
    values = np.frombuffer(np.asarray(buffer.data, dtype=np.uint8).tobytes(), dtype=dtype).reshape(shape)
    buffer.data = np.frombuffer(np.ascontiguousarray(values[order]).tobytes(), dtype=np.uint8)
    q = tensor.quantization
    if q is not None and q.scale is not None and len(q.scale) == shape[0] > 1:
        if q.quantizedDimension != 0:
            raise ExportError("the pixel-shuffle conv's weights are quantized along an unexpected axis")
        q.scale = np.asarray(q.scale)[order]
        if q.zeroPoint is not None and len(q.zeroPoint) == shape[0]:
            q.zeroPoint = np.asarray(q.zeroPoint)[order]


def depth_to_space(data: bytes) -> tuple[bytes, int]:
    """``data`` with each conv + pixel-shuffle chain as the conv (channels reordered) + ``DEPTH_TO_SPACE``.

    A chain is the run of single-reader ``RESHAPE`` / ``TRANSPOSE`` ops after a ``CONV_2D``'s
    NHWC output ``[B, H, W, r*r*C]`` that ends in ``[B, H*r, W*r, C]``. Its effect is simulated on
    the index array of the conv output; when that equals ``DEPTH_TO_SPACE(block r)`` after some
    permutation of the conv's output channels, the conv's weight rows, bias and per-channel
    quantization are permuted by it (a conv with reordered output channels computes the same
    values in the new order) and the chain becomes one op. Returns the data and how many chains.
    """
    schema = _schema()
    model = _read(data)
    op_code = schema.BuiltinOperator
    movers = (op_code.RESHAPE, op_code.TRANSPOSE)
    rewritten = 0
    for subgraph in model.subgraphs:
        readers = _consumers(subgraph)
        outputs = set(subgraph.outputs)
        for conv in list(subgraph.operators):
            if _builtin(model, conv) != op_code.CONV_2D:
                continue
            shape = [int(d) for d in subgraph.tensors[conv.outputs[0]].shape]
            if len(shape) != 4:
                continue
            chain, tensor = [], conv.outputs[0]
            while tensor not in outputs and len(readers.get(tensor, [])) == 1 \
                    and _builtin(model, readers[tensor][0]) in movers:
                chain.append(readers[tensor][0])
                tensor = chain[-1].outputs[0]
            if len(chain) < 2:
                continue
            b, h, w, c = shape
            end = [int(d) for d in subgraph.tensors[tensor].shape]
            if len(end) != 4 or end[0] != b or end[1] % h or end[1] // h != end[2] // w or end[2] % w:
                continue
            r = end[1] // h
            if r < 2 or c != r * r * end[3]:
                continue
            moved = _simulate(model, subgraph, chain, np.arange(b * h * w * c).reshape(shape))
            if moved is None:
                continue
            # DEPTH_TO_SPACE reads out[b, h*r + i, w*r + j, k] from in[b, h, w, (i*r + j)*C + k]:
            # the channel it reads there, per output channel index, is the new conv's order.
            source = moved.reshape(b, h, r, w, r, end[3]).transpose(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
            order = source % c
            if not (source // c == np.arange(b * h * w).reshape(b, h, w, 1)).all() \
                    or not (order == order[0, 0, 0]).all() or sorted(order[0, 0, 0]) != list(range(c)):
                continue  # not a depth-to-space of the conv's channels
            order = order[0, 0, 0]
            _reorder_rows(model, subgraph, conv.inputs[1], order)
            if len(conv.inputs) > 2 and conv.inputs[2] >= 0:
                _reorder_rows(model, subgraph, conv.inputs[2], order)
            d2s = schema.OperatorT()
            d2s.opcodeIndex = _opcode(model, op_code.DEPTH_TO_SPACE)
            d2s.builtinOptionsType = schema.BuiltinOptions.DepthToSpaceOptions
            d2s.builtinOptions = schema.DepthToSpaceOptionsT()
            d2s.builtinOptions.blockSize = r
            d2s.inputs, d2s.outputs = [conv.outputs[0]], [tensor]
            # The chain reads only the conv's output (its shapes and perms are constants), so its
            # first op's place in the execution order is a valid place for the one op.
            position = subgraph.operators.index(chain[0])
            subgraph.operators = [o for o in subgraph.operators if all(o is not m for m in chain)]
            subgraph.operators.insert(position, d2s)
            rewritten += 1
    if not rewritten:
        return data, 0
    return _write(model, len(data)), rewritten
