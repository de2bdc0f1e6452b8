"""ExecuTorch export: spec, lowering, delegation, runtime parity, sidecars and the CLI.

One small model (SeemoRe-T x4 with one residual group, 32x48 LR input) is exported once
per module: XNNPACK FP32 and Vulkan FP16 through the CLI, XNNPACK INT8 (PTQ on one real
image) through the library, so every test below reads the same artifacts.
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

from seemore import create_model
from seemore.checkpoint import file_sha256
from seemore.export import ExportSpec, SpecError, export_program, parse_size, read_sidecar, sidecar_path
from seemore.export.calibration import center_crop, load_rgb, real_input
from seemore.export.executorch_export import export_executorch, psnr, run_pte
from seemore.paths import bundled_images, resolve_data_root
from conftest import load_script, saved_small_model

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parent.parent
H, W = 32, 48


def load_cli() -> ModuleType:
    return load_script("mobile/export_executorch.py")


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
    cli = load_cli()
    args = ["--checkpoint", str(ckpt), "--out", str(out), "--size", f"{H}x{W}", "--threads", "1"]
    rc = cli.main([*args, "--backends", "xnnpack-fp32", "vulkan-fp16"])
    assert rc == 0
    [int8] = export_executorch(model, [ExportSpec("xnnpack", "int8", H, W)], out, checkpoint=ckpt, calibration_limit=1)
    return {"model": model, "ckpt": ckpt, "out": out, "int8": int8}


def pte(exported: dict[str, Any], tag: str) -> Path:
    return exported["out"] / f"seemore_t_x4_{tag}_{H}x{W}.pte"


def test_spec_validation_and_shared_export_step() -> None:
    with pytest.raises(SpecError, match="backend"):
        ExportSpec("metal")
    with pytest.raises(SpecError, match="height"):
        ExportSpec(height=0)
    with pytest.raises(SpecError, match="HxW"):
        parse_size("180by320")
    assert parse_size("180x320") == (180, 320)
    spec = ExportSpec(height=20, width=24, batch=2)
    assert spec.output_shape == (2, 3, 80, 96)
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


def test_xnnpack_fp32_is_one_subgraph_and_matches_eager(exported: dict[str, Any]) -> None:
    side = read_sidecar(pte(exported, "xnnpack_fp32"))
    d = side["delegation"]
    assert d["delegated_subgraphs"] == 1
    assert d["not_delegated_ops"] == 0 and d["not_delegated_by_type"] == {}
    assert d["delegated_mac_share"] == 1.0 and d["macs_total"] > 0
    assert side["export_check"]["passed"] and side["export_check"]["psnr_db"] >= 60
    x = lr_crop()
    got = run_pte(pte(exported, "xnnpack_fp32"), x)
    with torch.no_grad():
        want = exported["model"](x)
    assert got.shape == (1, 3, 4 * H, 4 * W)
    assert psnr(got, want) >= 60 and (got - want).abs().max().item() <= 1e-4


def test_xnnpack_int8_is_one_subgraph_and_runs_like_the_quantized_model(exported: dict[str, Any]) -> None:
    result = exported["int8"]
    d = result.delegation
    assert d["delegated_subgraphs"] == 1 and d["not_delegated_ops"] == 0
    # Quantize/dequantize pairs inside the delegate show the graph really is int8.
    assert d["delegated_by_type"].get("quantized_decomposed.quantize_per_tensor.default", 0) > 10
    x = lr_crop()
    got = run_pte(result.path, x)  # loads in executorch.runtime (fails when a weight is shared)
    quantized = result.torch_model
    with torch.no_grad():
        want = quantized(x)
        ref = exported["model"](x)
    # With the biases on XNNPACK's int32 grid the torch model simulates the int8 kernels;
    # what remains are rare rounding flips seeded by fp32 ops (summation order).
    assert psnr(got, want) >= 45.0
    assert result.check["passed"] and result.check["psnr_db"] >= 45.0
    assert psnr(got, ref) >= 30.0  # and it is still the float model, quantized


def test_vulkan_puts_every_op_in_the_delegate(exported: dict[str, Any]) -> None:
    side = read_sidecar(pte(exported, "vulkan_fp16"))
    d = side["delegation"]
    assert d["backend"] == "vulkan"
    assert d["delegated_subgraphs"] == 1 and d["not_delegated_ops"] == 0
    assert d["delegated_mac_share"] == 1.0
    assert "aten.pixel_shuffle.default" in d["delegated_by_type"]
    check = side["export_check"]
    assert check["ran"] is False
    # Host-side fp16 proxy: finite and close to fp32.
    assert check["fp16_simulation"]["finite"] and check["fp16_simulation"]["psnr_db"] >= 50


def test_sidecars_describe_their_artifacts(exported: dict[str, Any]) -> None:
    out: Path = exported["out"]
    names = sorted(p.name for p in out.iterdir())
    tags = ("xnnpack_fp32", "xnnpack_int8", "vulkan_fp16")
    expected = [f"seemore_t_x4_{t}_{H}x{W}.pte{ext}" for t in tags for ext in ("", ".json")]
    # The exporter's PTQ program, the INT8 artifact's parity reference.
    expected += [f"seemore_t_x4_xnnpack_int8_ptq_{H}x{W}.pt2{ext}" for ext in ("", ".json")]
    assert names == sorted(expected), "only artifacts and sidecars, no temporary files"
    for tag, precision in (("xnnpack_fp32", "fp32"), ("xnnpack_int8", "int8"), ("vulkan_fp16", "fp16")):
        path = pte(exported, tag)
        side = json.loads(sidecar_path(path).read_text())
        assert side["format"] == "seemore-mobile/artifact/1"
        assert side["artifact"] == {"file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
        assert side["spec"]["precision"] == precision and side["spec"]["input_shape"] == [1, 3, H, W]
        assert side["spec"]["output_shape"] == [1, 3, 4 * H, 4 * W]
        assert side["source"] == {"checkpoint": str(exported["ckpt"]), "sha256": file_sha256(exported["ckpt"])}
        assert side["model"]["name"] == "seemore_t_x4" and side["model"]["config"]["num_layers"] == 1
        assert side["tools"]["executorch"].startswith("1.5") and side["tools"]["torch"]
        assert side["parity"] == {}
        assert ("quantization" in side) == (precision == "int8")
    quant = read_sidecar(pte(exported, "xnnpack_int8"))["quantization"]
    assert quant["method"] == "ptq" and quant["calibration_images"] == 1 and quant["biases"] == "int32 grid"
    assert "training images" in quant["calibration_data"]
    program = Path(quant["program"])
    assert program.parent == out and quant["sha256"] == file_sha256(program)


def test_cli_missing_checkpoint_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = load_cli()
    rc = cli.main(["--checkpoint", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and "nope.safetensors" in err and "\n" not in err
    assert not (tmp_path / "out").exists()
    # The shipped default does not exist yet: the same kind of one-line error.
    if "seemore_t_x4" not in __import__("seemore").list_shipped():
        rc = cli.main(["--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "seemore_t_x4" in err and "\n" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "180by320"], "HxW"),
        (["--size", "8x8"], "too small"),
        (["--batch", "0"], "batch"),
    ],
)
def test_cli_bad_input_is_a_one_line_error(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    rc = load_cli().main(["--checkpoint", str(exported["ckpt"]), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_cli_runs_as_a_script_from_the_repo_root(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "mobile/export_executorch.py", "--size", "abc", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: size must look like HxW (e.g. 180x320), got 'abc'"
    assert "Traceback" not in proc.stderr
