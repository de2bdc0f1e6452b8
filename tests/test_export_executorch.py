"""ExecuTorch export through the driver: spec, lowering, delegation, checks, contracts, INT8 sourcing, CLI.

One small model (SeemoRe-T x4 with one residual group, 32x48 LR input) is exported once per
module: XNNPACK FP32 and Vulkan FP16 through the CLI, XNNPACK INT8 (PTQ on one real image)
through the library, so every test below reads the same artifacts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from seemore import create_model, save_model
from seemore.cli import UsageError, parse_size
from seemore.common.files import file_sha256
from seemore.common.tensors import psnr_db
from seemore.contract import ExportSpec, SpecError, contract_path, read_contract
from seemore.deploy.capture import export_program
from seemore.export import ExportOptions, export_targets, get_target
from seemore.export.calibration import center_crop, load_rgb, real_input
from seemore.paths import bundled_images, resolve_data_root
from seemore.runtime.executorch import load_pte
from conftest import assert_apps_read_every_contract, exit_code, load_script, saved_small_model, small_model

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parent.parent
H, W = 32, 48


def load_cli() -> ModuleType:
    return load_script("mobile/export_executorch.py")


def main(argv: list[str]) -> int:
    from seemore.export.cli import executorch_main

    return exit_code(executorch_main, argv)


def lr_crop() -> torch.Tensor:
    """A real LR image crop (not the one the exporter checked with)."""
    root = resolve_data_root(None)
    path = root / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "babyx4.png" if root else bundled_images()[0]
    return center_crop(load_rgb(path), H, W)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("executorch")
    model, ckpt = saved_small_model(tmp)
    out = tmp / "out"
    args = ["--model", str(ckpt), "--out", str(out), "--size", f"{H}x{W}", "--threads", "1", "--no-progress"]
    assert main([*args, "--targets", "xnnpack-fp32", "vulkan-fp16"]) == 0
    [int8] = export_targets(model, [get_target("xnnpack-int8")], out, ckpt,
                            ExportOptions(height=H, width=W, calibration_images=1, program_dirs=()))
    return {"model": model, "ckpt": ckpt, "out": out, "int8": int8}


def pte(exported: dict[str, Any], tag: str) -> Path:
    return exported["out"] / f"seemore_t_x4_{tag}_{H}x{W}.pte"


def contract_of(exported: dict[str, Any], tag: str) -> Any:
    return read_contract(contract_path(pte(exported, tag)))


def test_spec_validation_and_shared_export_step() -> None:
    with pytest.raises(SpecError, match="backend"):
        ExportSpec("metal")
    with pytest.raises(SpecError, match="height"):
        ExportSpec(height=0)
    with pytest.raises(SpecError, match="runtime"):
        ExportSpec("xnnpack", runtime="litert")
    with pytest.raises(UsageError, match="HEIGHTxWIDTH"):
        parse_size("180by320")
    assert parse_size("180x320") == (180, 320)
    spec = ExportSpec(height=20, width=24, batch=2)
    assert spec.output_shape == (2, 3, 80, 96) and spec.runtime == "executorch"
    assert ExportSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    torch.manual_seed(0)
    ref = create_model("seemore_t", 4, num_layers=1).eval()
    with pytest.raises(SpecError, match="too small"):
        export_program(ref, ExportSpec(height=8, width=24))
    with pytest.raises(SpecError, match="scale"):
        export_program(ref, ExportSpec(height=20, width=24, scale=2))
    program = export_program(ref, spec)
    [inp] = [n for n in program.graph.nodes if n.op == "placeholder" and n.name == "x"]
    assert tuple(inp.meta["val"].shape) == (2, 3, 20, 24)
    x = real_input(20, 24, batch=2)
    with torch.no_grad():
        assert (program.module()(x) - ref(x)).abs().max().item() <= 1e-5


def test_xnnpack_fp32_is_one_partition_and_matches_eager(exported: dict[str, Any]) -> None:
    contract = contract_of(exported, "xnnpack_fp32")
    s = contract.structure
    assert s["partitions"] == 1 and s["delegated_subgraphs"] == 1 and s["delegates"] == ["xnnpack"]
    assert s["ops_outside"] == 0 and s["not_delegated_by_type"] == {}
    assert s["delegated_mac_share"] == 1.0 and s["macs_total"] > 0
    assert contract.export_check["status"] == "pass" and contract.export_check["psnr_db"] >= 60
    x = lr_crop()
    got = load_pte(pte(exported, "xnnpack_fp32")).execute([x])[0]
    with torch.no_grad():
        want = exported["model"](x)
    assert got.shape == (1, 3, 4 * H, 4 * W)
    assert psnr_db(got, want) >= 60 and (got - want).abs().max().item() <= 1e-4


def test_xnnpack_int8_is_one_partition_and_runs_like_its_program(exported: dict[str, Any]) -> None:
    result = exported["int8"]
    s = result.contract.structure
    assert s["partitions"] == 1 and s["ops_outside"] == 0
    # Quantize/dequantize pairs inside the delegate show the graph really is int8.
    assert s["delegated_by_type"].get("quantized_decomposed.quantize_per_tensor.default", 0) > 10
    x = lr_crop()
    got = load_pte(result.path).execute([x])[0]  # loads in executorch.runtime (fails when a weight is shared)
    with torch.no_grad():
        want = result.torch_model(x)
        ref = exported["model"](x)
    # With the biases on XNNPACK's int32 grid the program simulates the int8 kernels;
    # what remains are rare rounding flips seeded by fp32 ops (summation order).
    assert psnr_db(got, want) >= 45.0
    assert result.check["status"] == "pass" and result.check["psnr_db"] >= 45.0
    assert psnr_db(got, ref) >= 30.0  # and it is still the float model, quantized
    quant = result.contract.quantization
    assert quant.method == "ptq" and quant.quantizer == "xnnpack" and quant.reference_adjustment == "int32-bias-grid"
    assert quant.recipe["calibration_images"] == 1 and "training images" in quant.recipe["calibration_data"]
    assert quant.program.path == f"seemore_t_x4_xnnpack_int8_ptq_{H}x{W}.pt2"
    assert quant.program.sha256 == file_sha256(exported["out"] / quant.program.path)


def test_vulkan_puts_every_op_in_the_delegate(exported: dict[str, Any]) -> None:
    contract = contract_of(exported, "vulkan_fp16")
    s = contract.structure
    assert s["delegates"] == ["vulkan"] and s["partitions"] == 1 and s["ops_outside"] == 0
    assert s["delegated_mac_share"] == 1.0
    assert "aten.pixel_shuffle.default" in s["delegated_by_type"]
    check = contract.export_check
    assert check["ran"] is False and check["status"] == "not run" and "VulkanBackend" in check["note"]
    # Host-side fp16 proxy: finite, judged by the FP16 bound.
    sim = check["fp16_simulation"]
    assert sim["finite"] and sim["status"] == "pass" and sim["psnr_db"] >= sim["min_psnr_db"] == 50.0


def test_contracts_describe_their_artifacts(exported: dict[str, Any]) -> None:
    out: Path = exported["out"]
    names = sorted(p.name for p in out.iterdir())
    tags = ("xnnpack_fp32", "xnnpack_int8", "vulkan_fp16")
    expected = [f"seemore_t_x4_{t}_{H}x{W}.pte{ext}" for t in tags for ext in ("", ".json")]
    # The exporter's PTQ program (the INT8 artifact's parity reference) and the source checkpoint.
    expected += [f"seemore_t_x4_xnnpack_int8_ptq_{H}x{W}.pt2{ext}" for ext in ("", ".json")]
    expected += ["tiny_t_x4.safetensors"]
    assert names == sorted(expected), "only artifacts, contracts and sources: no temporary files"
    for tag, precision in (("xnnpack_fp32", "fp32"), ("xnnpack_int8", "int8"), ("vulkan_fp16", "fp16")):
        path = pte(exported, tag)
        text = contract_path(path).read_text()
        assert str(out) not in text and str(exported["ckpt"].parent) not in text, "no absolute paths"
        c = read_contract(contract_path(path))
        assert (c.kind, c.artifact.path, c.artifact.kind) == ("runtime", path.name, "file")
        assert c.artifact.bytes == path.stat().st_size and c.artifact.sha256 == file_sha256(path)
        assert c.spec.precision == precision and c.inputs[0].shape == [1, 3, H, W]
        assert c.outputs[0].shape == [1, 3, 4 * H, 4 * W] and c.inputs[0].layout == "NCHW"
        assert c.inputs[0].value_range == [0.0, 1.0] and c.inputs[0].dtype == "float32"
        assert c.tiling["tile"] == [H, W] and c.tiling["overlap"] == 8
        assert c.source.sha256 == file_sha256(exported["ckpt"]) and c.source.checkpoint == "tiny_t_x4.safetensors"
        assert c.source.model == "seemore_t_x4" and c.source.config["num_layers"] == 1
        assert c.tools["executorch"].startswith("1.5") and c.tools["torch"]
        assert c.parity == {}
        assert (c.quantization is not None) == (precision == "int8")


def test_a_program_of_another_checkpoint_is_refused(exported: dict[str, Any], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # The first checkpoint's program at the default place, a fine-tuned second checkpoint exported.
    other = tmp_path / "finetuned.safetensors"
    save_model(small_model(3), other)
    programs = tmp_path / "artifacts" / "quantization"
    programs.mkdir(parents=True)
    name = f"seemore_t_x4_xnnpack_int8_ptq_{H}x{W}.pt2"
    for suffix in ("", ".json"):
        (programs / (name + suffix)).write_bytes((exported["out"] / (name + suffix)).read_bytes())
    out = tmp_path / "out"
    base = ["--model", str(other), "--out", str(out), "--size", f"{H}x{W}", "--targets", "xnnpack-int8",
            "--threads", "1", "--no-progress"]
    # Named explicitly, or found at the default place: refused either way, with the command to run.
    for extra in (["--int8-program", str(programs / name)], []):
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)
            assert main([*base, *extra]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert [line for line in err if "error" in line] == err[-1:] and "another checkpoint" in err[-1]
        assert f"python quantization/qat.py --model {other} --backend xnnpack --size {H}x{W}" in err[-1]
        assert not out.exists(), "a refused export writes nothing"


def test_nhwc_batch2_artifact_end_to_end(tmp_path: Path) -> None:
    from seemore.parity import run_parity

    model, ckpt = saved_small_model(tmp_path, output_in_image_range=True)
    [result] = export_targets(model, [get_target("xnnpack-fp32")], tmp_path / "out", ckpt,
                              ExportOptions(height=H, width=W, batch=2, layout="NHWC"))
    c = result.contract
    assert result.name == f"seemore_t_x4_xnnpack_fp32_{H}x{W}_b2_nhwc.pte"
    assert c.inputs[0].shape == [2, H, W, 3] and c.outputs[0].shape == [2, 4 * H, 4 * W, 3]
    assert c.inputs[0].layout == "NHWC" and c.export_check["status"] == "pass"
    x = real_input(H, W, batch=2)
    got = load_pte(result.path).execute([x.permute(0, 2, 3, 1).contiguous()])[0]
    with torch.no_grad():
        want = model(x).permute(0, 2, 3, 1)
    assert got.shape == (2, 4 * H, 4 * W, 3) and psnr_db(got, want) >= 60
    [row] = run_parity(tmp_path / "out", sets=("Set5",), progress=False)
    assert row.status == "pass" and row.parity_min_db >= 60


def test_cli_missing_checkpoint_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--model", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("export_executorch.py: error:") and "nope.safetensors" in err
    assert "\n" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "180by320"], "HEIGHTxWIDTH"),
        (["--size", "8x8"], "too small"),
        (["--batch", "0"], "positive integer"),
        (["--threads", "-1"], "positive integer"),
        (["--targets", "metal-fp32"], "invalid choice"),
        (["--layout", "CHW"], "invalid choice"),
        (["--ptq", "--int8-program", "x.pt2"], "exclude each other"),
        (["--targets", "xnnpack-fp32", "--int8-program", "x.pt2"], "needs an int8 target"),
        (["--int8-program", "missing.pt2", "--targets", "xnnpack-int8"], "no such program file"),
    ],
)
def test_cli_bad_input_is_a_one_line_error(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    rc = main(["--model", str(exported["ckpt"]), "--out", str(tmp_path / "out"), "--size", f"{H}x{W}",
               "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]
    assert rc != 0 and last.startswith("export_executorch.py: error:") and message in last
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_cli_runs_as_a_script_from_any_directory(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "mobile" / "export_executorch.py"), "--size", "abc", "--out", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "export_executorch.py: error: argument --size: size must be HEIGHTxWIDTH of the LR input "
        "(e.g. 180x320), got 'abc' (see --help)"]


def test_contracts_carry_every_key_the_demo_apps_read(exported: dict[str, Any]) -> None:
    assert_apps_read_every_contract(exported["out"])
