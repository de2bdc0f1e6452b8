"""Parity harness: discovery, fixed-size tiling, ExecuTorch runs against torch, tamper detection, CLI.

One small model (SeemoRe-T x4, one residual group) is exported once per module as XNNPACK
FP32 and INT8 ``.pte`` (the INT8 one lowered from a saved PTQ program, as a QAT program
would be) at 32x48; every test runs the harness on (a copy of) that folder with Set5 only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import seemore.parity as parity
from seemore import save_model
from seemore.checkpoint import file_sha256
from seemore.deploy import DeploySeemoRe
from seemore.export import ExportSpec, read_sidecar
from seemore.export.executorch_export import export_executorch
from seemore.quantize import capture, load_program, load_training_data, ptq_calibration_images, quantize_ptq, save_program
from conftest import load_script, saved_small_model, small_model

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 32, 48
SETS = ("Set5",)


def load_cli() -> ModuleType:
    return load_script("mobile/parity.py")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("parity")
    model, ckpt = saved_small_model(tmp, output_in_image_range=True)
    out = tmp / "artifacts"
    spec8 = ExportSpec("xnnpack", "int8", H, W)
    data = load_training_data(4, progress=False)
    images = ptq_calibration_images(data, 2, 32)
    converted = quantize_ptq(capture(DeploySeemoRe.from_reference(model), spec8), "xnnpack", images, progress=False)
    program, _ = save_program(converted, spec8, out, model.config, ckpt, "ptq", {})
    export_executorch(model, [ExportSpec("xnnpack", "fp32", H, W)], out, checkpoint=ckpt, verify=False)
    source = {"method": "provided program", "program": str(program), "sha256": file_sha256(program)}
    export_executorch(model, [spec8], out, checkpoint=ckpt, int8_model=load_program(program), int8_source=source,
                      verify=False)
    results = {r.artifact: r for r in parity.run_parity(out, sets=SETS, progress=False)}
    return {"model": model, "ckpt": ckpt, "out": out, "program": program, "results": results}


def copy_folder(exported: dict[str, Any], tmp_path: Path) -> Path:
    dest = tmp_path / "artifacts"
    shutil.copytree(exported["out"], dest)
    return dest


FP32 = f"seemore_t_x4_xnnpack_fp32_{H}x{W}.pte"
INT8 = f"seemore_t_x4_xnnpack_int8_{H}x{W}.pte"
PROGRAM = f"seemore_t_x4_xnnpack_int8_ptq_{H}x{W}.pt2"


def test_fixed_size_tiling_and_padding_reassemble_exactly() -> None:
    # A per-pixel "model" (nearest x4) must come back unchanged through padding and tiling.
    upscale = lambda x: F.interpolate(x, scale_factor=4, mode="nearest")  # noqa: E731
    torch.manual_seed(0)
    for h, w in [(20, 30), (57, 86), (128, 128), (32, 48)]:
        img = torch.rand(1, 3, h, w)
        got = parity.run_fixed(upscale, img, H, W, 4)
        assert torch.equal(got, upscale(img))
    spans = parity.window_spans(128, 32, 8)
    assert all(s.core_start < s.core_stop for s in spans)
    assert spans[0].core_start == 0 and spans[-1].core_stop == 128 and spans[-1].start == 96
    assert all(a.core_stop == b.core_start for a, b in zip(spans, spans[1:]))
    padded = parity.mirror_pad(torch.arange(3.0).view(1, 1, 1, 3), 1, 8)
    assert padded.flatten().tolist() == [0, 1, 2, 2, 1, 0, 0, 1]


def test_discovery_and_parity_of_fp32_and_int8(exported: dict[str, Any]) -> None:
    results = exported["results"]
    assert set(results) == {FP32, INT8, PROGRAM}
    fp32, int8, program = results[FP32], results[INT8], results[PROGRAM]
    assert fp32.status == "pass" and fp32.ran and fp32.parity_min_db >= 60.0
    assert "eager" in fp32.against
    assert int8.status == "pass" and int8.ran and int8.parity_min_db >= 45.0
    assert PROGRAM in int8.against
    # The reference's self-parity (channels-last re-run) is measured for INT8 only.
    assert int8.reference_floor_db is not None and int8.reference_floor_db > 30.0
    assert fp32.reference_floor_db is None
    assert program.status == "skipped" and not program.ran
    for r in (fp32, int8):
        assert 5.0 < r.task["Set5"]["psnr"] < 60.0 and 0.0 < r.task["Set5"]["ssim"] <= 1.0
        assert r.checks["delegate_calls"] == {"XnnpackBackend": 1} and r.checks["all_ops_delegated"]
        assert r.checks["input_shape"] == [1, 3, H, W] and r.checks["images"] == 5
    # Results are written back into the sidecars (not into the skipped program's).
    side = read_sidecar(exported["out"] / FP32)
    assert side["parity"]["status"] == "pass" and side["parity"]["parity_min_psnr_db"] >= 60.0
    assert read_sidecar(exported["out"] / PROGRAM)["parity"] == {}
    table = parity.format_table(list(results.values()))
    assert FP32 in table and "pass" in table and "skipped" in table


def test_int8_status_against_the_reference_floor() -> None:
    from seemore.export.bounds import parity_status

    assert parity_status("fp32", 60.5) == "pass" and parity_status("fp32", 59.0, 80.0) == "FAIL"
    assert parity_status("int8", 45.0) == "pass"
    # Below 45 dB: "at floor" only when within 1.5 dB of what the reference reproduces itself to.
    assert parity_status("int8", 40.0, 41.2) == "at floor"
    assert parity_status("int8", 39.6, 41.2) == "FAIL"
    assert parity_status("int8", 40.5, None) == "FAIL"


def test_backend_missing_from_runtime_is_reported_not_run(exported: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # What a Vulkan .pte gets on this host: structure checked, not executed, not a failure.
    from executorch.runtime import Runtime

    registry = Runtime.get().backend_registry
    monkeypatch.setattr(type(registry), "is_available", lambda self, name: False)
    artifact = next(a for a in parity.discover(copy_folder(exported, tmp_path)) if a.name == FP32)
    result = parity.Harness(sets=SETS, progress=False).check(artifact)
    assert result.status == "not run" and not result.ran and not result.failed
    assert "XnnpackBackend" in result.notes[0] and result.checks["all_ops_delegated"]


def test_wrong_weights_are_detected(exported: dict[str, Any], tmp_path: Path) -> None:
    root = copy_folder(exported, tmp_path)
    # The artifact stays, but its sidecar now points at other weights (hashes consistent):
    # only the numbers can tell.
    other = tmp_path / "other.safetensors"
    save_model(small_model(1, output_in_image_range=True), other)
    side_path = root / (FP32 + ".json")
    side = json.loads(side_path.read_text())
    side["source"] = {"checkpoint": str(other), "sha256": file_sha256(other)}
    side_path.write_text(json.dumps(side))
    artifact = next(a for a in parity.discover(root) if a.name == FP32)
    result = parity.Harness(sets=SETS, progress=False).check(artifact)
    assert result.status == "FAIL" and result.failed and result.parity_min_db < 60.0
    assert "parity" in result.notes[-1]


def test_cli_table_json_and_exit_codes(exported: dict[str, Any], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = copy_folder(exported, tmp_path)
    cli = load_cli()
    js = tmp_path / "parity.json"
    assert cli.main(["--root", str(root), "--sets", *SETS, "--json", str(js), "--threads", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert FP32 in out and INT8 in out
    payload = json.loads(js.read_text())
    assert {r["artifact"]: r["status"] for r in payload["results"]}[INT8] == "pass"
    # Tampered bytes: the INT8 file no longer matches its recorded hash -> non-zero exit, one line.
    with open(root / INT8, "ab") as f:
        f.write(b"\0")
    assert cli.main(["--root", str(root), "--sets", *SETS, "--threads", "1", "--no-progress", "--no-write"]) == 1
    captured = capsys.readouterr()
    assert "changed since export" in captured.out
    assert captured.err.strip().splitlines() == [f"parity.py: error: parity failed for {INT8}"]


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = load_cli()
    assert cli.main(["--root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    assert cli.main(["--root", str(tmp_path / "empty")]) == 2
    assert "no artifacts" in capsys.readouterr().err
