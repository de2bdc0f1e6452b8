"""LiteRT (TFLite) exporter: ``.tflite`` files in FP32, FP16 weights and INT8, through litert-torch.

Stages: the deploy form (or the INT8 PT2E program made with litert-torch's ``PT2EQuantizer``)
with the spec's I/O layout (NHWC by default for LiteRT: what Android bitmaps and the GPU delegate
want; :class:`~seemore.deploy.capture.ChannelsLastIO`) is converted by ``litert_torch.convert``
at the spec's fixed shape.

* ``fp32``: float weights and arithmetic (LiteRT's CPU path, XNNPACK).
* ``fp16``: the FP32 model with its conv / fully-connected weights stored as fp16 and one
  ``DEQUANTIZE`` each (ai-edge-quantizer's ``float_casting``): half the size, and the GPU
  delegate reads the fp16 weights directly and computes in fp16; the CPU path dequantizes once at
  load and computes in fp32.
* ``int8``: static int8 activations and per-channel int8 weights from the program's q/dq pairs
  (litert-torch's ``STATIC`` q/dq conversion).

litert-torch 0.10 already decomposes ``pixel_shuffle`` into rank-4 reshapes and transposes, and
the deploy form has folded the channel shuffle into its conv, so no tensor above rank 4 is left
(:func:`seemore.runtime.litert.tflite_structure` reports the largest rank of every artifact).
Two exact rewrites of the converted file (:mod:`seemore.export.tflite_graph`) then make it one
XNNPACK partition with no layout transposes: the pixel shuffle's reshape/transpose chain becomes
one ``DEPTH_TO_SPACE`` (the upsampler conv's channels reordered), and each int8 ``GELU``, which
LiteRT's XNNPACK delegate does not take, becomes ``DEQUANTIZE -> GELU -> QUANTIZE``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seemore.contract.spec import ExportSpec
from seemore.deploy.capture import io_module
from seemore.export.base import ExportError
from seemore.export.tflite_graph import depth_to_space, float_gelu
from seemore.toolchain_logs import quiet_fd2, quiet_info_logs, quiet_stderr


@contextlib.contextmanager
def _restoring(config: Any, show_progress: bool) -> Iterator[None]:
    """Put litert-torch's ``show_progress`` back on the way out."""
    try:
        yield
    finally:
        config.show_progress = show_progress


def fp16_weights(tflite: bytes) -> bytes:
    """``tflite`` with the weights of its conv and fully-connected ops stored in fp16 (float casting)."""
    from ai_edge_quantizer import qtyping, quantizer

    config = qtyping.OpQuantizationConfig(
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=16, dtype=qtyping.TensorDataType.FLOAT),
        compute_precision=qtyping.ComputePrecision.FLOAT,
        explicit_dequantize=True,
    )
    qt = quantizer.Quantizer(bytearray(tflite))
    qt.update_quantization_recipe(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                  op_config=config, algorithm_key="float_casting")
    result = qt.quantize(enable_progress_bar=False, enable_progress_report=False)
    return bytes(result.quantized_model)


def unfold_weight_quantize(program: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of a converted PT2E program with each folded int8 weight back as float + ``quantize``.

    ``convert_pt2e`` folds every weight's ``quantize`` into an int8 constant that feeds its
    ``dequantize``; litert-torch's q/dq conversion wants the float weight with both ops (as
    ``convert_pt2e(..., fold_quantize=False)`` leaves it). The float weight is the dequantized
    int8 one (``q * scale`` is exact in fp32), so quantizing it again gives the same int8
    values: the program computes exactly what it did.
    """
    import copy

    qd = torch.ops.quantized_decomposed
    pairs = {qd.dequantize_per_channel.default: qd.quantize_per_channel.default,
             qd.dequantize_per_tensor.default: qd.quantize_per_tensor.default}
    program = copy.deepcopy(program)
    graph = program.graph
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in pairs:
            continue
        source = node.args[0]
        if not (isinstance(source, torch.fx.Node) and source.op == "get_attr"):
            continue
        stored = getattr(program, source.target)
        if stored.dtype not in (torch.int8, torch.uint8):
            continue
        args = [getattr(program, a.target) if isinstance(a, torch.fx.Node) and a.op == "get_attr" else a
                for a in node.args]
        setattr(program, source.target, node.target(*args))  # float weight = dequantize(int8 weight)
        with graph.inserting_before(node):
            quantized = graph.call_function(pairs[node.target], (source, *node.args[1:]), dict(node.kwargs))
        node.replace_input_with(source, quantized)
    graph.lint()
    program.recompile()
    return program


class LiteRTExporter:
    """The :class:`~seemore.export.base.Exporter` of ``.tflite`` files."""

    runtime = "litert"
    suffix = ".tflite"
    directory = False

    def available(self) -> str | None:
        """``None`` when litert-torch, ai-edge-litert and ai-edge-quantizer are importable."""
        for module in ("litert_torch", "ai_edge_litert.interpreter", "ai_edge_quantizer"):
            try:
                with quiet_info_logs(), quiet_stderr():
                    __import__(module)
            except ImportError as exc:
                return f"{exc.name or module} is not installed (pip install 'seemore-mobile[export]')"
        return None

    def lower(self, model: nn.Module, spec: ExportSpec) -> Any:
        """The ``.tflite`` bytes of ``model`` at the spec's fixed shape and layout."""
        import litert_torch

        if spec.precision == "int8" and not isinstance(model, torch.fx.GraphModule):
            raise ExportError("an int8 spec needs a quantized (convert_pt2e) program")
        if spec.precision not in ("fp32", "fp16", "int8"):
            raise ExportError(f"LiteRT exports fp32, fp16 and int8, not {spec.precision}")
        spec.check_model(model)
        if isinstance(model, torch.fx.GraphModule):
            model = unfold_weight_quantize(model)
        module = io_module(model, spec)
        kwargs: dict[str, Any] = {}
        if spec.precision == "int8":
            from litert_torch.quantize.quant_config import QuantConfig

            from seemore.quantize import backend_quantizer

            kwargs["quant_config"] = QuantConfig(pt2e_quantizer=backend_quantizer("litert", is_qat=False))
        from litert_torch import config as litert_config

        # The I/O wrapper's own flag (its contents are in eval mode already; litert-torch warns on
        # a module in training mode, and a PT2E program refuses a recursive eval()).
        module.training = False
        # litert-torch prints each conversion stage to stdout; the CLI's table is what goes there.
        show_progress, litert_config.show_progress = litert_config.show_progress, False
        # The converter's C++ logs ("Estimated count of arithmetic ops") and ai-edge-quantizer's
        # tqdm bar go to file descriptor 2: the CLI's progress bar and errors are what belong there.
        with torch.no_grad(), quiet_info_logs(), quiet_fd2(), _restoring(litert_config, show_progress):
            converted = litert_torch.convert(module, (spec.example_input(),), **kwargs)
            data = bytes(converted.model_content())
            # Exact graph rewrites for LiteRT's XNNPACK delegate (seemore.export.tflite_graph),
            # before the fp16 casting, which turns the conv weights into DEQUANTIZE outputs.
            data, shuffles = depth_to_space(data)
            data, gelus = float_gelu(data)
            if spec.precision == "fp16":
                data = fp16_weights(data)
        return {"bytes": data, "rewrites": {"depth_to_space": shuffles, "float_gelu": gelus}}

    def serialize(self, lowered: Any, path: Path) -> None:
        """Write the ``.tflite`` bytes to ``path``."""
        Path(path).write_bytes(lowered["bytes"])

    def structure(self, lowered: Any, path: Path) -> dict[str, Any]:
        """Ops, tensor ranks, XNNPACK partitions and the GPU-delegate verdict, read from the written file."""
        from seemore.runtime.litert import tflite_structure

        return {**tflite_structure(path), "rewrites": dict(lowered["rewrites"])}
