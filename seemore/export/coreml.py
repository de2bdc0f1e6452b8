"""Core ML exporter: ML program ``.mlpackage`` files for the Apple Neural Engine.

Stages: the deploy form (or the W8A8 PT2E program) is captured with ``torch.export`` at the
spec's fixed shape (dynamic height and width when the spec enumerates sizes), decomposed to the
core ATen opset (``run_decompositions({})``: coremltools 9 rejects the training dialect), and
converted by ``coremltools.convert`` into an ML program with FP16 compute, for iOS 17 (or 18).

* Precisions: ``fp16`` (weights and activations in fp16, the Neural Engine's arithmetic),
  ``int8`` (W8A8 from a PT2E program made with ExecuTorch's ``CoreMLQuantizer``: its
  quantize/dequantize pairs become MIL ``quantize``/``dequantize`` and its int8 weights
  ``constexpr`` dequantization), and weight-compressed fp16 (``compression``: ``w8`` int8
  per-channel weights, ``lut6`` 6-bit k-means palettized weights) through
  ``coremltools.optimize.coreml``, which runs on Linux.
* Shapes: one fixed input size (flexible ranges fall off the Neural Engine), or a few
  enumerated ones (``spec.sizes``, ``ct.EnumeratedShapes``), the spec's size the default.
* I/O: tensors (``lr`` in, ``sr`` out, float32 NCHW in [0, 1]) or, with ``io = "image"``, Core ML
  image types: RGB in with scale 1/255 (an app passes its camera or photo buffer), RGB out. An
  image output needs scale 1 and bias 0, so the model itself scales its output to [0, 255] and
  clamps (:class:`ImageRange`).
* Metadata: description, author, license, version, I/O descriptions and the contract's key
  facts in ``user_defined_metadata`` (:meth:`CoreMLExporter.annotate`), so an app can read what
  it needs from the package alone.

The Core ML-delegated ``.pte`` (ExecuTorch's ``CoreMLPartitioner``) is the ExecuTorch exporter's
(:mod:`seemore.export.executorch`): one backend, one module per file format.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.export import Dim

from seemore.contract.spec import ExportSpec
from seemore.deploy.capture import io_module
from seemore.export.base import ExportError
from seemore.toolchain_logs import quiet_info_logs, quiet_stderr

AUTHOR = "seemore-mobile (SeemoRe: Zamfir et al., ICML 2024)"
LICENSE = "Apache-2.0"
# Weights with fewer elements than this stay fp16 in the compressed variants. coremltools'
# default (2048) would leave most of SeemoRe-T's 1x1 convs (36x36 = 1296 weights) uncompressed;
# the smallest tensors left are per-channel vectors and the fixed 1/C averaging kernels.
COMPRESS_MIN_ELEMENTS = 256
# coremltools' pass that rewrites dequantize(x, s_x) + dequantize(y, s_y) -> quantize(s_z) as
# dequantize(x, s_x/s_y) + dequantize(y, 1) -> quantize(s_z/s_y) (one scale fewer for a backend
# kernel) is exact in fp32 but not in an fp16 program: where s_y is tiny (a near-constant
# branch of SeemoRe's residual adds, s_y ~ 1e-5) the rescaled sum reaches ~1.8e5, beyond fp16's
# 65504, and saturates. Measured on the QAT program: with the pass, the FP16 package evaluates
# to 36-40 dB against its program and drops Set5 by 0.8 dB; without it, at the program's floor.
FP16_UNSAFE_PASSES = ("common::distributive_quantized_binary_op_scale_normalization",)


class ImageRange(nn.Module):
    """The model with its output in [0, 255], clamped: what a Core ML image output (scale 1, bias 0) needs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(self.model(x) * 255.0, 0.0, 255.0)


def deployment_target(ct: Any, name: str) -> Any:
    """``ct.target.iOS17`` / ``iOS18`` by the spec's name."""
    return {"iOS17": ct.target.iOS17, "iOS18": ct.target.iOS18}[name]


def capture(model: nn.Module, spec: ExportSpec) -> torch.export.ExportedProgram:
    """``torch.export`` of what the package computes, in the core ATen opset coremltools converts.

    With enumerated sizes the height and width are dynamic (between the smallest and the
    largest enumerated side), so one program serves every enumerated shape.
    """
    spec.check_model(model)
    module = io_module(model, spec.with_(io="tensor") if spec.io == "image" else spec)
    if spec.io == "image":
        module = ImageRange(module)
    example = spec.example_input()
    dynamic = None
    if len(spec.sizes) > 1:
        heights, widths = [h for h, _ in spec.sizes], [w for _, w in spec.sizes]
        dynamic = ({2: Dim("height", min=min(heights), max=max(heights)),
                    3: Dim("width", min=min(widths), max=max(widths))},)
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=dynamic, strict=False)
        return program.run_decompositions({})


def pass_pipeline(ct: Any) -> Any:
    """coremltools' default pass pipeline without the passes that are unsafe in fp16 (:data:`FP16_UNSAFE_PASSES`)."""
    pipeline = ct.PassPipeline.DEFAULT
    pipeline.remove_passes(set(FP16_UNSAFE_PASSES))
    return pipeline


def io_types(ct: Any, spec: ExportSpec) -> tuple[list[Any], list[Any]]:
    """coremltools input and output types of ``spec`` (tensor or image, fixed or enumerated shape)."""
    shape: Any = spec.input_shape
    if len(spec.sizes) > 1:
        shapes = [(spec.batch, 3, h, w) for h, w in spec.sizes]
        shape = ct.EnumeratedShapes(shapes=shapes, default=spec.input_shape)
    if spec.io == "image":
        inputs = [ct.ImageType(name="lr", shape=shape, scale=1.0 / 255.0, color_layout=ct.colorlayout.RGB)]
        outputs = [ct.ImageType(name="sr", color_layout=ct.colorlayout.RGB)]
    else:
        inputs = [ct.TensorType(name="lr", shape=shape)]
        outputs = [ct.TensorType(name="sr")]
    return inputs, outputs


def compress(ct: Any, mlmodel: Any, compression: str) -> Any:
    """Weight compression of an FP16 package: int8 per-channel (``w8``) or k-means LUT (``lutN``)."""
    from coremltools.optimize import coreml as cto

    if compression == "w8":
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel",
                                         weight_threshold=COMPRESS_MIN_ELEMENTS)
        return cto.linear_quantize_weights(mlmodel, config=cto.OptimizationConfig(global_config=op))
    if compression.startswith("lut"):
        try:
            import sklearn.cluster  # noqa: F401  (coremltools' k-means)
        except ImportError:
            raise ExportError("palettization needs scikit-learn (pip install 'seemore-mobile[export]')") from None
        op = cto.OpPalettizerConfig(mode="kmeans", nbits=int(compression[3:]), granularity="per_tensor",
                                    weight_threshold=COMPRESS_MIN_ELEMENTS)
        return cto.palettize_weights(mlmodel, config=cto.OptimizationConfig(global_config=op))
    raise ExportError(f"unknown weight compression {compression!r}")


def precision_words(spec: ExportSpec) -> str:
    """How the package computes, in words (its short description)."""
    if spec.precision == "int8":
        return "W8A8: int8 weights and 8-bit activations (PT2E CoreMLQuantizer), fp16 elsewhere"
    words = {"": "FP16 weights and activations", "w8": "int8 per-channel weights, FP16 activations",
             "lut6": "6-bit palettized weights, FP16 activations"}
    return words[spec.compression]


class CoreMLExporter:
    """The :class:`~seemore.export.base.Exporter` of ``.mlpackage`` directories."""

    runtime = "coreml"
    suffix = ".mlpackage"
    directory = True

    def available(self) -> str | None:
        """``None`` when coremltools is importable."""
        try:
            from seemore.toolchain_logs import import_coremltools

            import_coremltools()
        except ImportError:
            return "coremltools is not installed (pip install 'seemore-mobile[export]')"
        return None

    def lower(self, model: nn.Module, spec: ExportSpec) -> Any:
        """Capture and convert ``model``; returns ``{"mlmodel": ct.models.MLModel}`` (not yet saved)."""
        from seemore.toolchain_logs import import_coremltools

        ct = import_coremltools()
        if spec.precision == "int8" and not isinstance(model, torch.fx.GraphModule):
            raise ExportError("an int8 spec needs a quantized (convert_pt2e) program")
        if spec.precision not in ("fp16", "int8"):
            raise ExportError(f"Core ML packages are fp16 or int8 (W8A8), not {spec.precision}")
        program = capture(model, spec)
        inputs, outputs = io_types(ct, spec)
        with quiet_info_logs(), quiet_stderr():
            try:
                mlmodel = ct.convert(
                    program, inputs=inputs, outputs=outputs, convert_to="mlprogram",
                    minimum_deployment_target=deployment_target(ct, spec.deployment_target),
                    compute_precision=ct.precision.FLOAT16, compute_units=ct.ComputeUnit.ALL,
                    pass_pipeline=pass_pipeline(ct),
                )
            except Exception as exc:  # coremltools raises bare Exceptions with multi-line texts
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ExportError(f"coremltools could not convert the program: {first}") from None
            if spec.compression:
                mlmodel = compress(ct, mlmodel, spec.compression)
        return {"mlmodel": mlmodel}

    def annotate(self, lowered: Any, spec: ExportSpec, facts: dict[str, str]) -> None:
        """Write the package metadata: description, author, license, version, I/O texts, key facts."""
        from seemore import __version__

        mlmodel = lowered["mlmodel"]
        model = facts.get("model", "SeemoRe")
        mlmodel.short_description = (
            f"{model}: x{spec.scale} super-resolution (SeemoRe, ICML 2024), {precision_words(spec)}; "
            f"fixed {spec.height}x{spec.width} input, tile larger images per the contract")
        mlmodel.author = AUTHOR
        mlmodel.license = LICENSE
        mlmodel.version = __version__
        h, w = spec.height * spec.scale, spec.width * spec.scale
        if spec.io == "image":
            mlmodel.input_description["lr"] = f"low-resolution RGB image, {spec.width}x{spec.height} (W x H)"
            mlmodel.output_description["sr"] = f"x{spec.scale} RGB image, {w}x{h} (W x H)"
        else:
            mlmodel.input_description["lr"] = (
                f"low-resolution RGB, float32 NCHW {list(spec.input_shape)}, values in [0, 1] (8-bit value / 255)")
            mlmodel.output_description["sr"] = (
                f"x{spec.scale} RGB, float32 NCHW {list(spec.output_shape)}, nominally [0, 1], not clamped")
        meta = {"com.github.apple.coremltools.source": mlmodel.user_defined_metadata.get(
            "com.github.apple.coremltools.source", "")}
        meta.update({f"seemore.{k}": v for k, v in facts.items()})
        meta.update({
            "seemore.spec": json.dumps(spec.to_dict(), sort_keys=True),
            "seemore.io": spec.io,
            "seemore.precision": spec.precision,
            "seemore.compression": spec.compression or "none",
            "seemore.tile": f"{spec.height}x{spec.width}",
            "seemore.scale": str(spec.scale),
        })
        for key, value in meta.items():
            if value:
                mlmodel.user_defined_metadata[key] = value

    def serialize(self, lowered: Any, path: Path) -> None:
        """Save the package into the (empty, temporary) directory ``path``.

        coremltools insists on a ``.mlpackage`` name, which the driver's temporary directory
        does not have: the package is saved inside it under that name and its tree moved up.
        """
        path = Path(path)
        with tempfile.TemporaryDirectory(dir=path) as scratch:
            inner = Path(scratch) / "model.mlpackage"
            with quiet_info_logs(), quiet_stderr():
                lowered["mlmodel"].save(str(inner))
            for item in inner.iterdir():
                shutil.move(str(item), str(path / item.name))

    def structure(self, lowered: Any, path: Path) -> dict[str, Any]:
        """What the written package holds (read back from the file) plus its Neural Engine report."""
        from seemore.export.ane import ane_report, ops_from_mil
        from seemore.runtime.coreml import CoreMLRunner

        found = CoreMLRunner().structure(path)
        program = lowered["mlmodel"]._mil_program
        report = ane_report(ops_from_mil(program.functions["main"]))
        return {**found, "neural_engine": report.to_json()}


def format_package_report(name: str, structure: dict[str, Any]) -> str:
    """The structural report of one package (as its contract stores it): I/O, precision, every MIL
    op type with its count and Neural Engine verdicts, and the verdict totals."""
    from seemore.common.tables import format_table

    head = (f"{name}: input lr {structure.get('input_type')} {structure.get('input_shape')}, output sr "
            f"{structure.get('output_type')} {structure.get('output_shape')}, compute {structure.get('compute_precision')}, "
            f"{structure.get('deployment_target')}")
    report = structure.get("neural_engine", {})
    rows = []
    for row in report.get("by_type", []):
        verdicts = ", ".join(f"{n} {v}" for v, n in row["verdicts"].items())
        failures = "; ".join(f.removeprefix("fails: ") for f in row["failures"]) or "-"
        rows.append([row["op_type"], row["count"], verdicts, failures])
    totals = ", ".join(f"{n} {v}" for v, n in report.get("totals", {}).items())
    table = format_table(["MIL op", "count", "Neural Engine verdict", "failed conditions"], rows)
    return f"{head}\n{table}\nNeural Engine: {totals} ({report.get('skipped_const_ops', 0)} const ops not judged)"
