"""The README's main job, end to end on the shipped checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import seemore
from seemore import pipeline


@pytest.mark.skipif("seemore_t_x4" not in seemore.list_shipped(), reason="no shipped seemore_t_x4 in this checkout")
def test_pipeline_runs_every_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert pipeline.main(["--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "=== summary ===" in printed
    evaluation = json.loads((out / "eval.json").read_text())
    model_report, bicubic_report = evaluation["reports"]
    for name, scores in model_report["sets"].items():
        # A trained model must beat bicubic on every set.
        assert scores["psnr"] > bicubic_report["sets"][name]["psnr"] + 0.5
    assert len(json.loads((out / "cost.json").read_text())["models"]) == 9
    assert any((out / "upscaled").iterdir())


def test_pipeline_bad_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pipeline.main(["--out", str(tmp_path), "--model", str(tmp_path / "missing.safetensors")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pipeline: error:")
