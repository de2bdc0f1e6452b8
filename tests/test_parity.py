"""Parity harness: discovery through contracts, runners, bounds as data, tamper and move, CLI.

One small model (SeemoRe-T x4, one residual group) is exported once per module as XNNPACK
FP32 and INT8 ``.pte`` (the INT8 one lowered from a saved PTQ program, as a QAT program would
be) and Vulkan FP16 at 32x48; every test runs the harness on (a copy of) that folder with Set5
only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import seemore.parity as parity
from seemore import save_model
from seemore.common.files import file_sha256
from seemore.contract import contract_path, discover, read_contract
from seemore.deploy import DeploySeemoRe
from seemore.export import ExportOptions, export_targets, get_target
from seemore.parity.bounds import BOUNDS, BoundError, bound_for, judge
from seemore.quantize import capture, load_training_data, ptq_calibration_images, quantize_ptq, save_program
from seemore.runtime import base as runtime_base
from conftest import exit_code, saved_small_model, small_model

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 32, 48
SETS = ("Set5",)
FP32 = f"seemore_t_x4_xnnpack_fp32_{H}x{W}.pte"
INT8 = f"seemore_t_x4_xnnpack_int8_{H}x{W}.pte"
FP16 = f"seemore_t_x4_vulkan_fp16_{H}x{W}.pte"
PROGRAM = f"seemore_t_x4_xnnpack_int8_ptq_{H}x{W}.pt2"


def main(argv: list[str]) -> int:
    from seemore.parity.cli import main as parity_main

    return exit_code(parity_main, argv)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("parity")
    model, ckpt = saved_small_model(tmp, output_in_image_range=True)
    programs, out = tmp / "programs", tmp / "artifacts"
    spec8 = get_target("xnnpack-int8").spec(H, W, 4)
    data = load_training_data(4, progress=False)
    images = ptq_calibration_images(data, 2, 32)
    converted = quantize_ptq(capture(DeploySeemoRe.from_reference(model), spec8), "xnnpack", images, progress=False)
    program, _ = save_program(converted, spec8, programs, model.config, ckpt, "ptq", {"calibration_images": 2})
    targets = [get_target(n) for n in ("xnnpack-fp32", "xnnpack-int8", "vulkan-fp16")]
    export_targets(model, targets, out, ckpt, ExportOptions(height=H, width=W, program_dirs=(programs,),
                                                            verify=False))
    results = {r.artifact: r for r in parity.run_parity(out, sets=SETS, progress=False)}
    return {"model": model, "ckpt": ckpt, "out": out, "program": program, "results": results}


def copy_folder(exported: dict[str, Any], dest: Path) -> Path:
    shutil.copytree(exported["out"], dest)
    return dest


def check(root: Path, name: str) -> parity.ParityResult:
    found = next(f for f in discover(root) if f.name == name)
    return parity.Harness(sets=SETS, progress=False).check(found)


def test_discovery_and_parity_of_fp32_and_int8(exported: dict[str, Any]) -> None:
    results = exported["results"]
    assert set(results) == {FP32, INT8, FP16, PROGRAM}
    fp32, int8, program = results[FP32], results[INT8], results[PROGRAM]
    assert fp32.status == "pass" and fp32.ran and fp32.parity_min_db >= 60.0
    assert "eager" in fp32.against and fp32.bound_db == 60.0
    assert int8.status == "pass" and int8.ran and int8.parity_min_db >= 45.0
    # The program was found by the checkpoint's hash and copied beside the artifact.
    assert PROGRAM in int8.against and "int32-bias-grid" in int8.against
    assert (exported["out"] / PROGRAM).is_file()
    # The reference's self-parity (channels-last re-run) is measured for INT8 only.
    assert int8.reference_floor_db is not None and int8.reference_floor_db > 30.0
    assert fp32.reference_floor_db is None
    assert program.status == "skipped" and not program.ran
    for r in (fp32, int8):
        assert 5.0 < r.task["Set5"]["psnr"] < 60.0 and 0.0 < r.task["Set5"]["ssim"] <= 1.0
        s = r.checks["structure"]
        assert s["backends"] == {"XnnpackBackend": 1} and s["ops_outside"] == 0 and r.checks["images"] == 5
    # Results are written back into the contracts (not into the skipped program's).
    c = read_contract(contract_path(exported["out"] / FP32))
    assert c.parity["status"] == "pass" and c.parity["parity_min_psnr_db"] >= 60.0
    assert read_contract(contract_path(exported["out"] / PROGRAM)).parity == {}
    table = parity.format_results(list(results.values()))
    assert FP32 in table and "pass" in table and "skipped" in table


def test_bounds_are_data_and_a_missing_bound_is_an_error() -> None:
    fp32, int8, fp16 = bound_for("xnnpack", "fp32"), bound_for("xnnpack", "int8"), bound_for("vulkan", "fp16")
    assert (fp32.min_db, fp32.against) == (60.0, "eager") and (int8.min_db, int8.against) == (45.0, "program")
    assert fp16.min_db == 50.0 and fp16.against == "eager" and "fp16" in fp16.why
    assert all(b.why for b in BOUNDS) and len({b.key for b in BOUNDS}) == len(BOUNDS)
    assert judge(fp32, 60.5) == "pass" and judge(fp32, 59.0, 80.0) == "FAIL"
    assert judge(int8, 45.0) == "pass"
    # Below 45 dB: "at floor" only when within 1.5 dB of what the reference reproduces itself to.
    assert judge(int8, 40.0, 41.2) == "at floor" and judge(int8, 39.6, 41.2) == "FAIL"
    assert judge(int8, 40.5, None) == "FAIL"
    assert judge(fp16, 49.0) == "FAIL" and judge(fp16, float("nan")) == "FAIL" and judge(fp16, float("inf")) == "pass"
    with pytest.raises(BoundError, match="no parity bound for litert/bf16"):
        bound_for("litert", "bf16")
    # Core ML variants: compressed weights have their own bounds; image I/O also limits 8-bit levels.
    image = bound_for("coreml", "fp16", io="image")
    assert image.key == "coreml/fp16/image" and image.max_levels == 1
    assert judge(image, 58.0, None, 1.0) == "pass" and judge(image, 58.0, None, 2.0) == "FAIL"
    assert bound_for("coreml", "fp16", "w8").min_db < bound_for("coreml", "fp16").min_db
    with pytest.raises(BoundError, match="coreml/fp16/lut4"):
        bound_for("coreml", "fp16", "lut4")


def test_a_noisy_fp16_artifact_fails_its_bound(exported: dict[str, Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # A runtime that can run the Vulkan file but returns fp16-overflowing or noisy pictures.
    from seemore.runtime.executorch import ExecuTorchRunner

    class NoisyRunner(ExecuTorchRunner):
        def available(self, path: Path | None = None) -> str | None:
            return None

        def load(self, path: Path) -> Any:
            reference = DeploySeemoRe.from_reference(exported["model"]).eval()
            return lambda x: reference(x) + 0.01 * torch.randn_like(reference(x))

    monkeypatch.setitem(runtime_base._RUNNERS, "executorch", NoisyRunner)
    result = check(copy_folder(exported, tmp_path / "a"), FP16)
    assert result.ran and result.status == "FAIL" and result.bound_db == 50.0
    assert 30.0 < result.parity_min_db < 50.0


def test_a_tampered_fp16_artifact_fails(exported: dict[str, Any], tmp_path: Path) -> None:
    root = copy_folder(exported, tmp_path / "a")
    assert check(root, FP16).status == "not run"
    with open(root / FP16, "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    result = check(root, FP16)
    assert result.status == "FAIL" and result.failed and "changed since export" in result.notes[0]


def test_a_moved_folder_still_passes(exported: dict[str, Any], tmp_path: Path) -> None:
    # As on a Mac or a device host: the folder alone, the original checkpoint and programs gone.
    root = copy_folder(exported, tmp_path / "elsewhere" / "deep" / "artifacts")
    moved_ckpt = tmp_path / "gone.safetensors"
    shutil.move(exported["ckpt"], moved_ckpt)
    try:
        results = {r.artifact: r for r in parity.run_parity(root, sets=SETS, progress=False, write=False)}
    finally:
        shutil.move(moved_ckpt, exported["ckpt"])
    assert results[FP32].status == "pass" and results[INT8].status == "pass"


def test_backend_missing_from_runtime_is_reported_not_run(exported: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # What a Vulkan .pte gets on this host: structure checked, not executed, not a failure.
    from executorch.runtime import Runtime

    registry = Runtime.get().backend_registry
    monkeypatch.setattr(type(registry), "is_available", lambda self, name: False)
    result = check(copy_folder(exported, tmp_path / "a"), FP32)
    assert result.status == "not run" and not result.ran and not result.failed
    assert "XnnpackBackend" in result.notes[0] and result.checks["structure"]["ops_outside"] == 0


def test_a_file_whose_io_differs_from_its_contract_fails(exported: dict[str, Any], tmp_path: Path) -> None:
    # A consistent, valid contract that claims batch 2 for a batch-1 program: only the file can tell.
    root = copy_folder(exported, tmp_path / "a")
    side_path = contract_path(root / FP32)
    side = json.loads(side_path.read_text())
    side["spec"]["batch"] = 2
    side["inputs"][0]["shape"][0] = side["outputs"][0]["shape"][0] = 2
    side_path.write_text(json.dumps(side))
    result = check(root, FP32)
    assert result.status == "FAIL" and not result.ran
    assert result.notes == [f"input shape [1, 3, {H}, {W}] differs from the contract's [2, 3, {H}, {W}]",
                            f"output shape [1, 3, {4 * H}, {4 * W}] differs from the contract's [2, 3, {4 * H}, {4 * W}]"]


def test_wrong_weights_are_detected(exported: dict[str, Any], tmp_path: Path) -> None:
    root = copy_folder(exported, tmp_path / "a")
    # The artifact stays, but its contract now points at other weights (hashes consistent):
    # only the numbers can tell.
    other = root / "other.safetensors"
    save_model(small_model(1, output_in_image_range=True), other)
    side_path = contract_path(root / FP32)
    side = json.loads(side_path.read_text())
    side["source"].update(checkpoint="other.safetensors", sha256=file_sha256(other))
    side_path.write_text(json.dumps(side))
    result = check(root, FP32)
    assert result.status == "FAIL" and result.failed and result.parity_min_db < 60.0
    assert "parity" in result.notes[-1]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(spec="xnnpack"), "spec must be an object"),
        (lambda d: d["spec"].update(backend=7), "unknown backend"),
        (lambda d: d["artifact"].update(path="/abs/model.pte"), "relative"),
        (lambda d: d.pop("source"), "missing fields source"),
        (lambda d: d.update(version=1), "version 1 is not supported"),
        (lambda d: d["inputs"][0].update(shape=[1, 3, 8, 8]), "does not follow from the spec"),
    ],
)
def test_a_malformed_contract_is_a_failed_row(exported: dict[str, Any], tmp_path: Path, edit: Any,
                                             message: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_folder(exported, tmp_path / "a")
    side_path = contract_path(root / FP32)
    data = json.loads(side_path.read_text())
    edit(data)
    side_path.write_text(json.dumps(data))
    assert main(["--root", str(root), "--sets", *SETS, "--threads", "1", "--no-progress", "--no-write"]) == 1
    captured = capsys.readouterr()
    assert message in captured.out and f"{FP32}" in captured.out
    assert captured.err.strip().splitlines() == [f"parity.py: error: parity failed for {FP32}"]


def test_cli_table_json_and_exit_codes(exported: dict[str, Any], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_folder(exported, tmp_path / "a")
    (root / "notes.json").write_text("{ not json")  # not ours: no file of that name beside it
    js = tmp_path / "parity.json"
    assert main(["--root", str(root), "--sets", *SETS, "--json", str(js), "--threads", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert FP32 in out and INT8 in out and "notes" not in out
    payload = json.loads(js.read_text())
    assert {r["artifact"]: r["status"] for r in payload["results"]}[INT8] == "pass"
    # Unreadable JSON beside an artifact: a failed row, not a silently dropped artifact.
    contract_path(root / INT8).write_text("{ truncated")
    assert main(["--root", str(root), "--sets", *SETS, "--threads", "1", "--no-progress", "--no-write"]) == 1
    captured = capsys.readouterr()
    assert "unreadable contract" in captured.out
    assert captured.err.strip().splitlines() == [f"parity.py: error: parity failed for {INT8}"]


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    assert main(["--root", str(tmp_path / "empty")]) == 2
    assert "no artifacts" in capsys.readouterr().err
    assert main(["--root", str(tmp_path), "--threads", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err
    (tmp_path / "j").mkdir()
    assert main(["--root", str(tmp_path), "--json", str(tmp_path / "j")]) == 2
    assert "is a folder" in capsys.readouterr().err
