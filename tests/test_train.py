"""The training pipeline on tiny data: learning, exact resume, degradation, data errors, CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import seemore
from seemore import train as T
from seemore.train import cli as train_cli
from seemore.imresize import imresize
from seemore.paths import DataError, default_data_root
from seemore.train.data import PatchSampler, degrade, load_training_images


def _texture(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth, learnable colour image: gradients plus a few soft blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img = img + blob[..., None] * rng.uniform(-0.5, 0.5, 3)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HR-only training folder, a standard-layout folder, and a one-image validation set."""
    root = tmp_path_factory.mktemp("data")
    (root / "hr_only").mkdir()
    for i in range(3):
        Image.fromarray(_texture(i, 64, 72)).save(root / "hr_only" / f"img{i}.png")
    # One image smaller than the patch: must be padded, not crash.
    Image.fromarray(_texture(9, 20, 24)).save(root / "hr_only" / "small.png")
    std = root / "standard"
    (std / "HR").mkdir(parents=True)
    (std / "LR_bicubic" / "X2").mkdir(parents=True)
    hr = _texture(5, 64, 64)
    Image.fromarray(hr).save(std / "HR" / "a.png")
    Image.fromarray(imresize(hr, 0.5)).save(std / "LR_bicubic" / "X2" / "ax2.png")
    val = root / "val"
    (val / "HR").mkdir(parents=True)
    (val / "LR_bicubic" / "X2").mkdir(parents=True)
    hr = _texture(7, 48, 48)
    Image.fromarray(hr).save(val / "HR" / "v.png")
    Image.fromarray(imresize(hr, 0.5)).save(val / "LR_bicubic" / "X2" / "vx2.png")
    return root


def _config(data: Path, out: Path, iterations: int, **extra: object) -> T.TrainConfig:
    values = dict(
        variant="seemore_t", scale=2, train_data=[str(data / "hr_only"), str(data / "standard")],
        val_data=[str(data / "val")], patch_size=16, batch_size=2, iterations=iterations,
        val_every=1000, save_every=2, log_every=1, threads=1, channels_last=False, out=str(out),
        seed=3, ema_decay=0.9,
    )
    values.update(extra)
    return T.resolve_config(None, values)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "state.pt", weights_only=False)["model"]


def test_few_iterations_lower_the_loss(tiny_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = _config(tiny_data, tmp_path / "run", iterations=12, lr=2e-3)
    trainer = T.Trainer(cfg, progress=False)
    first = [trainer._step(*trainer.sampler.batch(i, 4)) for i in range(3)]
    for i in range(3, 30):
        trainer._step(*trainer.sampler.batch(i, 4))
    last = [trainer._step(*trainer.sampler.batch(i, 4)) for i in range(30, 33)]
    assert np.mean(last) < 0.7 * np.mean(first)


def test_resume_equals_uninterrupted_run(tiny_data: Path, tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    T.Trainer(_config(tiny_data, straight, iterations=4), progress=False).train()

    split = tmp_path / "split"
    T.Trainer(_config(tiny_data, split, iterations=2), progress=False).train()
    resumed = T.Trainer(_config(tiny_data, split, iterations=4), resume=True, progress=False)
    assert resumed.iteration == 2 and len(resumed.commands) == 2
    resumed.train()

    a, b = _weights(straight), _weights(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ema_a = torch.load(straight / "state.pt", weights_only=False)["ema"]["shadow"]
    ema_b = torch.load(split / "state.pt", weights_only=False)["ema"]["shadow"]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    # Outputs: shipped weights carry config and a training record with validation numbers.
    model = seemore.load_model(straight / "best.safetensors")
    assert model.config.name == "seemore_t_x2"
    rows = list(csv.DictReader(open(straight / "log.csv")))
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"] and rows[-1]["val_psnr"]


def test_batches_are_a_function_of_seed_and_iteration(tiny_data: Path) -> None:
    images = load_training_images([tiny_data / "hr_only"], scale=2, progress=False)
    sampler = PatchSampler(images, scale=2, patch_size=16, seed=1)
    lr1, hr1 = sampler.batch(5, 3)
    lr2, hr2 = PatchSampler(images, scale=2, patch_size=16, seed=1).batch(5, 3)
    assert np.array_equal(lr1, lr2) and np.array_equal(hr1, hr2)
    assert lr1.shape == (3, 3, 16, 16) and hr1.shape == (3, 3, 32, 32)
    assert not np.array_equal(lr1, sampler.batch(6, 3)[0])
    assert not np.array_equal(lr1, sampler.batch(5, 3, rank=1)[0])


def test_patches_stay_aligned_under_augmentation(tiny_data: Path) -> None:
    images = load_training_images([tiny_data / "standard"], scale=2, progress=False)
    sampler = PatchSampler(images, scale=2, patch_size=16, seed=0)
    for it in range(8):
        lr, hr = sampler.batch(it, 2)
        for b in range(2):
            lr_u8 = np.round(lr[b].transpose(1, 2, 0) * 255).astype(np.uint8)
            hr_u8 = np.round(hr[b].transpose(1, 2, 0) * 255).astype(np.uint8)
            # The benchmark-style LR of an aligned HR patch is close to the LR patch away from borders.
            down = imresize(hr_u8, 0.5).astype(int)[2:-2, 2:-2]
            assert np.abs(down - lr_u8.astype(int)[2:-2, 2:-2]).mean() < 2.0


@pytest.mark.skipif(default_data_root() is None, reason="needs ../shared/data (benchmark LR files)")
def test_degradation_matches_benchmark_lr_files() -> None:
    root = default_data_root()
    assert root is not None
    for name in ("baby", "butterfly"):
        hr = np.asarray(Image.open(root / "benchmark" / "Set5" / "HR" / f"{name}.png").convert("RGB"))
        lr_file = np.asarray(Image.open(root / "benchmark" / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png"))
        _, lr = degrade(hr, 4)
        assert lr.shape == lr_file.shape
        assert np.abs(lr.astype(int) - lr_file.astype(int)).max() <= 1


def test_missing_empty_and_corrupt_data_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_training_images([tmp_path / "nope"], scale=2, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_training_images([tmp_path / "empty"], scale=2, progress=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"x\.png: cannot read image"):
        load_training_images([tmp_path / "bad"], scale=2, progress=False)


def test_init_from_other_scale_reports_what_was_not_loaded(tmp_path: Path) -> None:
    x2 = seemore.create_model("seemore_t", 2)
    seemore.save_model(x2, tmp_path / "x2.safetensors")
    x4 = seemore.create_model("seemore_t", 4)
    missing = T.init_from_checkpoint(x4, str(tmp_path / "x2.safetensors"))
    assert missing == ["upsampler.0.bias", "upsampler.0.weight"]
    assert torch.equal(x4.state_dict()["conv_1.weight"], x2.state_dict()["conv_1.weight"])


def test_schedules() -> None:
    paper = T.TrainConfig()
    assert T.lr_factor(paper, 0) == 1.0
    assert T.lr_factor(paper, 250_000) == 0.5 and T.lr_factor(paper, 475_000) == 0.5**4
    wsd = T.TrainConfig(scheduler="wsd", iterations=100, decay_iters=20, min_lr=0.0)
    assert T.lr_factor(wsd, 79) == 1.0 and T.lr_factor(wsd, 90) == pytest.approx(0.5)
    cos = T.TrainConfig(scheduler="cosine", iterations=100, min_lr=0.0)
    assert T.lr_factor(cos, 50) == pytest.approx(0.5)


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("seemore-train: error:"), err
    return lines[0]


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # (arguments, exit status): 2 for a bad flag or config, 1 when the run itself cannot proceed.
    cases = [
        (["--train-data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], 1),
        (["--config", str(tmp_path / "none.toml")], 2),
        (["--patch-size", "8"], 2),
        (["--resume", "--out", str(tmp_path / "never")], 2),
    ]
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("batch_size = [\n")
    cases.append((["--config", str(bad_toml)], 2))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("bogus = 1\n")
    cases.append((["--config", str(unknown)], 2))
    for args, code in cases:
        assert T.main(["--no-progress", *args]) == code, args
        _one_error_line(capsys.readouterr().err)
    # Once as a real process: the module entry point exits non-zero without a traceback.
    proc = subprocess.run([sys.executable, "-m", "seemore.train", "--no-progress", *cases[0][0]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--threads", "0"],
        ["--threads", "-1"],
        ["--data-root", "MISSING"],
        ["--data-root"],  # needs a folder
        ["--init-from", "seemore_q_x4"],  # not a shipped name
        ["--init-from", "FOLDER"],  # a folder is not a checkpoint
        ["--variant", "seemore_q"],
    ],
)
def test_cli_bad_flag_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    argv = [{"FOLDER": str(tmp_path), "MISSING": str(tmp_path / "missing")}.get(a, a) for a in argv]
    try:
        # A tiny run, should a regression ever let the bad flag through.
        tiny = ["--iterations", "1", "--batch-size", "1", "--patch-size", "16", "--val-every", "1000"]
        code = T.main(["--no-progress", "--out", str(tmp_path / "run"), *tiny, *argv])
    except SystemExit as exc:  # argparse rejects the flag
        code = exc.code
    assert code != 0
    _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "run").exists()


def test_cli_threads_default_and_config(tmp_path: Path) -> None:
    parser = T.build_parser()
    args = parser.parse_args([])
    assert args.threads is None and args.data_root is None and not args.no_progress
    assert train_cli._resolve(args).threads == 2  # the convention's default when nothing sets it
    config = tmp_path / "run.toml"
    config.write_text("threads = 1\n")
    assert train_cli._resolve(parser.parse_args(["--config", str(config)])).threads == 1
    assert train_cli._resolve(parser.parse_args(["--config", str(config), "--threads", "3"])).threads == 3
    args = parser.parse_args(["--data-root", str(tmp_path)])
    assert train_cli._resolve(args).data_root == str(tmp_path)


def test_ema_warm_up_tracks_a_short_run() -> None:
    model = torch.nn.Linear(2, 2)
    ema = T.EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(200):
        ema.update(model)
    # Without warm-up, 0.999**200 = 82 % of the initial weights would remain.
    assert torch.allclose(ema.shadow["weight"], torch.ones(2, 2), atol=0.1)
    restored = T.EMA(model, decay=0.999)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 200
