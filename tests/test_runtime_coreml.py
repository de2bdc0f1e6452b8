"""The MIL evaluator (seemore/runtime/mil.py) and the Core ML runner (seemore/runtime/coreml.py).

Small random models are converted to ``.mlpackage`` files once per module; the evaluator's
outputs are compared with eager torch (FP32 programs to ~1e-5, FP16 programs to fp16 accuracy),
with coremltools' own decompression of compressed weights, and with hand formulas for the ops
a torch conversion does not produce.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from conftest import small_model

ct = pytest.importorskip("coremltools")

from seemore.runtime import RuntimeUnavailable, get_runner  # noqa: E402
from seemore.runtime import mil  # noqa: E402
from seemore.runtime.coreml import CoreMLRunner  # noqa: E402
from seemore.runtime.mil import MilError, load_mil_program  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

BASE_KEYS = {"partitions", "ops_outside", "backends", "delegates", "ops_outside_by_type", "input_shape", "output_shape"}


def psnr(out: Tensor, ref: Tensor, peak: float = 1.0) -> float:
    """PSNR of ``out`` against ``ref`` for signals of range ``peak``."""
    mse = torch.mean((out.float() - ref.float()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


def convert(module: nn.Module, example: Tensor, path: Path, precision: str = "fp32",
            target: Any = None, **kwargs: Any) -> Any:
    """``module`` exported and converted to an ML program saved at ``path``; returns the MLModel."""
    with torch.no_grad():
        program = torch.export.export(module.eval(), (example,)).run_decompositions({})
    mlmodel = ct.convert(
        program,
        inputs=kwargs.pop("inputs", [ct.TensorType(name="lr", shape=example.shape)]),
        outputs=kwargs.pop("outputs", [ct.TensorType(name="sr")]),
        convert_to="mlprogram",
        minimum_deployment_target=target or ct.target.iOS17,
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        **kwargs,
    )
    mlmodel.save(str(path))
    return mlmodel


class Mix(nn.Module):
    """Every op family of the deploy model and a few more: strided, dilated, grouped convs, both
    GELUs, layer norm, a softmax gate over a channel slice, pixel shuffle, bilinear both ways."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.dw = nn.Conv2d(16, 16, 5, padding=4, dilation=2, groups=16)
        self.down = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(16)
        self.gate = nn.Linear(16, 4)
        self.up = nn.Conv2d(16, 12, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = F.gelu(self.conv1(x))
        y = y + F.gelu(self.dw(y), approximate="tanh")
        y = y + F.interpolate(self.down(y), size=y.shape[-2:], mode="bilinear", align_corners=False)
        y = self.norm(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        w = torch.softmax(self.gate(y.mean((2, 3))), dim=-1)
        y = y * w[:, :1, None, None] + torch.cat([y[:, 8:], y[:, :8]], dim=1) * w[:, 1:2, None, None]
        y = F.pixel_shuffle(self.up(torch.relu(y)), 2)
        y = y + F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return torch.sigmoid(y)


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("mix")
    model = Mix().eval()
    x = torch.rand(1, 3, 16, 24)
    paths = {p: folder / f"mix_{p}.mlpackage" for p in ("fp32", "fp16")}
    for precision, path in paths.items():
        convert(model, x, path, precision)
    return {"model": model, "x": x, **paths}


def test_fp32_program_equals_eager_torch(mix: dict[str, Any]) -> None:
    program = load_mil_program(mix["fp32"])
    ops = program.op_counts()
    for op in ("conv", "gelu", "layer_norm", "linear", "softmax", "slice_by_index", "pixel_shuffle",
               "upsample_bilinear", "reduce_mean", "sigmoid", "concat", "transpose", "relu"):
        assert ops.get(op, 0) >= 1, (op, ops)
    assert program.compute_precision() == "fp32"
    for seed in range(2):
        x = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(seed))
        out = program.run({"lr": x})["sr"]
        assert out.dtype == torch.float32
        assert (out - mix["model"](x)).abs().max().item() <= 1e-5


def test_fp16_program_matches_eager_torch_to_fp16_accuracy(mix: dict[str, Any]) -> None:
    program = load_mil_program(mix["fp16"])
    assert program.inputs["lr"].dtype == "fp16" and program.compute_precision() == "fp16"
    # fp16 storage: every non-const float op of this program declares fp16 and gets fp16 tensors.
    assert {d for op in program.ops() if op.op_type != "const" for d in op.output_dtypes} == {"fp16"}
    out = program.run({"lr": mix["x"]})["sr"]
    assert out.dtype == torch.float16
    ref = mix["model"](mix["x"])
    assert 60.0 < psnr(out, ref) < 120.0  # fp16-accurate, and not secretly computed in fp32


def test_tiny_deploy_form_seemore(tmp_path: Path) -> None:
    from seemore.deploy.capture import deploy_form

    model = deploy_form(small_model(output_in_image_range=True), "coreml").eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ref = model(x)
    runner = get_runner("coreml")
    assert isinstance(runner, CoreMLRunner) and runner.available() is None
    for precision, check in (("fp32", lambda out: (out - ref).abs().max().item() <= 1e-5),
                             ("fp16", lambda out: psnr(out, ref) > 60.0)):
        path = tmp_path / f"seemore_{precision}.mlpackage"
        convert(model, x, path, precision)
        out = runner.load(path)(x)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert check(out), (precision, psnr(out, ref))


def test_unsupported_op_is_a_one_line_error_naming_it(mix: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    runner = CoreMLRunner()
    monkeypatch.setattr(mil, "SUPPORTED_OPS", mil.SUPPORTED_OPS - {"gelu"})
    with pytest.raises(MilError) as err:
        runner.load(mix["fp16"])
    message = str(err.value)
    assert "\n" not in message and "MIL op 'gelu' (in main, op '" in message
    assert "is not implemented by seemore.runtime.mil" in message
    # Checked before running: every missing type is listed at once.
    monkeypatch.setattr(mil, "SUPPORTED_OPS", mil.SUPPORTED_OPS - {"softmax", "pixel_shuffle"})
    with pytest.raises(MilError, match=r"'gelu'.*'pixel_shuffle'.*'softmax'"):
        load_mil_program(mix["fp16"]).run({"lr": mix["x"]})
    monkeypatch.undo()

    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS17)
    def cumulative(x: Any) -> Any:
        return mb.cumsum(x=x, axis=1, name="sr")

    path = tmp_path / "cumsum.mlpackage"
    ct.convert(cumulative, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17).save(str(path))
    assert runner.structure(path)["mil_ops"]["cumsum"] == 1  # reporting still works
    with pytest.raises(MilError) as err:
        runner.load(path)
    assert "\n" not in str(err.value) and "'cumsum'" in str(err.value)
    # The harness asks first: this host cannot run it, and says which op is missing.
    assert runner.available() is None and runner.available(mix["fp16"]) is None
    assert str(err.value) == runner.available(path)


def test_wrong_input_shape_is_a_one_line_error(mix: dict[str, Any]) -> None:
    with pytest.raises(MilError, match=r"^input 'lr' has shape \[1, 3, 16, 16\], the program takes \[1, 3, 16, 24\]$"):
        CoreMLRunner().load(mix["fp32"])(torch.rand(1, 3, 16, 16))


def test_unreadable_package_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(MilError) as err:
        load_mil_program(tmp_path)
    assert "\n" not in str(err.value) and "not a Core ML .mlpackage" in str(err.value)
    (tmp_path / "Manifest.json").write_text("{}")
    with pytest.raises(MilError) as err:
        load_mil_program(tmp_path)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------
# compressed weights


def _two_convs() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(8, 32, 3, padding=1), nn.GELU(), nn.Conv2d(32, 16, 3, padding=1)).eval()


def _compressors() -> list[tuple[str, Any, str, Callable[[Any], Any]]]:
    from coremltools.optimize.coreml import (OpLinearQuantizerConfig, OpMagnitudePrunerConfig, OpPalettizerConfig,
                                             OptimizationConfig, linear_quantize_weights, palettize_weights,
                                             prune_weights)

    def apply(fn: Callable[..., Any], op_config: Any) -> Callable[[Any], Any]:
        return lambda m: fn(m, OptimizationConfig(global_config=op_config))

    int8 = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    return [
        ("int8-ios17", ct.target.iOS17, "constexpr_affine_dequantize", apply(linear_quantize_weights, int8)),
        ("int8-ios18", ct.target.iOS18, "constexpr_blockwise_shift_scale", apply(linear_quantize_weights, int8)),
        ("int4-block-ios18", ct.target.iOS18, "constexpr_blockwise_shift_scale", apply(
            linear_quantize_weights, OpLinearQuantizerConfig(mode="linear", dtype="int4", granularity="per_block",
                                                             block_size=8))),
        ("lut6-ios17", ct.target.iOS17, "constexpr_lut_to_dense", apply(
            palettize_weights, OpPalettizerConfig(mode="kmeans", nbits=6, granularity="per_tensor"))),
        ("lut4-grouped-ios18", ct.target.iOS18, "constexpr_lut_to_dense", apply(
            palettize_weights, OpPalettizerConfig(mode="uniform", nbits=4, granularity="per_grouped_channel",
                                                  group_size=8))),
        ("sparse-ios17", ct.target.iOS17, "constexpr_sparse_to_dense", apply(
            prune_weights, OpMagnitudePrunerConfig(target_sparsity=0.5))),
        ("sparse-ios18", ct.target.iOS18, "constexpr_sparse_to_dense", apply(
            prune_weights, OpMagnitudePrunerConfig(target_sparsity=0.5))),
    ]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("compressed")
    model = _two_convs()
    x = torch.rand(1, 8, 12, 12, generator=torch.Generator().manual_seed(3))
    base = {t: convert(model, x, folder / f"base_{t.name}.mlpackage", "fp16", target=t)
            for t in (ct.target.iOS17, ct.target.iOS18)}
    paths = {}
    for name, target, op_type, compress in _compressors():
        paths[name] = (folder / f"{name}.mlpackage", op_type)
        compress(base[target]).save(str(paths[name][0]))
    return {"model": model, "x": x, "paths": paths, "base": folder / "base_iOS17.mlpackage"}


@pytest.mark.parametrize("name", [c[0] for c in _compressors()])
def test_compressed_weights_decompress_like_coremltools_and_run(compressed: dict[str, Any], name: str) -> None:
    path, op_type = compressed["paths"][name]
    program = load_mil_program(path)
    function = program.function
    decompressors = [op for op in function.operations if op.op_type.startswith("constexpr_")]
    assert program.op_counts().get(op_type, 0) == 2 and {op.op_type for op in decompressors} == {op_type}
    # The evaluator's decompression equals coremltools' own reference decompression, exactly.
    for op in decompressors:
        reference = torch.from_numpy(np.asarray(op.materialized_val_inference()).copy())
        assert torch.equal(program.const_value(op.outputs[0].name), reference), (name, op.name)
    # The program equals eager torch whose convs carry those decompressed weights.
    model = compressed["model"]
    dense = _two_convs()
    convs = [op for op in function.operations if op.op_type == "conv"]
    changed = 0.0
    with torch.no_grad():
        for layer, op in zip([dense[0], dense[2]], convs):
            layer.weight.copy_(program.const_value(op.inputs["weight"].name).float())
            layer.bias.copy_(program.const_value(op.inputs["bias"].name).float())
        for original, layer in zip([model[0], model[2]], [dense[0], dense[2]]):
            changed = max(changed, (layer.weight - original.weight.half().float()).abs().max().item())
        ref = dense(compressed["x"])
    assert changed > 0.0  # the weights really are the compressed ones, not the originals
    out = CoreMLRunner().load(path)(compressed["x"])
    peak = (ref.max() - ref.min()).item()
    exact = psnr(out, ref, peak)
    assert exact > 60.0, exact
    # ... and the original model only within the compression error, clearly below that.
    lossy = psnr(out, model(compressed["x"]), peak)
    floor = {"int8": 50.0, "lut6": 40.0, "int4": 30.0, "lut4": 30.0, "sparse": 15.0}[name.split("-")[0]]
    assert floor < lossy < exact - 10.0, (lossy, exact)


# --------------------------------------------------------------------------------------------
# activation quantization and ops a torch conversion does not produce


def _save_mil(program: Any, path: Path, target: Any = None) -> Path:
    """A MIL builder program saved as a package as built (no graph passes: every op stays)."""
    mlmodel = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=target or ct.target.iOS17,
                         compute_precision=ct.precision.FLOAT32, pass_pipeline=ct.PassPipeline.EMPTY)
    mlmodel.save(str(path))
    return path


def test_w8a8_quantize_dequantize_are_exact(tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    scale = np.array([0.5, 0.25, 1.0, 0.1], np.float32)
    zero = np.array([0, 3, -2, 10], np.int8)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 6)), mb.TensorSpec(shape=(1, 4, 6))],
                opset_version=ct.target.iOS17)
    def w8a8(x: Any, y: Any) -> Any:
        q = mb.quantize(input=x, scale=scale, zero_point=zero, axis=1, output_dtype="int8")
        per_axis = mb.dequantize(input=q, scale=scale, zero_point=zero, axis=1, name="per_axis")
        u = mb.quantize(input=y, scale=np.float32(0.02), zero_point=np.uint8(128), output_dtype="uint8")
        per_tensor = mb.dequantize(input=u, scale=np.float32(0.02), zero_point=np.uint8(128), name="per_tensor")
        return per_axis, per_tensor

    program = load_mil_program(_save_mil(w8a8, tmp_path / "w8a8.mlpackage"))
    assert program.op_counts()["quantize"] == 2 and program.op_counts()["dequantize"] == 2
    x = (torch.randn(1, 4, 6, generator=torch.Generator().manual_seed(4)) * 30).to(torch.float32)
    x[0, 0, :4] = torch.tensor([0.25, 0.75, -0.25, 1000.0])  # ties (x / 0.5 = k + 0.5) and a clipped value
    y = torch.rand(1, 4, 6, generator=torch.Generator().manual_seed(5)) * 6 - 3
    out = program.run({"x": x, "y": y})

    def hand(v: np.ndarray, s: np.ndarray, z: np.ndarray, low: int, high: int) -> np.ndarray:
        # round half to even (numpy's round), then zero point, clip, and back
        q = np.clip(np.round(v / s) + z.astype(np.float32), low, high)
        return (s * (q - z.astype(np.float32))).astype(np.float32)

    s3, z3 = scale.reshape(1, 4, 1), zero.reshape(1, 4, 1)
    assert np.array_equal(out["per_axis"].numpy(), hand(x.numpy(), s3, z3, -128, 127))
    assert np.array_equal(out["per_tensor"].numpy(), hand(y.numpy(), np.float32(0.02), np.uint8(128), 0, 255))
    assert out["per_axis"][0, 0, :4].tolist() == [0.0, 1.0, 0.0, 63.5]
    # A runner takes one tensor: two inputs are refused in one line.
    with pytest.raises(RuntimeUnavailable, match="one input and one output"):
        CoreMLRunner().load(tmp_path / "w8a8.mlpackage")


def test_mil_ops_match_their_definitions(tmp_path: Path) -> None:
    from coremltools.converters.mil import Builder as mb

    g = torch.Generator().manual_seed(6)
    gamma, beta = np.array([1.5, -1.0, 0.5, 2.0], np.float32), np.array([0.1, 0.2, -0.3, 0.0], np.float32)
    mean, var = np.array([0.1, -0.2, 0.3, 0.0], np.float32), np.array([1.0, 0.5, 2.0, 0.25], np.float32)
    weight = torch.randn(5, 4, 3, 3, generator=g).numpy()
    matrix = torch.randn(7, 8, generator=g).numpy()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 6, 8))], opset_version=ct.target.iOS17)
    def ops(x: Any) -> Any:
        reshaped = mb.reshape(x=x, shape=[0, -1, 0], name="reshape")  # iOS17: 0s match x's dims from the right
        outputs = [
            mb.instance_norm(x=x, gamma=gamma, beta=beta, epsilon=np.float32(1e-3), name="instance_norm"),
            mb.batch_norm(x=x, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=np.float32(1e-3),
                          name="batch_norm"),
            mb.layer_norm(x=x, axes=[1], gamma=gamma, beta=beta, epsilon=np.float32(1e-5), name="layer_norm_c"),
            mb.slice_by_size(x=x, begin=[0, 1, 2, 3], size=[1, 2, -1, 4], name="slice_by_size"),
            mb.slice_by_index(x=x, begin=[0, 3, 0, 0], end=[1, 0, 6, 8], stride=[1, -1, 2, 1],
                              squeeze_mask=[True, False, False, False], end_mask=[False, False, False, True],
                              name="slice_by_index"),
            *mb.split(x=x, axis=3, split_sizes=[3, 5], name="split"),
            mb.concat(values=[x, mb.mul(x=x, y=np.float32(2.0))], axis=1, interleave=True, name="interleave"),
            mb.pad(x=x, pad=[1, 2, 2, 1], mode="reflect", name="reflect"),
            mb.pad(x=x, pad=[0, 0, 2, 0, 1, 3], mode="replicate", name="replicate"),
            mb.pad(x=x, pad=[1, 1], mode="constant", constant_val=np.float32(0.5), name="constant"),
            mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=3, name="nearest"),
            mb.upsample_bilinear(x=x, scale_factor_height=2.0, scale_factor_width=2.0, align_corners=True,
                                 name="bilinear_corners"),
            mb.upsample_bilinear(x=x, scale_factor_height=1.5, scale_factor_width=2.5, align_corners=False,
                                 half_pixel_centers=False, name="bilinear_asymmetric"),
            reshaped,
            mb.squeeze(x=mb.expand_dims(x=reshaped, axes=[0, -1]), axes=[0, 4], name="squeeze"),
            mb.transpose(x=x, perm=[0, 2, 3, 1], name="transpose"),
            mb.tile(x=x, reps=[1, 1, 2, 1], name="tile"),
            mb.real_div(x=x, y=mb.add(x=mb.abs(x=x), y=np.float32(1.0)), name="real_div"),
            mb.maximum(x=x, y=np.float32(0.1), name="maximum"),
            mb.minimum(x=x, y=np.float32(-0.1), name="minimum"),
            mb.rsqrt(x=mb.abs(x=x), epsilon=np.float32(0.5), name="rsqrt"),
            mb.sqrt(x=mb.abs(x=x), name="sqrt"),
            mb.gelu(x=x, mode="SIGMOID_APPROXIMATION", name="gelu_sigmoid"),
            mb.gelu(x=x, mode="EXACT", name="gelu_exact"),
            mb.clip(x=x, alpha=np.float32(-0.5), beta=np.float32(0.25), name="clip"),
            mb.reduce_sum(x=x, axes=[1, 3], keep_dims=True, name="reduce_sum"),
            mb.reduce_max(x=x, axes=[2], name="reduce_max"),
            mb.matmul(x=x, y=matrix, transpose_y=True, name="matmul"),
            mb.conv(x=x, weight=weight, strides=[2, 2], pad_type="same", name="conv_same"),
            mb.conv(x=x, weight=weight, strides=[2, 2], pad_type="same_lower", name="conv_same_lower"),
            mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(2), name="pixel_unshuffle"),
        ]
        return tuple(outputs)

    program = load_mil_program(_save_mil(ops, tmp_path / "ops.mlpackage"))
    x = torch.randn(1, 4, 6, 8, generator=g)
    out = program.run({"x": x})
    w = torch.from_numpy(weight)

    def asymmetric(v: Tensor, dim: int, size: int) -> Tensor:
        # upsample_bilinear, align_corners and half_pixel_centers off: sample at i * in / out
        grid = (torch.arange(size, dtype=torch.float64) * v.shape[dim] / size).clamp(max=v.shape[dim] - 1)
        low = grid.floor().long()
        high = (low + 1).clamp(max=v.shape[dim] - 1)
        shape = [1] * v.dim()
        shape[dim] = size
        t = (grid - low).float().reshape(shape)
        return v.index_select(dim, low) * (1 - t) + v.index_select(dim, high) * t

    c = [1, 4, 1, 1]
    centred = x - x.mean(1, keepdim=True)
    expected = {
        "instance_norm": F.instance_norm(x, weight=torch.from_numpy(gamma), bias=torch.from_numpy(beta), eps=1e-3),
        "batch_norm": F.batch_norm(x, torch.from_numpy(mean), torch.from_numpy(var), torch.from_numpy(gamma),
                                   torch.from_numpy(beta), eps=1e-3),
        "layer_norm_c": centred / torch.sqrt((centred**2).mean(1, keepdim=True) + 1e-5)
        * torch.from_numpy(gamma).reshape(c) + torch.from_numpy(beta).reshape(c),
        "slice_by_size": x[:, 1:3, 2:, 3:7],
        "slice_by_index": x[0].flip(0)[0:3, 0:6:2, :],  # x[0, 3:0:-1, 0:6:2, :]
        "split_0": x[..., :3],
        "split_1": x[..., 3:],
        "interleave": torch.stack([x, 2 * x], dim=2).reshape(1, 8, 6, 8),
        "reflect": F.pad(x, [2, 1, 1, 2], mode="reflect"),
        "replicate": F.pad(x, [1, 3, 2, 0], mode="replicate"),
        "constant": F.pad(x, [1, 1], value=0.5),
        "nearest": x.repeat_interleave(2, dim=2).repeat_interleave(3, dim=3),
        "bilinear_corners": F.interpolate(x, size=(12, 16), mode="bilinear", align_corners=True),
        "bilinear_asymmetric": asymmetric(asymmetric(x, 2, 9), 3, 20),
        "squeeze": x.reshape(4, 6, 8),
        "reshape": x.reshape(4, 6, 8),
        "transpose": x.permute(0, 2, 3, 1),
        "tile": x.repeat(1, 1, 2, 1),
        "real_div": x / (x.abs() + 1),
        "maximum": x.clamp(min=0.1),
        "minimum": x.clamp(max=-0.1),
        "rsqrt": torch.rsqrt(x.abs() + 0.5),
        "sqrt": x.abs().sqrt(),
        "gelu_sigmoid": x * torch.sigmoid(1.702 * x),
        "gelu_exact": 0.5 * x * (1 + torch.erf(x / math.sqrt(2))),
        "clip": x.clamp(-0.5, 0.25),
        "reduce_sum": x.sum((1, 3), keepdim=True),
        "reduce_max": x.amax(2),
        "matmul": x @ torch.from_numpy(matrix).T,
        "conv_same": F.conv2d(F.pad(x, [0, 1, 0, 1]), w, stride=2),  # odd total padding: the extra after
        "conv_same_lower": F.conv2d(F.pad(x, [1, 0, 1, 0]), w, stride=2),  # ... and before
        "pixel_unshuffle": F.pixel_unshuffle(x, 2),
    }
    assert set(out) == set(expected)
    for name, value in expected.items():
        assert out[name].shape == value.shape, name
        assert torch.allclose(out[name], value, atol=2e-5, rtol=1e-5), (name, (out[name] - value).abs().max())


# --------------------------------------------------------------------------------------------
# the runner


def test_structure_keys(mix: dict[str, Any], compressed: dict[str, Any]) -> None:
    runner = CoreMLRunner()
    fp16 = runner.structure(mix["fp16"])
    assert BASE_KEYS <= set(fp16)
    assert fp16["partitions"] == 1 and fp16["ops_outside"] == 0 and fp16["ops_outside_by_type"] == {}
    assert fp16["backends"] == {"coreml": 1} and fp16["delegates"] == ["coreml"]
    assert fp16["input_shape"] == [1, 3, 16, 24] and fp16["output_shape"] == [1, 3, 32, 48]
    assert fp16["input_type"] == fp16["output_type"] == "tensor"
    assert fp16["compute_precision"] == "fp16" and fp16["deployment_target"] == "iOS17"
    assert fp16["mil_ops"] == load_mil_program(mix["fp16"]).op_counts() and fp16["mil_ops"]["const"] > 0
    assert fp16["weights_bytes"] == (mix["fp16"] / "Data/com.apple.CoreML/weights/weight.bin").stat().st_size
    fp32 = runner.structure(mix["fp32"])
    assert fp32["compute_precision"] == "fp32" and fp32["weights_bytes"] > fp16["weights_bytes"]
    ios18 = runner.structure(compressed["paths"]["int8-ios18"][0])
    assert ios18["deployment_target"] == "iOS18"
    assert ios18["weights_bytes"] < runner.structure(compressed["base"])["weights_bytes"]


def test_image_io_package(tmp_path: Path) -> None:
    torch.manual_seed(7)
    conv = nn.Conv2d(3, 3, 3, padding=1)

    class ToPixels(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return torch.clamp(conv(x), 0, 1) * 255

    path = tmp_path / "image.mlpackage"
    x = torch.randint(0, 256, (1, 3, 16, 16)).float()
    convert(ToPixels(), x / 255, path, "fp16",
            inputs=[ct.ImageType(name="lr", shape=(1, 3, 16, 16), scale=1 / 255, color_layout=ct.colorlayout.RGB)],
            outputs=[ct.ImageType(name="sr", color_layout=ct.colorlayout.RGB)])
    runner = CoreMLRunner()
    structure = runner.structure(path)
    assert structure["input_type"] == structure["output_type"] == "image"
    assert structure["input_shape"] == [1, 3, 16, 16]
    # The 1/255 scale runs in fp32 ahead of the fp16 body.
    assert structure["compute_precision"] == "mixed"
    out = runner.load(path)(x)
    with torch.no_grad():
        ref = ToPixels()(x / 255)
    assert out.dtype == torch.float32 and psnr(out / 255, ref / 255) > 60.0


def test_enumerated_shapes_run_at_every_size(tmp_path: Path) -> None:
    from torch.export import Dim

    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(),
                          nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(8, 3, 3, padding=1)).eval()
    example = torch.rand(1, 3, 16, 16)
    program = torch.export.export(model, (example,), dynamic_shapes=(
        {2: Dim("h", min=16, max=24), 3: Dim("w", min=16, max=32)},)).run_decompositions({})
    shapes = ct.EnumeratedShapes(shapes=[[1, 3, 16, 16], [1, 3, 24, 32]], default=[1, 3, 16, 16])
    path = tmp_path / "enumerated.mlpackage"
    ct.convert(program, inputs=[ct.TensorType(name="lr", shape=shapes)], outputs=[ct.TensorType(name="sr")],
               convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
               compute_precision=ct.precision.FLOAT32).save(str(path))
    run = CoreMLRunner().load(path)
    assert CoreMLRunner().structure(path)["input_shape"] == [1, 3, 16, 16]
    for size in ((16, 16), (24, 32)):
        x = torch.rand(1, 3, *size)
        assert (run(x) - model(x)).abs().max().item() <= 1e-5


def test_tampered_weight_blob_changes_the_output(mix: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "tampered.mlpackage"
    shutil.copytree(mix["fp16"], path)
    before = CoreMLRunner().load(path)(mix["x"])
    blob = path / "Data/com.apple.CoreML/weights/weight.bin"
    data = bytearray(blob.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 512, 2):
        data[i] ^= 0x10  # mantissa bits of fp16 weights: finite values, other numbers
    blob.write_bytes(bytes(data))
    after = CoreMLRunner().load(path)(mix["x"])
    assert torch.isfinite(after).all() and not torch.equal(before, after)


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML itself predicts on macOS")
def test_native_runs_say_why_not_off_macos(mix: dict[str, Any]) -> None:
    runs, reason = CoreMLRunner().native_runs(mix["fp16"])
    assert runs == {} and reason is not None and "needs macOS" in reason and "\n" not in reason


def test_native_run_wrapper_feeds_and_reads_core_ml_types() -> None:
    from PIL import Image

    from seemore.runtime.coreml import _native_run

    class FakeModel:
        """Stands in for MLModel.predict (macOS only): doubles arrays, upscales images 2x."""

        def predict(self, feed: dict[str, Any]) -> dict[str, Any]:
            value = feed["lr"]
            if isinstance(value, Image.Image):
                assert value.mode == "RGB"
                return {"sr": value.resize((2 * value.width, 2 * value.height), Image.NEAREST)}
            assert value.dtype == np.float16  # the dtype an fp16 program declares
            return {"sr": value * 2}

    x = torch.rand(1, 3, 4, 5)
    out = _native_run(FakeModel(), "lr", "sr", False, False, "fp16")(x)
    assert out.dtype == torch.float32 and torch.allclose(out, 2 * x.half().float())
    pixels = torch.randint(0, 256, (1, 3, 4, 5)).float()
    out = _native_run(FakeModel(), "lr", "sr", True, True, "fp32")(pixels)
    assert out.shape == (1, 3, 8, 10) and out.dtype == torch.float32 and torch.equal(out[..., ::2, ::2], pixels)
