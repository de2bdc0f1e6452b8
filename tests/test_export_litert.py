"""LiteRT export through the driver: FP32 / FP16 / INT8 ``.tflite``, rank-4 graph, one XNNPACK
partition, NHWC I/O, LiteRT's interpreter against eager and the program, a corrupted file.

One small model (SeemoRe-T x4 with one residual group, 32x48 LR input) is exported once per
module: FP32 and FP16 through the CLI (NHWC, its default for LiteRT), INT8 by PTQ on one real
image through the library.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from seemore.contract import contract_path, read_contract
from seemore.deploy import DeploySeemoRe
from seemore.export import ExportOptions, export_targets, get_target
from seemore.parity import run_parity
from seemore.runtime import get_runner
from seemore.runtime.base import RuntimeUnavailable
from conftest import exit_code, saved_small_model

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 32, 48


def main(argv: list[str]) -> int:
    from seemore.export.cli import tflite_main

    return exit_code(tflite_main, argv)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("litert")
    model, ckpt = saved_small_model(tmp, output_in_image_range=True)
    out = tmp / "out"
    args = ["--model", str(ckpt), "--out", str(out), "--size", f"{H}x{W}", "--threads", "1", "--no-progress"]
    assert main([*args, "--targets", "litert-fp32", "litert-fp16", "--json", str(tmp / "export.json")]) == 0
    [int8] = export_targets(model, [get_target("litert-int8")], out, ckpt,
                            ExportOptions(height=H, width=W, layout="NHWC", calibration_images=1, program_dirs=()))
    return {"model": model, "ckpt": ckpt, "out": out, "int8": int8, "json": tmp / "export.json"}


def artifact(exported: dict[str, Any], precision: str) -> Path:
    return exported["out"] / f"seemore_t_x4_litert_{precision}_{H}x{W}_nhwc.tflite"


def test_every_precision_converts_with_nhwc_io_and_reports_its_size(exported: dict[str, Any]) -> None:
    sizes = {}
    for precision in ("fp32", "fp16", "int8"):
        path = artifact(exported, precision)
        contract = read_contract(contract_path(path))
        assert contract.spec.runtime == "litert" and contract.spec.layout == "NHWC"
        assert contract.structure["input_shape"] == [1, H, W, 3]
        assert contract.structure["output_shape"] == [1, 4 * H, 4 * W, 3]
        sizes[precision] = contract.artifact.bytes
        assert sizes[precision] == path.stat().st_size
    # fp16 conv weights halve most of the file; int8 weights quarter them.
    assert sizes["int8"] < sizes["fp16"] < 0.8 * sizes["fp32"]
    report = json.loads(exported["json"].read_text())
    assert {r["artifact"] for r in report["artifacts"]} == {artifact(exported, p).name for p in ("fp32", "fp16")}


def test_graph_is_rank_4_and_float_graphs_are_one_xnnpack_partition(exported: dict[str, Any]) -> None:
    for precision in ("fp32", "fp16", "int8"):
        s = read_contract(contract_path(artifact(exported, precision))).structure
        assert s["max_tensor_rank"] <= 4 and s["tensors_above_rank_4"] == 0, precision
        assert s["gpu_delegate"] == "compatible", s["gpu_warnings"]
        assert s["partitions"] >= 1 and s["ops_total"] == sum(s["ops_by_type"].values())
    for precision in ("fp32", "fp16"):
        s = read_contract(contract_path(artifact(exported, precision))).structure
        assert (s["partitions"], s["ops_outside"]) == (1, 0), (precision, s["ops_outside_by_type"])
        assert "RELU_0_TO_1" not in s["ops_by_type"]  # the top-k mask's clamps (UNIT_CLAMP)
        assert s["transposes"] == 1  # the NHWC pixel shuffle's own; no layout transposes (NHWCPixelShuffleIO)
    assert "DEQUANTIZE" in read_contract(contract_path(artifact(exported, "fp16"))).structure["ops_by_type"]
    # The structure in the contract is what the runner reads back from the file.
    path = artifact(exported, "fp32")
    runner = get_runner("litert")
    assert runner is not None
    stored = read_contract(contract_path(path)).structure
    assert runner.structure(path) == stored


def test_litert_interpreter_matches_eager_and_the_int8_program(exported: dict[str, Any]) -> None:
    checks = {p: read_contract(contract_path(artifact(exported, p))).export_check for p in ("fp32", "fp16", "int8")}
    assert all(c["ran"] and c["status"] == "pass" for c in checks.values()), checks
    assert checks["fp32"]["psnr_db"] >= 100  # summation order only
    assert checks["fp16"]["psnr_db"] < checks["fp32"]["psnr_db"]  # the fp16 weights are really fp16
    assert checks["int8"]["against"] == "its INT8 program" and checks["int8"]["psnr_db"] >= 40
    # The int8 .tflite ends on an int8 tensor; the runner dequantizes it with the file's scale.
    s = read_contract(contract_path(artifact(exported, "int8"))).structure
    assert s["io_dtypes"]["input"]["dtype"] == "float32"


def test_litert_deploy_form_equals_the_default_one(exported: dict[str, Any]) -> None:
    model = exported["model"]
    x = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    litert = DeploySeemoRe.from_reference(model, "litert")
    assert {m.clamp_mode for m in litert.modules() if hasattr(m, "clamp_mode")} == {"relu6_min"}
    with torch.no_grad():
        assert torch.equal(litert(x), DeploySeemoRe.from_reference(model)(x))


def test_nhwc_pixel_shuffle_equals_the_channels_last_wrapper(exported: dict[str, Any]) -> None:
    from seemore.deploy.capture import ChannelsLastIO
    from seemore.export.litert import NHWCPixelShuffleIO

    deploy = DeploySeemoRe.from_reference(exported["model"], "litert")
    x = torch.rand(2, H, W, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(NHWCPixelShuffleIO(deploy)(x), ChannelsLastIO(deploy)(x))


def test_unfolded_weight_quantize_computes_the_same_program(exported: dict[str, Any]) -> None:
    from seemore.export.litert import unfold_weight_quantize

    program = exported["int8"].torch_model
    unfolded = unfold_weight_quantize(program)
    quantize_ops = [n for n in unfolded.graph.nodes if "quantize_per_channel" in str(n.target)
                    and "dequantize" not in str(n.target)]
    assert quantize_ops  # the weights' quantize is back
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(unfolded(x), program(x))


def test_parity_rows_and_a_corrupted_tflite(exported: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(exported["out"], folder)
    results = {r.artifact: r for r in run_parity(folder, sets=("Set5",), write=False, progress=False)}
    for precision in ("fp32", "fp16", "int8"):
        r = results[artifact(exported, precision).name]
        assert r.ran and r.status in ("pass", "at floor"), (precision, r.status, r.notes)
    path = folder / artifact(exported, "fp32").name
    data = bytearray(path.read_bytes())
    data[8:64] = b"\x00" * 56  # the flatbuffer's root table
    path.write_bytes(bytes(data))
    runner = get_runner("litert")
    assert runner is not None
    with pytest.raises(RuntimeUnavailable) as caught:
        runner.load(path)
    assert "\n" not in str(caught.value) and path.name in str(caught.value)
    [again] = [r for r in run_parity(folder, sets=("Set5",), write=False, progress=False) if r.artifact == path.name]
    assert again.status == "FAIL"


def test_cli_bad_input_is_a_one_line_error(exported: dict[str, Any], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--model", str(exported["ckpt"]), "--out", str(tmp_path / "o"), "--size", f"{H}x{W}",
                 "--no-progress", "--targets", "litert-fp64"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "invalid choice" in err[-1], err
    assert not (tmp_path / "o").exists()
