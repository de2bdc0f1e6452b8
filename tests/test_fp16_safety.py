"""FP16 safety check of the deploy form (seemore/deploy/fp16.py, benchmarks/fp16_safety.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import exit_code, load_script, saved_small_model, small_model
from seemore.common.tensors import tensor_to_image
from seemore.deploy import DeploySeemoRe, TopKRoutingMask, form, step_stages
from seemore.deploy.fp16 import FP16_MAX, SAFE_LIMIT, LrImage, check_fp16, format_report, fp16_copy
from seemore.export.calibration import center_crop, load_rgb
from seemore.model import topk_mask
from seemore.paths import bundled_images

pytestmark = pytest.mark.usefixtures("one_thread")


def photo_crops(n: int, height: int, width: int) -> list[LrImage]:
    """``n`` crops of the bundled photos (real content, always installed), as check inputs."""
    paths = bundled_images()[:n]
    return [LrImage("bundled", p.stem, center_crop(load_rgb(p), height, width)) for p in paths]


def tiny_deploy(seed: int = 0) -> DeploySeemoRe:
    return DeploySeemoRe.from_reference(small_model(seed))


def r16(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def row(report, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in report.rows if r.name == name)


def test_recorded_maxima_equal_a_direct_fp16_computation() -> None:
    model = tiny_deploy()
    images = photo_crops(2, 32, 40)
    report = check_fp16(model, images)
    half = fp16_copy(model, emulate=True)
    want_conv, want_sq = 0.0, 0.0
    norm = half.body[0].local_block.norm_1
    for image in images:
        with torch.no_grad():
            # The first conv layer by hand: every op's output rounded to fp16.
            conv = r16(half.conv_1(r16(r16(image.lr) - half.mean)))
            # An intermediate that no module returns: the first LayerNorm's centred * centred
            # (its input is conv_1's output).
            centred = r16(conv - r16(F.conv2d(conv, norm.mean_kernel)))
            sq = r16(centred * centred)
        want_conv = max(want_conv, conv.abs().max().item())
        want_sq = max(want_sq, sq.abs().max().item())
    assert row(report, "conv_1:convolution#0").max_abs == want_conv
    assert row(report, "body.0.local_block.norm_1:mul#0").max_abs == want_sq
    # The top-k mask's scaled differences are seen before their clamp (up to the gain).
    mask_muls = [r for r in report.rows if r.module.endswith("moe_layer.mask") and r.op == "mul"]
    assert mask_muls and max(r.max_abs for r in mask_muls) <= form._STEP_GAIN
    assert report.passes and not report.nonfinite and report.rows[0].max_abs == report.max_abs
    assert report.headroom == FP16_MAX / report.max_abs
    assert [r.max_abs for r in report.rows] == sorted((r.max_abs for r in report.rows), reverse=True)
    assert all(50.0 < i.psnr_db < math.inf for i in report.images)
    assert len(report.images) == 2 and "PASS" in format_report(report)


def test_emulation_stores_the_values_of_torch_fp16() -> None:
    model = tiny_deploy()
    images = photo_crops(1, 32, 32)
    emulated, real = check_fp16(model, images), check_fp16(model, images, emulate=False)
    assert not real.emulated and {r.name for r in emulated.rows} == {r.name for r in real.rows}
    got = {r.name: r.max_abs for r in real.rows}
    for r in emulated.rows:
        # Equal up to fp16 rounding differences (convolutions may sum in another order).
        assert abs(r.max_abs - got[r.name]) <= 4e-3 * r.max_abs + 1e-3, r.name
    assert abs(emulated.images[0].psnr_db - real.images[0].psnr_db) < 2.0


def test_a_large_step_gain_fails_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(form, "_STEP_GAIN", 2.0**15)
    report = check_fp16(tiny_deploy(), photo_crops(1, 32, 32))
    assert not report.passes and not report.nonfinite
    assert report.max_abs == 2.0**15 >= SAFE_LIMIT
    assert report.worst.module.endswith("moe_layer.mask") and report.worst.op == "mul"
    assert "FAIL" in report.summary()


def test_an_overflow_is_reported_non_finite() -> None:
    model = tiny_deploy()
    with torch.no_grad():
        model.conv_1.weight.mul_(1e5)
    report = check_fp16(model, photo_crops(1, 32, 32))
    assert report.nonfinite and not report.passes and report.worst.nonfinite
    # The LayerNorm's squares overflow; rsqrt(inf) = 0 then hides it from the output, which
    # stays finite and merely wrong: only the intermediates show the overflow.
    overflowed = {r.name for r in report.rows if r.nonfinite}
    assert "body.0.local_block.norm_1:mul#0" in overflowed
    assert "inf/nan" in format_report(report)


def test_new_gain_keeps_products_below_the_bar_and_stages_cover_the_proof() -> None:
    gain = form._STEP_GAIN
    assert gain == 2.0**13 and gain < SAFE_LIMIT and math.log2(gain).is_integer()
    # Top-1 over E experts: total gain >= 2**(26 + log2 E); k > 1: >= 2**150.
    for experts in (2, 3, 8):
        assert gain ** step_stages(experts, 1) >= 2.0 ** (26 + math.log2(experts))
    assert step_stages(3, 1) == 3 and step_stages(3, 2) == 12 and gain**12 >= 2.0**150


def one_below(x: float, dtype: torch.dtype) -> torch.Tensor:
    t = torch.tensor(x, dtype=dtype)
    int_type = {torch.float32: torch.int32, torch.float16: torch.int16}[dtype]
    return (t.view(int_type) - 1).view(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_topk_mask_stays_exact_with_the_new_gain_at_the_smallest_differences(dtype: torch.dtype) -> None:
    tiny = {torch.float32: 2.0**-149, torch.float16: 2.0**-24}[dtype]
    rows = []
    # Top-1 deciders: the winner p_max >= 1/E and a runner-up one representable step below
    # (at a power of two the step below is the smallest: half an ulp of the binade above).
    for top in (0.5, 1 / 3, 0.34, 0.9):
        p = torch.tensor(top, dtype=dtype)
        rows.append(torch.stack([p, one_below(float(p), dtype), (p.float() * 0.25).to(dtype)]))
    # k = 2 decided by subnormal differences: second and third differ by the smallest subnormal.
    rows.append(torch.tensor([0.5, 2 * tiny, tiny], dtype=dtype))
    rows.append(torch.tensor([tiny, 0.75, 2 * tiny], dtype=dtype))
    probs = torch.stack(rows)
    for k in (1, 2):
        got = TopKRoutingMask(3, k)(probs)
        assert got.dtype == dtype
        assert torch.equal(got.float(), topk_mask(probs.float(), k)), (dtype, k)
    # Every product of the mask is at most the gain (|diff| <= 1), below the fp16 bar.
    report_max = (probs[:, :1] - probs).abs().max().item() * form._STEP_GAIN
    assert report_max <= form._STEP_GAIN < SAFE_LIMIT


def tiny_data_root(folder: Path) -> Path:
    """A data root with one benchmark set ``Tiny`` of two 64x64 HR photo crops (LR made on load)."""
    hr = folder / "benchmark" / "Tiny" / "HR"
    hr.mkdir(parents=True)
    for image in photo_crops(2, 64, 64):
        Image.fromarray(tensor_to_image(image.lr)).save(hr / f"{image.name}.png")
    return folder


def test_cli_writes_json_and_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ckpt = saved_small_model(tmp_path)
    root = tiny_data_root(tmp_path / "data")
    out = tmp_path / "fp16.json"
    cli = load_script("benchmarks/fp16_safety.py")
    args = ["--model", str(ckpt), "--data-root", str(root), "--sets", "Tiny", "--json", str(out),
            "--no-progress", "--threads", "1", "--top", "5"]
    assert exit_code(cli.main, args) == 0
    text = capsys.readouterr().out
    assert "max |activation|" in text and "PASS" in text and "Tiny" in text
    payload = json.loads(out.read_text())
    assert payload["passes"] and payload["images_covered"] == 2 and payload["limit"] == SAFE_LIMIT
    assert payload["psnr_by_set"]["Tiny"]["images"] == 2
    assert payload["worst"]["max_abs"] == max(r["max_abs"] for r in payload["layers"])


def test_cli_exits_1_when_the_bar_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(form, "_STEP_GAIN", 2.0**15)
    _, ckpt = saved_small_model(tmp_path)
    root = tiny_data_root(tmp_path / "data")
    cli = load_script("benchmarks/fp16_safety.py")
    args = ["--model", str(ckpt), "--data-root", str(root), "--sets", "Tiny", "--no-progress", "--threads", "1"]
    assert exit_code(cli.main, args) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fp16_safety.py:")]
    assert len(err) == 1 and "fp16 bar failed" in err[0] and "moe_layer.mask" in err[0]


@pytest.mark.parametrize(("args", "message"), [(["--threads", "0"], "positive integer"),
                                               (["--json", "."], "is a folder"),
                                               (["--sets", "NoSuchSet"], "unknown benchmark set")])
def test_cli_bad_input_is_one_line(args: list[str], message: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    _, ckpt = saved_small_model(tmp_path)
    root = tiny_data_root(tmp_path / "data")
    cli = load_script("benchmarks/fp16_safety.py")
    code = exit_code(cli.main, ["--model", str(ckpt), "--data-root", str(root), "--no-progress", *args])
    assert code in (1, 2)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fp16_safety.py:")]
    assert len(err) == 1 and message in err[0]
