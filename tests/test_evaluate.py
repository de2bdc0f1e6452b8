"""Benchmark loading, the bicubic rows of the paper, model evaluation and the evaluate CLI."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import seemore.benchmark as benchmark
import seemore.evaluate as evaluate
from seemore import create_model, save_model
from seemore.benchmark import load_benchmark, load_named_benchmark
from seemore.evaluate import evaluate_bicubic, evaluate_model, main
from seemore.imresize import imresize
from seemore.metrics import sr_metrics
from seemore.paths import DataError, resolve_data_root

DATA = resolve_data_root()
BENCH = DATA / "benchmark" if DATA is not None else None
needs_benchmark = pytest.mark.skipif(
    BENCH is None or not (BENCH / "Set5").is_dir() or not (BENCH / "Set14").is_dir(),
    reason="benchmark data (Set5/Set14) not found",
)

# docs/MODEL.md (paper results): Bicubic rows (PSNR, SSIM).
PAPER_BICUBIC = {
    (2, "Set5"): (33.66, 0.9299),
    (2, "Set14"): (30.24, 0.8688),
    (3, "Set5"): (30.39, 0.8682),
    (3, "Set14"): (27.55, 0.7742),
    (4, "Set5"): (28.42, 0.8104),
    (4, "Set14"): (26.00, 0.7027),
}


@pytest.fixture(autouse=True)
def _fresh_cache_one_thread() -> Iterator[None]:
    # One thread: on a shared 2-core machine, torch's thread pool is ~100x slower on small convs.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    benchmark.clear_cache()
    yield
    benchmark.clear_cache()
    torch.set_num_threads(threads)


class NearestUpsampler(nn.Module):
    """A 'model' whose output is known exactly: nearest-neighbour x``scale``."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") + self.dummy


def _tiny_model_file(tmp_path: Path, scale: int = 4) -> Path:
    torch.manual_seed(0)
    model = create_model("seemore_t", scale, num_layers=1, embedding_dim=8)
    path = tmp_path / f"tiny_x{scale}.safetensors"
    save_model(model, path)
    return path


# ----------------------------------------------------------------------------- loading


@needs_benchmark
def test_load_benchmark_layout_and_cache() -> None:
    images = load_benchmark("Set14", 3)
    assert [i.name for i in images][:3] == ["baboon", "barbara", "bridge"]
    for img in images:
        assert img.hr.dtype == np.uint8 and img.lr.dtype == np.uint8
        assert img.lr.shape[:2] == (img.hr.shape[0] // 3, img.hr.shape[1] // 3)
        assert not img.hr.flags.writeable and not img.lr.flags.writeable
    bridge = images[2]
    assert bridge.hr.ndim == 2 and bridge.lr.ndim == 2  # grayscale stays single-channel
    # Cached: the same arrays come back, whatever the spelling of the name.
    again = load_benchmark("set14", 3)
    assert all(a.hr is b.hr for a, b in zip(images, again))
    name, by_path = load_named_benchmark(str(BENCH / "Set14"), 3)
    assert name == "Set14" and by_path[0].lr is images[0].lr


@needs_benchmark
def test_missing_lr_is_made_with_imresize(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "Mini"
    (folder / "HR").mkdir(parents=True)
    (folder / "LR_bicubic" / "X3").mkdir(parents=True)
    for name in ("bird", "woman"):
        shutil.copy(BENCH / "Set5" / "HR" / f"{name}.png", folder / "HR")
    shutil.copy(BENCH / "Set5" / "LR_bicubic" / "X3" / "birdx3.png", folder / "LR_bicubic" / "X3")
    name, images = load_named_benchmark(folder, 3)
    assert name == "Mini"
    assert "1 of 2 LR images missing" in capsys.readouterr().err
    reference = load_benchmark("Set5", 3)
    assert np.array_equal(images[1].lr, reference[4].lr)  # woman: made here == distributed file
    load_named_benchmark(folder, 3)
    assert capsys.readouterr().err == ""  # said once


def test_data_errors(tmp_path: Path) -> None:
    (tmp_path / "benchmark" / "Empty" / "HR").mkdir(parents=True)
    bad = tmp_path / "benchmark" / "Bad" / "HR"
    bad.mkdir(parents=True)
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="unknown benchmark set 'Nope'.*Bad, Empty"):
        load_benchmark("Nope", 4, data_root=tmp_path)
    with pytest.raises(DataError, match="no images"):
        load_benchmark("Empty", 4, data_root=tmp_path)
    with pytest.raises(DataError, match=r"broken\.png: unreadable image") as err:
        load_benchmark("Bad", 4, data_root=tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="no such benchmark folder"):
        load_benchmark(str(tmp_path / "missing"), 4)


def test_bundled_fallback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(benchmark, "resolve_data_root", lambda explicit=None: None)
    name, images = load_named_benchmark("Set5", 4)
    assert name == "bundled" and len(images) >= 3
    assert "bundled sample photos" in capsys.readouterr().err
    for img in images:
        assert max(img.hr.shape[:2]) <= benchmark.BUNDLED_MAX_SIDE
        h, w = img.hr.shape[:2]
        assert np.array_equal(img.lr, imresize(img.hr[: h - h % 4, : w - w % 4], 1 / 4))
    # Set5 and Set14 both map to the one bundled set, evaluated once.
    report = evaluate_bicubic(("Set5", "Set14"), 4)
    assert [s.name for s in report.sets] == ["bundled"]


# ----------------------------------------------------------------------------- bicubic rows


@needs_benchmark
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_reproduces_paper_rows(scale: int) -> None:
    report = evaluate_bicubic(("Set5", "Set14"), scale)
    for set_score in report.sets:
        paper_psnr, paper_ssim = PAPER_BICUBIC[(scale, set_score.name)]
        assert abs(set_score.psnr - paper_psnr) <= 0.03, (set_score.name, set_score.psnr)
        assert abs(set_score.ssim - paper_ssim) <= 0.001, (set_score.name, set_score.ssim)


@needs_benchmark
def test_gray_as_rgb_shifts_bridge_by_the_ycbcr_range() -> None:
    own = evaluate_bicubic("Set14", 4).set("Set14")
    rgb = evaluate_bicubic("Set14", 4, gray_as_rgb=True).set("Set14")
    by_name = {i.name: i.psnr for i in own.images}
    for img in rgb.images:
        # YCbCr maps a gray g to 16 + 219/255 g: errors shrink by 219/255 on "bridge" only.
        shift = 20 * math.log10(255 / 219) if img.name == "bridge" else 0.0
        assert img.psnr == pytest.approx(by_name[img.name] + shift, abs=1e-9)


# ----------------------------------------------------------------------------- models


@needs_benchmark
def test_evaluate_model_matches_direct_computation() -> None:
    model = NearestUpsampler(4)
    model.train()
    report = evaluate_model(model, ["Set14"], device=None, label="nearest")
    assert model.training  # mode restored for the training loop
    assert report.method == "nearest" and report.scale == 4
    scores = report.set("Set14")
    for img, score in zip(load_benchmark("Set14", 4), scores.images):
        lr = img.lr if img.lr.ndim == 3 else img.lr[:, :, None]
        sr = lr.repeat(4, axis=0).repeat(4, axis=1)
        # Gray "bridge": the RGB output has equal channels, so it scores like the gray result.
        sr = sr[:, :, 0] if img.lr.ndim == 2 else sr
        expected = sr_metrics(sr, img.hr, 4)
        assert score.name == img.name
        assert score.psnr == pytest.approx(expected[0], abs=1e-9)
        assert score.ssim == pytest.approx(expected[1], abs=1e-12)
    assert scores.psnr == pytest.approx(np.mean([i.psnr for i in scores.images]))
    doc = report.to_dict()
    json.dumps(doc, allow_nan=False)
    assert doc["sets"]["Set14"]["images"]["bridge"]["psnr"] == pytest.approx(scores.images[2].psnr, abs=1e-6)
    assert "Set14" in report.table(per_image=True) and "bridge" in report.table(per_image=True)
    with pytest.raises(ValueError, match="model is x4"):
        evaluate_model(model, ["Set5"], scale=2)


# ----------------------------------------------------------------------------- CLI


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@needs_benchmark
def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _tiny_model_file(tmp_path)
    out = tmp_path / "out" / "eval.json"
    rc = main(
        ["--model", str(ckpt), "--scale", "4", "--sets", "Set5", "--bicubic", "--per-image",
         "--json", str(out), "--threads", "1", "--no-progress"]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "tiny_x4" in captured.out and "butterfly" in captured.out and "bicubic" in captured.out
    doc = json.loads(out.read_text())
    model_rep, bicubic_rep = doc["reports"]
    assert model_rep["method"] == "tiny_x4" and model_rep["info"]["config"] == "seemore_t_x4"
    assert set(model_rep["sets"]["Set5"]["images"]) == {"baby", "bird", "butterfly", "head", "woman"}
    assert bicubic_rep["sets"]["Set5"]["psnr"] == pytest.approx(28.42, abs=0.03)
    # The CLI reports what the library computes.
    from seemore import load_model

    lib = evaluate_model(load_model(ckpt), ["Set5"])
    assert model_rep["sets"]["Set5"]["psnr"] == pytest.approx(lib.set("Set5").psnr, abs=1e-5)
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left nothing behind


def test_cli_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = _tiny_model_file(tmp_path)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00garbage" * 10)
    json_out = tmp_path / "never.json"
    cases = [
        (["--model", str(tmp_path / "missing.safetensors")], 1, "no such file"),
        (["--model", str(corrupt)], 1, "corrupt.safetensors"),
        (["--model", str(ckpt), "--scale", "2"], 1, "x4"),
        (["--model", str(ckpt), "--sets", "NoSuchSet"], 1, "NoSuchSet"),
        (["--bicubic", "--scale", "5"], 2, "--scale"),
        (["--bicubic", "--threads", "0"], 2, "--threads"),
        (["--bicubic", "--device", "nonsense"], 2, "--device"),
        (["--bicubic", "--json", str(tmp_path)], 2, "is a folder"),
    ]
    monkeypatch.setattr(evaluate, "list_shipped", lambda: {})
    cases.append(([], 1, "pass --model PATH or --bicubic"))
    # A data root without any set: hermetic, and "NoSuchSet" cannot fall back to bundled images.
    root = tmp_path / "root"
    (root / "benchmark").mkdir(parents=True)
    for argv, code, needle in cases:
        full = [*argv, "--no-progress", "--data-root", str(root)]
        if "--json" not in argv:
            full += ["--json", str(json_out)]
        try:
            rc = main(full)
        except SystemExit as exc:  # argparse errors
            rc = int(exc.code or 0)
        line = _one_line_error(capsys.readouterr().err)
        assert rc == code, (argv, line)
        assert line.startswith("seemore-evaluate: error:") and needle in line, (argv, line)
        assert not json_out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--bicubic", "--threads", "0"],
        ["--bicubic", "--threads", "two"],
        ["--bicubic", "--json", "FOLDER"],
        ["--model", "seemore_q_x4"],  # not a shipped name
        ["--model", "FOLDER"],  # a folder is not a checkpoint
        ["--bicubic", "--sets"],  # --sets needs at least one set
        ["--bicubic", "--device", "nonsense"],
    ],
)
def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    argv = [str(tmp_path) if a == "FOLDER" else a for a in argv]
    root = tmp_path / "root"
    (root / "benchmark").mkdir(parents=True)
    try:
        rc = main([*argv, "--no-progress", "--data-root", str(root)])
    except SystemExit as exc:  # argparse errors
        rc = int(exc.code or 0)
    assert rc != 0
    line = _one_line_error(capsys.readouterr().err)
    assert line.startswith("seemore-evaluate: error:"), line


def test_cli_subprocess_error_has_no_traceback(tmp_path: Path) -> None:
    corrupt = tmp_path / "bad.pth"
    corrupt.write_bytes(b"definitely not a checkpoint")
    proc = subprocess.run(
        [sys.executable, "-m", "seemore.evaluate", "--model", str(corrupt), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "bad.pth" in _one_line_error(proc.stderr)
