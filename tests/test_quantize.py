"""PT2E quantization (PTQ + QAT): the CLI end to end on a tiny model, real calibration data, quantizers, errors.

One small model (SeemoRe-T x4 with one residual group) is quantized once per module through
the CLI (2 QAT steps, 32-pixel patches, Set5 only, 32x48 program); the tests read what it
wrote and what the spies saw on the way.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

import seemore.quantize as quantize
import seemore.quantize.quantizers as quantizers
import seemore.quantize.run as quantize_run
from seemore import create_model
from seemore.common.files import file_sha256
from seemore.common.tensors import image_to_tensor
from seemore.contract import ExportSpec, contract_path, read_contract
from seemore.deploy import DeploySeemoRe
from seemore.paths import resolve_data_root
from conftest import exit_code, load_script, saved_small_model, small_model

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 32, 48


def load_cli() -> ModuleType:
    return load_script("quantization/qat.py")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Quantize a tiny model through the CLI, recording what calibration and training were fed."""
    tmp = tmp_path_factory.mktemp("qat")
    model, ckpt = saved_small_model(tmp)
    seen: dict[str, Any] = {"ptq": [], "qat_calibration": [], "samplers": []}
    mp = pytest.MonkeyPatch()
    original_ptq, original_calib, original_train = quantize.quantize_ptq, quantize.calibrate_qat_observers, quantize.train_qat

    def spy_ptq(captured: Any, backend: str, images: Any, progress: bool = True) -> Any:
        seen["ptq"].extend(images)
        return original_ptq(captured, backend, images, progress)

    def spy_calib(prepared: Any, batches: Any, total: Any = None, progress: bool = True) -> int:
        batches = list(batches)
        seen["qat_calibration"].extend(batches)
        return original_calib(prepared, batches, total, progress)

    def spy_train(prepared: Any, sampler: Any, settings: Any, progress: bool = True) -> Any:
        seen["samplers"].append(sampler)
        return original_train(prepared, sampler, settings, progress)

    # The run module calls them by these names.
    mp.setattr(quantize_run, "quantize_ptq", spy_ptq)
    mp.setattr(quantize_run, "calibrate_qat_observers", spy_calib)
    mp.setattr(quantize_run, "train_qat", spy_train)
    out, js = tmp / "out", tmp / "qat.json"
    args = ["--model", str(ckpt), "--steps", "2", "--batch-size", "2", "--patch-size", "32",
            "--calibration-batches", "2", "--ptq-images", "2", "--size", f"{H}x{W}", "--sets", "Set5",
            "--out", str(out), "--json", str(js), "--threads", "1", "--no-progress"]
    try:
        rc = load_cli().main(args)
    finally:
        mp.undo()
    assert rc == 0
    return {"model": model, "ckpt": ckpt, "out": out, "json": json.loads(js.read_text()), "seen": seen}


def test_cli_reports_fp32_ptq_qat_and_saves_a_loadable_program(run: dict[str, Any]) -> None:
    summary = run["json"]
    for key in ("fp32", "ptq_int8", "qat_int8"):
        m = summary["metrics"][key]["Set5"]
        assert np.isfinite(m["psnr"]) and 0.0 < m["ssim"] <= 1.0
    assert summary["training"]["steps"] == 2
    assert summary["checkpoint_sha256"] == file_sha256(run["ckpt"])
    assert summary["target"]["qat_set5_drop_db"] == pytest.approx(
        summary["metrics"]["fp32"]["Set5"]["psnr"] - summary["metrics"]["qat_int8"]["Set5"]["psnr"]
    )
    program = Path(summary["program"])
    assert program.name == f"seemore_t_x4_xnnpack_int8_qat_{H}x{W}.pt2" and program.parent == run["out"]
    side = read_contract(contract_path(program))
    assert side.kind == quantize.PROGRAM_KIND and summary["contract"] == str(contract_path(program))
    assert side.source.sha256 == file_sha256(run["ckpt"]) and side.source.model == "seemore_t_x4"
    assert side.artifact.sha256 == file_sha256(program) and side.artifact.path == program.name
    assert side.quantization.method == "qat" and side.quantization.quantizer == "xnnpack"
    assert side.spec.precision == "int8" and side.spec.backend == "xnnpack"
    assert side.quantization.recipe["metrics"]["qat_int8"] == summary["metrics"]["qat_int8"]
    assert "ResidualAdd" in side.quantization.float_modules
    assert not list(run["out"].glob(".*.tmp"))  # atomic writes leave no temporaries

    # The saved program runs at its fixed height and width, for any batch, close to the float model.
    loaded = quantize.load_program(program)
    x = run["seen"]["ptq"][0][..., :H, :W].contiguous()
    with torch.no_grad():
        got, want = loaded(x), run["model"](x)
        assert loaded(x.expand(3, -1, -1, -1)).shape == (3, 3, 4 * H, 4 * W)
    assert got.shape == (1, 3, 4 * H, 4 * W)
    mse = torch.mean((got - want) ** 2).item()
    span = (want.max() - want.min()).item()
    assert 10 * np.log10(span**2 / mse) > 25.0


def test_calibration_and_training_see_real_training_images_only(run: dict[str, Any]) -> None:
    seen = run["seen"]
    data = quantize.load_training_data(4, progress=False)
    assert not data.fallback and "train" in data.source
    # Real 8-bit photographs sit exactly on the 1/255 grid; random tensors do not.
    for t in [*seen["ptq"], *seen["qat_calibration"]]:
        scaled = t * 255.0
        assert torch.equal(scaled, scaled.round())
        assert t.std() > 0.01
    # PTQ: each image is the centre crop of a training image's LR (never a benchmark image).
    lrs = [image_to_tensor(im.lr) for im in data.images]
    for img in seen["ptq"]:
        h, w = img.shape[-2:]
        assert any(
            lr.shape[-2] >= h and lr.shape[-1] >= w
            and torch.equal(lr[..., (lr.shape[-2] - h) // 2 : (lr.shape[-2] - h) // 2 + h,
                               (lr.shape[-1] - w) // 2 : (lr.shape[-1] - w) // 2 + w], img)
            for lr in lrs
        )
    # QAT: patches come from the sampler over the training images.
    [sampler] = seen["samplers"]
    assert [im.name for im in sampler.images] == [im.name for im in data.images]
    assert all(name.split("/")[0] in ("T91", "BSD200") for name in (im.name for im in sampler.images))
    assert len(seen["qat_calibration"]) == 2 and seen["qat_calibration"][0].shape == (2, 3, 32, 32)
    root = resolve_data_root(None)
    assert root is not None and str(root / "train") in run["json"]["data"]["source"]


@pytest.mark.parametrize("backend", ["coreml", "litert"])
def test_other_backend_quantizers_prepare_train_and_convert(backend: str, run: dict[str, Any]) -> None:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    deploy = DeploySeemoRe.from_reference(run["model"], backend)  # Core ML's: the matmul context upsample
    captured = quantize.capture(deploy, ExportSpec(height=H, width=W))
    prepared = quantize.prepare_qat(captured, backend)
    assert len(quantize.fake_quantizers(prepared)) > 50
    x = torch.cat(run["seen"]["qat_calibration"])
    assert quantize.calibrate_qat_observers(prepared, [x], progress=False) == 1
    converted = convert_pt2e(prepared)
    ops = {str(n.target) for n in converted.graph.nodes if n.op == "call_function"}
    assert any("quantize_per_tensor" in op for op in ops)
    with torch.no_grad():
        assert converted(x).shape == (4, 3, 128, 128)


def test_coreml_quantizer_keeps_the_matmul_context_upsample_float() -> None:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    try:
        quantizer = quantize.backend_quantizer("coreml", is_qat=False)
    except quantize.QuantizeError as exc:
        pytest.skip(str(exc))
    model = small_model(output_in_image_range=True)
    deploy = DeploySeemoRe.from_reference(model, "coreml")
    captured = quantize.capture(deploy, ExportSpec(backend="coreml", precision="int8", height=H, width=W))
    prepared = prepare_pt2e(captured, quantizer)

    def upsample_nodes(graph: torch.fx.Graph) -> list[torch.fx.Node]:
        return [n for n in graph.nodes if n.op == "call_function" and any(
            str(cls).endswith("ContextUpsample") for _, cls in n.meta.get("nn_module_stack", {}).values())]

    def observer(node: Any) -> bool:
        return isinstance(node, torch.fx.Node) and node.op == "call_module" and "activation_post_process" in node.target

    inside = upsample_nodes(prepared.graph)
    *building, output = inside
    assert "matmul" in str(output.target)
    # No observer on what builds the matrices or on the first matmul; the output is observed
    # only as an input of the quantized ``k + ctx`` after the module (as F.interpolate's is),
    # and the one observed input is the context, the quantized output of the conv before it.
    assert not any(observer(u) for n in building for u in n.users)
    assert all(u.op != "call_function" or "add" in str(u.target) for u in output.users)
    observed = [a for n in inside for a in n.args if observer(a)]
    assert len(observed) == 1 and "conv" in str(observed[0].args[0].target)
    g = torch.Generator().manual_seed(0)
    for shape in ((1, 3, 40, 56), (2, 3, H, W)):
        prepared(torch.rand(*shape, generator=g))  # calibration at two sizes (dynamic shapes)
    converted = convert_pt2e(prepared)
    x = torch.rand(1, 3, H, W, generator=g)
    with torch.no_grad():
        assert (converted(x) - deploy(x)).abs().max().item() < 0.05


def test_coreml_annotation_shortcuts_change_nothing() -> None:
    """Inside the shortcuts, a pattern builder gives CoreMLQuantizer the very pattern it would
    have built when all its operators occur in the model, and a stand-in that matches nothing
    otherwise; the annotator only tries patterns that can match. (``benchmarks/coreml_annotation.py``
    compares whole prepared programs, which takes minutes without the shortcuts.)"""
    import operator

    import torch.nn.functional as F

    try:
        quantizers.backend_quantizer("coreml", is_qat=False)
    except quantize.QuantizeError as exc:
        pytest.skip(str(exc))
    import executorch.backends.apple.coreml.quantizer._coreml_quantizer_utils as utils

    deploy = DeploySeemoRe.from_reference(small_model(output_in_image_range=True), "coreml")
    captured = quantize.capture(deploy, ExportSpec(backend="coreml", precision="int8", height=H, width=W))
    present = quantizers._call_targets(captured.graph)
    cases = [("get_conv_pattern", (2,)), ("get_conv_pattern", (2, F.relu, True)), ("get_conv_pattern", (1,)),
             ("get_conv_bn_pattern", (2,)), ("get_binary_op_act_pattern", (operator.add,)),
             ("get_binary_op_act_pattern", (torch.mul, F.sigmoid)), ("get_linear_pattern", ())]
    originals = [getattr(utils, name)(*args) for name, args in cases]  # the stock builders
    builder = utils.get_conv_pattern
    with quantizers._coreml_annotation_shortcuts(captured):
        can_match = []
        for (name, args), original in zip(cases, originals):
            built = getattr(utils, name)(*args)
            can_match.append(quantizers._call_targets(original.graph) <= present)
            if can_match[-1]:
                assert built.code == original.code, (name, args)
            else:
                assert quantizers._call_targets(built.graph) == {quantizers._unmatchable}, (name, args)
        assert True in can_match and False in can_match
        # A stand-in is not even tried: the stock annotator recompiles the model before matching.
        recompiles: list[None] = []
        captured.recompile = lambda: recompiles.append(None)  # type: ignore[method-assign]
        assert utils.annotate_weighted_mod_pattern(captured, quantizers._unmatchable_pattern(), None, None) == []
        assert not recompiles
        utils.annotate_weighted_mod_pattern(captured, originals[0], None, None)
        assert recompiles  # (the spy sees a pattern that is tried)
    assert utils.get_conv_pattern is builder  # restored on exit


def test_xnnpack_keeps_the_residual_stream_float_and_every_conv_int8(run: dict[str, Any]) -> None:
    # (The Core ML and LiteRT quantizers fuse conv + add and quantize the sum regardless.)
    deploy = DeploySeemoRe.from_reference(run["model"])
    captured = quantize.capture(deploy, ExportSpec(height=H, width=W))
    converted = quantize.quantize_ptq(captured, "xnnpack", run["seen"]["ptq"][:1], progress=False)

    def inside(node: torch.fx.Node, module: str) -> bool:
        return any(str(cls).endswith(module) for _, cls in node.meta.get("nn_module_stack", {}).values())

    def quantized_output(node: torch.fx.Node) -> bool:
        return any("quantize_per_tensor" in str(u.target) and "dequant" not in str(u.target) for u in node.users)

    calls = [n for n in converted.graph.nodes if n.op == "call_function"]
    residual_adds = [n for n in calls if "add" in str(n.target) and inside(n, "ResidualAdd")]
    assert len(residual_adds) == 4  # two per pre-norm block, two blocks in the one group
    assert not any(quantized_output(n) for n in residual_adds)
    convs = [n for n in calls if "conv" in str(n.target) and not inside(n, "ConvLayerNorm2d")]
    assert convs and all(quantized_output(n) for n in convs)


def test_xnnpack_qat_takes_histogram_activation_ranges_and_freezes_only_them(run: dict[str, Any]) -> None:
    from torchao.quantization.pt2e import HistogramObserver

    assert run["json"]["training"]["activation_ranges"].startswith("histogram calibration, frozen from step 0")
    captured = quantize.capture(DeploySeemoRe.from_reference(run["model"]), ExportSpec(height=H, width=W))
    prepared = quantize.prepare_qat(captured, "xnnpack")
    fqs = quantize.fake_quantizers(prepared)
    activations = [fq for fq in fqs if fq.qscheme == torch.per_tensor_affine]
    weights = [fq for fq in fqs if fq.qscheme == torch.per_channel_symmetric]
    assert activations and weights and len(activations) + len(weights) == len(fqs)
    assert all(isinstance(fq.activation_post_process, HistogramObserver) for fq in activations)
    assert quantize.freeze_activation_ranges(prepared) == len(activations)
    assert all(int(fq.observer_enabled[0]) == 0 for fq in activations)
    assert all(int(fq.observer_enabled[0]) == 1 for fq in weights)


def test_unavailable_backend_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(is_qat: bool) -> Any:
        raise ModuleNotFoundError("No module named 'coremltools'", name="coremltools")

    monkeypatch.setitem(quantizers._QUANTIZERS, "coreml", (missing, "x"))
    with pytest.raises(quantize.QuantizeError, match=r"^coreml: quantizer unavailable here \(coremltools"):
        quantize.backend_quantizer("coreml", is_qat=True)
    with pytest.raises(quantize.QuantizeError, match="unknown backend"):
        quantize.backend_quantizer("tflite", is_qat=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/model.safetensors"], "no such file"),
        (["--model", "/tmp"], "is a folder"),
        (["--backend", "metal"], "invalid choice: 'metal'"),
        (["--batch-size", "1"], "batch size must be >= 2"),
        (["--size", "180by320"], "HEIGHTxWIDTH"),
        (["--threads", "0"], "positive integer"),
        (["--json", "/tmp"], "is a folder"),
    ],
)
def test_cli_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc = exit_code(load_cli().main, [*args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_settings_validation_and_lr_schedule() -> None:
    with pytest.raises(quantize.QuantizeError, match="patch size"):
        quantize.QATSettings(patch_size=16).validate(create_model("seemore_t", 4, num_layers=1).config)
    with pytest.raises(quantize.QuantizeError, match="freeze"):
        quantize.QATSettings(freeze_observers_at=1.5).validate()
    assert quantize.cosine_lr(1e-4, 0, 10) == pytest.approx(1e-4)
    assert quantize.cosine_lr(1e-4, 5, 10) == pytest.approx(5e-5)
    assert quantize.cosine_lr(1e-4, 10, 10) == pytest.approx(0.0)
