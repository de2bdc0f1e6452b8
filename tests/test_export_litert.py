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

import numpy as np
import pytest
import torch

from seemore.contract import contract_path, read_contract
from seemore.deploy import DeploySeemoRe
from seemore.export import ExportOptions, export_targets, get_target
from seemore.parity import run_parity
from seemore.runtime import get_runner
from seemore.runtime.base import RuntimeUnavailable
from conftest import assert_apps_read_every_contract, exit_code, saved_small_model

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


def test_graph_is_rank_4_one_xnnpack_partition_without_layout_transposes(exported: dict[str, Any]) -> None:
    for precision in ("fp32", "fp16", "int8"):
        s = read_contract(contract_path(artifact(exported, precision))).structure
        assert s["max_tensor_rank"] <= 4 and s["tensors_above_rank_4"] == 0, precision
        assert s["gpu_delegate"] == "compatible", s["gpu_warnings"]
        assert s["ops_total"] == sum(s["ops_by_type"].values())
        assert (s["partitions"], s["ops_outside"]) == (1, 0), (precision, s["ops_outside_by_type"])
        assert "RELU_0_TO_1" not in s["ops_by_type"]  # the top-k mask's clamps (UNIT_CLAMP)
        # The pixel shuffle is one DEPTH_TO_SPACE; no transposes are left (tflite_graph.depth_to_space).
        assert s["transposes"] == 0 and s["ops_by_type"]["DEPTH_TO_SPACE"] == 1, precision
        assert s["rewrites"]["depth_to_space"] == 1
    int8 = read_contract(contract_path(artifact(exported, "int8"))).structure
    # Every int8 GELU was written back as dequantize -> fp32 GELU -> quantize (tflite_graph.float_gelu).
    assert int8["rewrites"]["float_gelu"] > 0
    assert int8["ops_by_type"]["DEQUANTIZE"] >= int8["rewrites"]["float_gelu"]
    assert "DEQUANTIZE" in read_contract(contract_path(artifact(exported, "fp16"))).structure["ops_by_type"]
    # The structure in the contract is what the runner reads back from the file (plus the
    # exporter's record of the rewrites it made).
    path = artifact(exported, "fp32")
    runner = get_runner("litert")
    assert runner is not None
    stored = read_contract(contract_path(path)).structure
    assert {**runner.structure(path), "rewrites": stored["rewrites"]} == stored


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


def _interpret(data: bytes, x: np.ndarray) -> np.ndarray:
    """The raw output of ``data`` in LiteRT's interpreter (XNNPACK applied) for float input ``x``."""
    from ai_edge_litert.interpreter import Interpreter

    from seemore.runtime.litert import to_input

    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    [detail] = interpreter.get_input_details()
    interpreter.set_tensor(detail["index"], to_input(x, detail))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _convert(module: torch.nn.Module, x: torch.Tensor, **kwargs: Any) -> bytes:
    import litert_torch

    module.training = False  # a PT2E program refuses a recursive eval(); the float head is already in eval
    return bytes(litert_torch.convert(module, (x,), **kwargs).model_content())


class _ShuffleHead(torch.nn.Module):
    """NHWC in and out, a conv to r*r*C channels and PyTorch's (NCHW) pixel shuffle: the upsampler tail."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 1), torch.nn.GELU())
        self.conv = torch.nn.Conv2d(8, 3 * 16, 3, padding=1)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.body(x.permute(0, 3, 1, 2)))
        return torch.nn.functional.pixel_shuffle(y, 4).permute(0, 2, 3, 1)


def test_pixel_shuffle_chain_becomes_one_depth_to_space_with_the_same_values() -> None:
    from seemore.export.tflite_graph import depth_to_space

    head = _ShuffleHead()
    x = torch.rand(1, 5, 7, 4, generator=torch.Generator().manual_seed(4))
    data = _convert(head, x)
    rewritten, count = depth_to_space(data)
    assert count == 1
    before, after = _op_counts(data), _op_counts(rewritten)
    assert before.get("TRANSPOSE", 0) >= 2 and "DEPTH_TO_SPACE" not in before
    assert after.get("TRANSPOSE", 0) == 0 and after["DEPTH_TO_SPACE"] == 1
    # Data movement and a conv with reordered channels: the same numbers, bit for bit.
    assert np.array_equal(_interpret(rewritten, x.numpy()), _interpret(data, x.numpy()))
    with torch.no_grad():
        assert np.allclose(_interpret(rewritten, x.numpy()), head(x).numpy(), atol=1e-5)
    assert depth_to_space(rewritten) == (rewritten, 0)  # nothing left to rewrite


def test_int8_gelu_becomes_dequantize_float_gelu_quantize_inside_one_partition(tmp_path: Path) -> None:
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from seemore.export.tflite_graph import float_gelu
    from seemore.quantize import backend_quantizer
    from seemore.runtime.litert import tflite_structure

    head = _ShuffleHead()
    x = torch.rand(1, 5, 7, 4, generator=torch.Generator().manual_seed(5))
    quantizer = backend_quantizer("litert", is_qat=False)
    prepared = prepare_pt2e(torch.export.export(head, (x,)).module(), quantizer)
    prepared(x)
    program = convert_pt2e(prepared, fold_quantize=False)
    data = _convert(program, x, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    rewritten, count = float_gelu(data)
    assert count == 1 and _op_counts(data)["GELU"] == 1
    (tmp_path / "before.tflite").write_bytes(data)
    (tmp_path / "after.tflite").write_bytes(rewritten)
    before, after = tflite_structure(tmp_path / "before.tflite"), tflite_structure(tmp_path / "after.tflite")
    assert before["ops_outside_by_type"] == {"GELU": 1}  # LiteRT's XNNPACK has no int8 GELU
    assert (after["partitions"], after["ops_outside"]) == (1, 0)
    # The int8 table and fp32 GELU + quantize agree up to a rounding tie: at most one step.
    diff = np.abs(_interpret(rewritten, x.numpy()).astype(np.int32) - _interpret(data, x.numpy()).astype(np.int32))
    assert diff.max() <= 1


def _op_counts(data: bytes) -> dict[str, int]:
    from collections import Counter

    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    codes = [names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    return dict(Counter(codes[op.opcodeIndex] for sg in model.subgraphs for op in sg.operators))


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


def test_contracts_carry_every_key_the_demo_apps_read(exported: dict[str, Any]) -> None:
    assert_apps_read_every_contract(exported["out"])
