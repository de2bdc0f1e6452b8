"""The README's main job, end to end on the shipped checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import seemore
from seemore import pipeline

from conftest import saved_small_model


@pytest.mark.skipif("seemore_t_x4" not in seemore.list_shipped(), reason="no shipped seemore_t_x4 in this checkout")
def test_pipeline_runs_every_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert pipeline.main(["--out", str(out), "--threads", "1", "--steps", "cost", "evaluate", "upscale"]) == 0
    printed = capsys.readouterr().out
    assert "=== summary ===" in printed
    evaluation = json.loads((out / "eval.json").read_text())
    model_report, bicubic_report = evaluation["reports"]
    for name, scores in model_report["sets"].items():
        # A trained model must beat bicubic on every set.
        assert scores["psnr"] > bicubic_report["sets"][name]["psnr"] + 0.5
    assert len(json.loads((out / "cost.json").read_text())["models"]) == 9
    assert any((out / "upscaled").iterdir())


def test_pipeline_quantize_export_parity_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The deploy half of the pipeline on a small model (one residual group, output near image
    # range like a trained model's) at a small export size; the shipped model runs the same code.
    model, ckpt = saved_small_model(tmp_path, output_in_image_range=True)
    out = tmp_path / "out"
    # Only the XNNPACK program is made: no Core ML step is selected (its exports are
    # tests/test_export_coreml.py's, through the same export_targets).
    argv = ["--out", str(out), "--threads", "1", "--model", str(ckpt), "--steps", "quantize", "export", "parity",
            "--qat-steps", "2", "--size", "32x48"]
    assert pipeline.main(argv) == 0
    printed = capsys.readouterr().out
    summary = printed.split("=== summary ===")[1]
    assert "QAT" in summary and "xnnpack_int8" in summary and "1 not run, 2 pass" in summary
    assert "coreml" not in summary and not (out / "quantization" / "qat_coreml.json").exists()
    qat = json.loads((out / "quantization" / "qat.json").read_text())
    assert set(qat["metrics"]) >= {"fp32", "ptq_int8", "qat_int8"}
    names = sorted(p.name for p in (out / "executorch").glob("*.pte"))
    assert names == [f"seemore_t_x4_{t}_32x48.pte" for t in ("vulkan_fp16", "xnnpack_fp32", "xnnpack_int8")]
    parity = {r["artifact"]: r for r in json.loads((out / "parity.json").read_text())["results"]}
    assert parity["seemore_t_x4_xnnpack_fp32_32x48.pte"]["status"] == "pass"
    assert parity["seemore_t_x4_xnnpack_int8_32x48.pte"]["ran"]
    assert parity["seemore_t_x4_xnnpack_int8_32x48.pte"]["against"].startswith("fake-quant program")
    assert parity["seemore_t_x4_vulkan_fp16_32x48.pte"]["status"] == "not run"
    # The INT8 artifact was lowered from the quantize step's QAT program, copied beside it.
    contract = json.loads((out / "executorch" / "seemore_t_x4_xnnpack_int8_32x48.pte.json").read_text())
    assert contract["quantization"]["method"] == "qat"
    assert contract["quantization"]["program"]["path"] == "seemore_t_x4_xnnpack_int8_qat_32x48.pt2"


def test_pipeline_bad_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pipeline.main(["--out", str(tmp_path), "--model", str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seemore-pipeline: error:")


def test_every_export_step_lowers_its_own_quantizers_program_in_its_runtimes_layout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What each export step hands the export driver (the exports themselves are the export
    # tests'): its runtime's default targets, layout and the quantize step's program of the
    # target's quantizer.
    import seemore.export as export

    seen: list[tuple[str, str, str | None]] = []

    def record(model, targets, out, checkpoint, options, progress=None):  # noqa: ANN001, ANN202
        seen.extend((t.name, options.layout, options.int8_program and options.int8_program.name) for t in targets)
        return []

    monkeypatch.setattr(export, "export_targets", record)
    programs = {b: tmp_path / f"{b}.pt2" for b in pipeline.QUANT_BACKENDS}
    ctx = pipeline.PipelineContext(tmp_path, None, "seemore_t_x4", 1, int8_programs=programs)
    assert set(pipeline.QUANT_FOR_STEP.values()) <= set(pipeline.STEPS)
    for backend, step in pipeline.QUANT_FOR_STEP.items():
        pipeline.STEPS[step](ctx)
    layouts = {name: layout for name, layout, _ in seen}
    assert layouts["litert-fp32"] == layouts["litert-int8"] == "NHWC"
    assert layouts["xnnpack-fp32"] == layouts["coreml-fp16"] == "NCHW"
    int8 = {name: program for name, _, program in seen if name.endswith("int8")}
    assert int8 == {"xnnpack-int8": "xnnpack.pt2", "coreml-int8": "coreml.pt2", "litert-int8": "litert.pt2"}
    assert set(pipeline.PARITY_FOLDERS) >= {"executorch", "coreml", "litert"}
