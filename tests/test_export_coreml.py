"""Core ML export through the driver: every precision, metadata, contract, op report, Linux evaluation, CLI.

One small model (SeemoRe-T x4 with one residual group, 32x48 LR input) is exported once per
module through the CLI (FP16, int8 weights, 6-bit palettized weights, the Core ML-delegated
.pte) and the library (W8A8 by PTQ on one real image; image I/O), so the tests read the same
packages.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from seemore.common.files import file_sha256, path_sha256
from seemore.contract import contract_path, read_contract
from seemore.export import ExportOptions, export_targets, get_target
from seemore.parity import run_parity
from seemore.parity.harness import eight_bit, io_adapter
from seemore.runtime import get_runner
from seemore.runtime.mil import load_mil_program
from conftest import assert_apps_read_every_contract, exit_code, saved_small_model

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 32, 48
TENSOR_TARGETS = ("coreml-fp16", "coreml-w8", "coreml-lut6", "executorch-coreml-fp16")


def main(argv: list[str]) -> int:
    from seemore.export.cli import coreml_main

    return exit_code(coreml_main, argv)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("coreml")
    model, ckpt = saved_small_model(tmp, output_in_image_range=True)
    out = tmp / "out"
    args = ["--model", str(ckpt), "--out", str(out), "--size", f"{H}x{W}", "--threads", "1", "--no-progress"]
    assert main([*args, "--targets", *TENSOR_TARGETS, "--json", str(tmp / "export.json")]) == 0
    [int8] = export_targets(model, [get_target("coreml-int8")], out, ckpt,
                            ExportOptions(height=H, width=W, calibration_images=1, program_dirs=()))
    [image] = export_targets(model, [get_target("coreml-fp16")], out / "image", ckpt,
                             ExportOptions(height=H, width=W, io="image"))
    return {"model": model, "ckpt": ckpt, "out": out, "int8": int8, "image": image, "json": tmp / "export.json"}


def package(exported: dict[str, Any], tag: str, suffix: str = ".mlpackage") -> Path:
    return exported["out"] / f"seemore_t_x4_{tag}_{H}x{W}{suffix}"


def contract_of(path: Path) -> Any:
    return read_contract(contract_path(path))


def test_every_precision_converts_and_reports_its_size(exported: dict[str, Any]) -> None:
    sizes = {}
    for tag in ("coreml_fp16", "coreml_fp16_w8", "coreml_fp16_lut6"):
        path = package(exported, tag)
        assert (path / "Manifest.json").is_file() and (path / "Data/com.apple.CoreML/weights/weight.bin").is_file()
        contract = contract_of(path)
        assert contract.artifact.kind == "directory" and contract.artifact.sha256 == path_sha256(path)
        sizes[tag] = contract.artifact.bytes
    # int8 weights are about half of fp16, 6-bit palettes less again (small tensors stay fp16).
    assert sizes["coreml_fp16_lut6"] < sizes["coreml_fp16_w8"] < 0.8 * sizes["coreml_fp16"]
    assert exported["int8"].path.name == f"seemore_t_x4_coreml_int8_{H}x{W}.mlpackage"
    report = json.loads(exported["json"].read_text())
    assert [a["artifact"] for a in report["artifacts"]] == [
        f"seemore_t_x4_{t}_{H}x{W}{s}" for t, s in (("coreml_fp16", ".mlpackage"), ("coreml_fp16_w8", ".mlpackage"),
                                                 ("coreml_fp16_lut6", ".mlpackage"),
                                                 ("executorch_coreml_fp16", ".pte"))]


def test_metadata_and_contract_round_trip(exported: dict[str, Any]) -> None:
    from seemore.toolchain_logs import import_coremltools

    ct = import_coremltools()
    path = package(exported, "coreml_fp16")
    contract = contract_of(path)
    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    assert "x4 super-resolution" in mlmodel.short_description and mlmodel.license == "Apache-2.0"
    assert mlmodel.author and mlmodel.version
    meta = mlmodel.user_defined_metadata
    assert meta["seemore.model"] == "seemore_t_x4"
    assert meta["seemore.checkpoint_sha256"] == file_sha256(exported["ckpt"]) == contract.source.sha256
    assert json.loads(meta["seemore.spec"]) == contract.spec.to_dict()
    assert json.loads(meta["seemore.tiling"]) == contract.tiling
    spec = mlmodel.get_spec()
    assert spec.specificationVersion == 8  # iOS 17
    assert [i.name for i in spec.description.input] == ["lr"] and [o.name for o in spec.description.output] == ["sr"]
    assert "[0, 1]" in spec.description.input[0].shortDescription
    assert contract.structure["input_shape"] == [1, 3, H, W] and contract.structure["output_shape"] == [1, 3, 4 * H, 4 * W]
    assert read_contract(contract_path(path)).to_json() == contract.to_json()


def test_op_report_gives_every_op_a_neural_engine_verdict(exported: dict[str, Any]) -> None:
    structure = contract_of(package(exported, "coreml_fp16")).structure
    ops = structure["mil_ops"]
    for op in ("conv", "pixel_shuffle", "gelu", "softmax"):
        assert ops.get(op, 0) >= 1, op
    assert structure["compute_precision"] == "fp16"
    report = structure["neural_engine"]
    judged = {row["op_type"] for row in report["by_type"]}
    assert judged == set(ops) - {"const"}
    assert sum(report["totals"].values()) + report["skipped_const_ops"] == sum(ops.values())
    assert not report["unsupported"], report["unsupported"]
    int8 = contract_of(exported["int8"].path).structure["mil_ops"]
    assert int8.get("quantize", 0) >= 1 and int8.get("dequantize", 0) >= 1
    assert contract_of(package(exported, "coreml_fp16_w8")).structure["mil_ops"].get("constexpr_affine_dequantize")
    assert contract_of(package(exported, "coreml_fp16_lut6")).structure["mil_ops"].get("constexpr_lut_to_dense")


def test_export_checks_ran_on_linux_by_evaluating_the_package(exported: dict[str, Any]) -> None:
    for tag in ("coreml_fp16", "coreml_fp16_w8", "coreml_fp16_lut6"):
        check = contract_of(package(exported, tag)).export_check
        assert check["ran"] and check["status"] == "pass", (tag, check)
    fp16 = contract_of(package(exported, "coreml_fp16")).export_check
    assert fp16["psnr_db"] >= 60.0
    int8 = exported["int8"].check
    assert int8["ran"] and int8["against"] == "its INT8 program" and int8["status"] != "FAIL", int8


def test_image_io_package_gives_the_same_pictures_as_the_tensor_one(exported: dict[str, Any]) -> None:
    image = exported["image"]
    assert image.spec.io == "image" and image.path.name.endswith("_image.mlpackage")
    runner = get_runner("coreml")
    assert runner is not None
    structure = runner.structure(image.path)
    assert structure["input_type"] == "image" and structure["output_type"] == "image"
    tensor_contract = contract_of(package(exported, "coreml_fp16"))
    x = torch.rand(1, 3, H, W).mul(255).round().div(255)
    from_image = io_adapter(runner.load(image.path), image.spec)(x)
    from_tensor = eight_bit(io_adapter(runner.load(package(exported, "coreml_fp16")), tensor_contract.spec)(x))
    levels = (from_image - from_tensor).abs().max().item() * 255
    assert levels <= 1.0 + 1e-3, levels
    assert image.check["ran"] and image.check["status"] == "pass" and image.check["max_levels"] <= 1.0


def test_core_ml_pte_is_delegated_and_reported_not_run(exported: dict[str, Any]) -> None:
    path = package(exported, "executorch_coreml_fp16", ".pte")
    contract = contract_of(path)
    assert contract.spec.runtime == "executorch" and contract.spec.backend == "coreml"
    assert contract.structure["delegates"] == ["coreml"] and contract.structure["partitions"] >= 1
    assert not contract.export_check["ran"] and "fp16_simulation" in contract.export_check


def test_enumerated_sizes_and_ios18(tmp_path: Path, exported: dict[str, Any]) -> None:
    out = tmp_path / "enum"
    args = ["--model", str(exported["ckpt"]), "--out", str(out), "--size", f"{H}x{W}", "--threads", "1",
            "--no-progress", "--targets", "coreml-fp16", "--sizes", "48x64", "--deployment-target", "iOS18"]
    assert main(args) == 0
    [path] = list(out.glob("*.mlpackage"))
    assert path.name == f"seemore_t_x4_coreml_fp16_{H}x{W}_enum2_ios18.mlpackage"
    from seemore.toolchain_logs import import_coremltools

    spec = import_coremltools().utils.load_spec(str(path))
    assert spec.specificationVersion == 9
    shapes = [list(s.shape) for s in spec.description.input[0].type.multiArrayType.enumeratedShapes.shapes]
    assert shapes == [[1, 3, H, W], [1, 3, 48, 64]]
    assert contract_of(path).spec.sizes == ((H, W), (48, 64))


def test_parity_of_every_package_and_a_tampered_weight_blob(exported: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(exported["out"], folder, ignore=shutil.ignore_patterns("image"))
    results = {r.artifact: r for r in run_parity(folder, sets=("Set5",), write=False, progress=False)}
    for tag in ("coreml_fp16", "coreml_fp16_w8", "coreml_fp16_lut6", "coreml_int8"):
        r = results[f"seemore_t_x4_{tag}_{H}x{W}.mlpackage"]
        assert r.ran and r.status in ("pass", "at floor"), (tag, r.status, r.notes)
        assert r.checks["evaluated_by"].startswith("the package's MIL program")
        assert any("did not run here" in n for n in r.notes)
    assert results[f"seemore_t_x4_executorch_coreml_fp16_{H}x{W}.pte"].status == "not run"
    # Flip weights in the blob, then record the new hash so only the numbers can catch it (in a
    # folder of its own: the package, its contract and the checkpoint the contract names).
    alone = tmp_path / "alone"
    alone.mkdir()
    name = f"seemore_t_x4_coreml_fp16_{H}x{W}.mlpackage"
    shutil.copytree(folder / name, alone / name)
    shutil.copy(contract_path(folder / name), contract_path(alone / name))
    for checkpoint in folder.glob("*.safetensors"):
        shutil.copy(checkpoint, alone / checkpoint.name)
    folder = alone
    path = folder / name
    blob = path / "Data/com.apple.CoreML/weights/weight.bin"
    data = bytearray(blob.read_bytes())
    # The largest fp16 weight, found in the blob by its bytes; doubling or halving every value
    # (the lowest exponent bit) leaves the blob's metadata intact and every weight finite.
    program = load_mil_program(path)
    weights = [program.const_value(op.outputs[0].name) for op in program.function.operations if op.op_type == "const"]
    largest = max((w for w in weights if getattr(w, "dtype", None) == torch.float16), key=lambda w: w.numel())
    raw = largest.contiguous().numpy().tobytes()
    start = bytes(data).find(raw)
    assert start > 0
    for i in range(start + 1, start + len(raw), 2):
        data[i] ^= 0x04
    blob.write_bytes(bytes(data))
    [again] = [r for r in run_parity(folder, sets=("Set5",), write=False, progress=False) if r.artifact == path.name]
    assert again.status == "FAIL" and "changed since export" in " ".join(again.notes)
    side = contract_path(path)
    doc = json.loads(side.read_text())
    doc["artifact"]["sha256"] = path_sha256(path)
    side.write_text(json.dumps(doc))
    [again] = [r for r in run_parity(folder, sets=("Set5",), write=False, progress=False) if r.artifact == path.name]
    assert again.ran and again.status == "FAIL", again.notes


@pytest.mark.parametrize("extra, message", [
    (["--image-io", "--layout", "NHWC"], "image I/O takes no layout"),
    (["--sizes", "8x8"], "too small"),
    (["--sizes", "32x48", "32x48x2"], "size must be"),
    (["--targets", "coreml-fp32"], "invalid choice"),
])
def test_cli_bad_input_is_a_one_line_error(exported: dict[str, Any], tmp_path: Path, extra: list[str], message: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--model", str(exported["ckpt"]), "--out", str(tmp_path / "o"), "--size", f"{H}x{W}",
                 "--no-progress", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in err[-1], err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


class TinyBranchAdd(torch.nn.Module):
    """A quantized residual add whose second branch has a tiny scale (as SeemoRe's near-constant
    branches do): dq(q(x, 1/64)) + dq(q(1e-4 x, 1/64000)) -> q(1/64)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qd = torch.ops.quantized_decomposed
        big = qd.dequantize_per_tensor(qd.quantize_per_tensor(x, 1 / 64, 0, -128, 127, torch.int8),
                                       1 / 64, 0, -128, 127, torch.int8)
        small = x * 1e-4
        tiny = qd.dequantize_per_tensor(qd.quantize_per_tensor(small, 1 / 64000, 0, -128, 127, torch.int8),
                                        1 / 64000, 0, -128, 127, torch.int8)
        return qd.dequantize_per_tensor(qd.quantize_per_tensor(big + tiny, 1 / 64, 0, -128, 127, torch.int8),
                                        1 / 64, 0, -128, 127, torch.int8)


def test_w8a8_lowering_keeps_quantized_adds_inside_fp16(tmp_path: Path) -> None:
    # coremltools' scale normalization of quantized adds divides both branches by one branch's
    # scale (here 1/64000: the sum becomes ~1.2e5, past fp16's 65504, and saturates); the
    # exporter must leave that pass out.
    import torchao  # noqa: F401  (registers the quantized_decomposed ops)

    from seemore.contract.spec import ExportSpec
    from seemore.export.coreml import CoreMLExporter

    module = torch.fx.symbolic_trace(TinyBranchAdd())
    spec = ExportSpec("coreml", "int8", 8, 8, scale=2)  # the scale is not used: no config
    x = torch.linspace(-1.9, 1.9, 3 * 8 * 8).reshape(1, 3, 8, 8)
    exporter = CoreMLExporter()
    path = tmp_path / "add.mlpackage"
    path.mkdir()
    exporter.serialize(exporter.lower(module, spec), path)
    got = load_mil_program(path).run({"lr": x})["sr"].float()
    assert torch.isfinite(got).all()
    assert torch.allclose(got, module(x), atol=1 / 64 + 1e-3)


def test_contracts_carry_every_key_the_demo_apps_read(exported: dict[str, Any]) -> None:
    assert_apps_read_every_contract(exported["out"])
