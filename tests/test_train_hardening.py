"""``python -m seemore.train`` on bad input: run folders, config values, resume, memory, Ctrl-C.

Every case runs ``main(argv)`` in-process on a tiny run (SeemoRe-T x2, LR patch 16, batch 1, a
few iterations on two generated 64x64 images) and checks the exit status, the single stderr
line and what the output folder holds afterwards. Refusals happen before any training step.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import exit_code
from seemore import train as T
from seemore.train import config as train_config
from seemore.train import memory as train_memory
from seemore import cli as cli_module
from seemore.train import trainer as train_trainer
from seemore.checkpoint import read_metadata
from seemore.imresize import imresize

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/``: two 64x64 HR images (32x32 LR at x2); ``val/``: a one-image benchmark-layout set."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "train").mkdir()
    for i in range(2):
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(root / "train" / f"img{i}.png")
    (root / "val" / "HR").mkdir(parents=True)
    (root / "val" / "LR_bicubic" / "X2").mkdir(parents=True)
    hr = (rng.random((48, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(hr).save(root / "val" / "HR" / "v.png")
    Image.fromarray(imresize(hr, 0.5)).save(root / "val" / "LR_bicubic" / "X2" / "vx2.png")
    return root


def _argv(data: Path, out: Path, *extra: str, iterations: int = 3) -> list[str]:
    """A tiny run's flags (validation only at the end, a save every 2 steps, a log row every step)."""
    return ["--no-progress", "--variant", "seemore_t", "--scale", "2", "--train-data", str(data / "train"),
            "--val-data", str(data / "val"), "--patch-size", "16", "--batch-size", "1",
            "--iterations", str(iterations), "--val-every", "1000", "--save-every", "2", "--log-every", "1",
            "--threads", "1", "--out", str(out), *extra]


def _error_line(err: str) -> str:
    """The single non-empty stderr line of a refused run (``seemore-train: error: ...``)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("seemore-train: "), err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _log_iterations(out: Path) -> list[int]:
    with open(out / "log.csv", newline="") as f:
        return [int(row["iteration"]) for row in csv.DictReader(f)]


def _no_temporaries(out: Path) -> bool:
    return not list(out.glob(".*.tmp"))


@pytest.fixture(scope="module")
def base_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 3-iteration run (state of iteration 3, log rows 1-3, best.safetensors)."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert T.main(_argv(data, out)) == 0
    return out


@pytest.fixture
def run_copy(base_run: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of :func:`base_run`, plus a file of the user's that no option may touch."""
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    (out / "notes.txt").write_text("mine")
    yield out


# --------------------------------------------------------------------------- run folder


def test_existing_run_is_refused_and_left_untouched(data: Path, run_copy: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(run_copy)
    capsys.readouterr()
    assert T.main(_argv(data, run_copy)) == 2
    line = _error_line(capsys.readouterr().err)
    assert "already holds a run (config.json, state.pt, latest.safetensors, best.safetensors, log.csv)" in line
    assert "--resume" in line and "--overwrite" in line
    assert _snapshot(run_copy) == before
    # A refused --overwrite start (here: a bad value) loses nothing either.
    assert T.main(_argv(data, run_copy, "--overwrite", "--patch-size", "40")) == 2
    assert _snapshot(run_copy) == before


def test_overwrite_removes_the_old_run_files_only(data: Path, run_copy: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(_argv(data, run_copy, "--overwrite", iterations=2)) == 0
    assert "removed the previous run's" in capsys.readouterr().err
    assert _log_iterations(run_copy) == [1, 2]  # no row of the old run survives
    assert read_metadata(run_copy / "best.safetensors")["training_record"]["iterations"] == 2
    assert torch.load(run_copy / "state.pt", weights_only=False)["iteration"] == 2
    assert (run_copy / "notes.txt").read_text() == "mine"


def test_empty_or_foreign_folder_needs_no_flag(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert T.main(_argv(data, out, iterations=1)) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "state.pt").is_file()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--overwrite", "--resume"], "--overwrite and --resume exclude each other"),
        (["--out", "{file}"], "out: {file}: is a file, not a folder"),
        (["--out", "{file}/sub"], "cannot create it: {file} is a file, not a folder"),
    ],
)
def test_bad_out_is_a_usage_error(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  extra: list[str], expected: str) -> None:
    file = tmp_path / "a_file"
    file.write_text("x")
    extra = [e.replace("{file}", str(file)) for e in extra]
    assert exit_code(T.main, _argv(data, tmp_path / "run", *extra)) == 2
    assert expected.replace("{file}", str(file)) in _error_line(capsys.readouterr().err)
    assert file.read_text() == "x" and not (tmp_path / "run").exists()


def test_unwritable_out_is_a_usage_error(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    # (os.access stands in for a read-only folder: the tests may run as root, who writes anywhere)
    monkeypatch.setattr(cli_module.os, "access", lambda path, mode: Path(path) != tmp_path)
    assert T.main(_argv(data, tmp_path / "run")) == 2
    assert _error_line(capsys.readouterr().err).endswith(f"{tmp_path} is not writable")


def test_missing_validation_set_fails_before_training(data: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = _argv(data, tmp_path / "run")
    argv[argv.index("--val-data") + 1] = str(tmp_path / "no_such_set")
    assert T.main(argv) == 1
    assert "no_such_set" in _error_line(capsys.readouterr().err) and not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- config values

# (key, flag value, TOML literal, words the message must hold); None: no such form of the mistake
# (--threads has its own argparse check, covered in test_train.py; out and data_root flags are paths).
BAD_VALUES: list[tuple[str, str | None, str | None, str]] = [
    ("val_every", "0", "0", "an integer >= 1"),
    ("save_every", "0", "0", "an integer >= 1"),
    ("log_every", "-5", "0", "an integer >= 1"),
    ("betas", "0.9", "0.9", "two numbers in [0, 1)"),
    ("betas", "0.9,1.0", "[0.9, 0.99, 0.5]", "two numbers in [0, 1)"),
    ("device", "tpu", '"tpu"', "auto, cpu, cuda, cuda:N or mps"),
    ("threads", None, "-1", "an integer >= 0"),
    ("batch_size", "abc", '"abc"', "an integer in [1, 1024]"),
    ("batch_size", "0", "5000", "an integer in [1, 1024]"),
    ("patch_size", "64.5", "64.5", "an integer in [16, 512]"),
    ("patch_size", "8", "4096", "an integer in [16, 512]"),
    ("iterations", "1e6", "1e6", "an integer >= 1"),
    ("iterations", "true", "true", "an integer >= 1"),
    ("channels_last", "yes", "1", "true or false"),
    ("compile", "maybe", '"maybe"', "true or false"),
    ("lr", "0", "-1e-3", "a number > 0"),
    ("lr", "nan", '"inf"', "a number > 0"),
    ("weight_decay", "-1", "-1.0", "a number >= 0"),
    ("scheduler", "step", '"step"', "one of multistep, cosine, wsd"),
    ("milestones", "5,3", "[5, 3]", "increasing positive integers"),
    ("milestones", "0", "[1.5]", "increasing positive integers"),
    ("gamma", "0", "1.5", "a number in (0, 1]"),
    ("min_lr", "0.5", "-1.0", "min_lr: must be"),
    ("decay_iters", "10", "-1", "decay_iters: must be"),
    ("warmup", "3", "-1", "warmup: must be"),
    ("fft_weight", "-0.1", "-0.1", "a number >= 0"),
    ("ema_decay", "1.0", "1", "a number in [0, 1)"),
    ("grad_clip", "-1", "-1", "a number >= 0"),
    ("seed", "-1", "-1", "an integer in [0, "),
    ("amp", "fp32", '"fp32"', "one of auto, off, fp16, bf16"),
    ("amp", "fp16", '"fp16"', "fp16 needs a CUDA device"),
    ("variant", "seemore_q", '"seemore_q"', "one of seemore_b, seemore_l, seemore_t"),
    ("scale", "5", "5", "one of 2, 3, 4"),
    ("train_data", ",", "[]", "a non-empty list of training folders"),
    ("val_data", "", "[]", "a non-empty list of validation sets"),
    ("init_from", "{tmp}/none.safetensors", '"{tmp}/none.safetensors"', "init_from: must be a checkpoint file"),
    ("init_from", "{junk}", '"{junk}"', "init_from: must be a checkpoint file"),
    ("out", None, '""', "out: must be a folder path"),
    ("data_root", None, "3", "data_root: must be a folder path"),
]


# Each mistake once as a flag and once in a --config file (where it has that form).
_BAD_CASES = [
    pytest.param(key, source, value, words, id=f"{source}-{key}={value}")
    for key, flag_value, toml_value, words in BAD_VALUES
    for source, value in (("flag", flag_value), ("toml", toml_value))
    if value is not None
]


@pytest.mark.parametrize(("key", "source", "value", "words"), _BAD_CASES)
def test_bad_value_is_refused_naming_the_key(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            key: str, source: str, value: str, words: str) -> None:
    if key == "device" and torch.cuda.is_available():
        pytest.skip("device checks assume a machine without CUDA")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    value = value.replace("{tmp}", str(tmp_path)).replace("{junk}", str(junk))
    out = tmp_path / "run"
    argv = _argv(data, out)
    flag = f"--{key.replace('_', '-')}"
    if flag in argv:  # the base run sets it: drop it, so that the value under test is the one used
        i = argv.index(flag)
        del argv[i : i + 2]
    if source == "flag":
        argv += [f"--{key.replace('_', '-')}", value]
    else:
        config = tmp_path / "run.toml"
        config.write_text(f"{key} = {value}\n")
        argv += ["--config", str(config)]
    assert exit_code(T.main, argv) == 2, argv
    line = _error_line(capsys.readouterr().err)
    assert f"error: {key}: " in line and words in line, line
    assert not out.exists()


def test_coerce_is_strict() -> None:
    assert train_config.coerce("iterations", "500") == 500 and train_config.coerce("iterations", 7) == 7
    assert train_config.coerce("betas", [0.9, 0.99]) == (0.9, 0.99) and train_config.coerce("betas", "0.9, 0.999") == (0.9, 0.999)
    assert train_config.coerce("channels_last", "False") is False and train_config.coerce("lr", 1) == 1.0
    assert train_config.coerce("milestones", "") == [] and train_config.coerce("variant", "SeemoRe-T") == "seemore_t"
    assert train_config.coerce("init_from", None) is None
    for name, value in [("iterations", 64.5), ("iterations", True), ("iterations", "64.0"), ("lr", True),
                        ("channels_last", 1), ("betas", (0.9,)), ("train_data", ["a", 3]), ("variant", 5)]:
        with pytest.raises(T.ConfigError, match=f"^{name}: must be "):
            train_config.coerce(name, value)


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize(
    ("flag", "value", "run_has", "given"),
    [
        ("--variant", "seemore_b", "'seemore_t'", "'seemore_b'"),
        ("--patch-size", "32", "16", "32"),
        ("--scale", "4", "2", "4"),
        ("--lr", "0.002", "0.001", "0.002"),
        ("--seed", "5", "0", "5"),
        ("--amp", "bf16", "'auto'", "'bf16'"),
    ],
)
def test_resume_refuses_a_changed_identity(data: Path, run_copy: Path, capsys: pytest.CaptureFixture[str],
                                           flag: str, value: str, run_has: str, given: str) -> None:
    before = _snapshot(run_copy)
    argv = _argv(data, run_copy, "--resume", iterations=4)
    if flag in argv:
        i = argv.index(flag)
        del argv[i : i + 2]
    assert T.main([*argv, flag, value]) == 2
    line = _error_line(capsys.readouterr().err)
    key = flag[2:].replace("-", "_")
    assert f"--resume: {key} is {run_has} in the run's" in line and f"given {given}" in line, line
    assert "only iterations, decay_iters" in line
    assert _snapshot(run_copy) == before


def test_resume_checks_a_config_file_like_flags(data: Path, run_copy: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    same = tmp_path / "same.toml"
    same.write_text('variant = "seemore_t"\nscale = 2\npatch_size = 16\nval_every = 1000\n')
    changed = tmp_path / "changed.toml"
    changed.write_text("batch_size = 4\n")
    assert T.main(["--no-progress", "--resume", "--config", str(changed), "--out", str(run_copy)]) == 2
    assert "--resume: batch_size is 1 in the run's" in _error_line(capsys.readouterr().err)
    assert T.main(["--no-progress", "--resume", "--config", str(same), "--out", str(run_copy),
                   "--iterations", "4"]) == 0
    assert _log_iterations(run_copy) == [1, 2, 3, 4]


def test_resume_accepts_the_changeable_settings(data: Path, run_copy: Path, tmp_path: Path) -> None:
    argv = ["--no-progress", "--resume", "--out", str(run_copy), "--iterations", "5", "--threads", "1",
            "--val-every", "4", "--save-every", "1", "--log-every", "2", "--data-root", str(data),
            "--val-data", str(data / "val"), "--device", "cpu", "--channels-last", "false", "--decay-iters", "1",
            "--compile", "false"]
    assert T.main(argv) == 0
    saved = json.loads((run_copy / "config.json").read_text())
    assert saved["iterations"] == 5 and saved["log_every"] == 2 and saved["data_root"] == str(data)
    assert saved["channels_last"] is False and saved["variant"] == "seemore_t"
    assert torch.load(run_copy / "state.pt", weights_only=False)["iteration"] == 5
    assert _log_iterations(run_copy) == [1, 2, 3, 4, 5]  # 4: log_every 2 and a validation; 5: the end


def test_resume_refuses_fewer_iterations_than_done(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--no-progress", "--resume", "--out", str(run_copy), "--iterations", "2"]) == 2
    assert "iterations: the run is at iteration 3; give iterations >= 3, got 2" in _error_line(capsys.readouterr().err)


def test_resume_with_a_state_of_another_config_is_one_line(run_copy: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "variant": "seemore_b"}))
    argv = ["--no-progress", "--resume", "--out", str(run_copy), "--iterations", "4"]
    assert T.main(argv) == 1
    line = _error_line(capsys.readouterr().err)
    assert "state.pt: saved with variant 'seemore_t', but the run's config has 'seemore_b'" in line
    # Both configs say seemore_b, the weights are seemore_t's: one line, not a size-mismatch dump.
    state = torch.load(run_copy / "state.pt", weights_only=False)
    state["config"]["variant"] = "seemore_b"
    torch.save(state, run_copy / "state.pt")
    assert T.main(argv) == 1
    assert "state.pt does not match seemore_b x2: its weights are for seemore_t_x2" in _error_line(
        capsys.readouterr().err)


def test_resume_without_a_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert T.main(["--no-progress", "--resume", "--out", str(tmp_path / "never")]) == 2
    assert "nothing to resume (no config.json)" in _error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- log and Ctrl-C


def test_interrupted_then_resumed_run_logs_each_iteration_once(data: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    log = T.Trainer._log

    def log_then_stop(self: T.Trainer, loss: float, val: object) -> None:
        log(self, loss, val)
        if self.iteration == 3:  # after the log row of iteration 3, before its save
            raise KeyboardInterrupt

    monkeypatch.setattr(T.Trainer, "_log", log_then_stop)
    assert T.main(_argv(data, out, iterations=5)) == 130
    line = _error_line(capsys.readouterr().err)
    assert line == "seemore-train: interrupted at iteration 3: resume with --resume (the state of iteration 2 is kept)"
    assert _log_iterations(out) == [1, 2, 3] and _no_temporaries(out)
    monkeypatch.setattr(T.Trainer, "_log", log)
    assert T.main(["--no-progress", "--resume", "--out", str(out)]) == 0
    assert _log_iterations(out) == [1, 2, 3, 4, 5]


def test_trim_log_keeps_the_header_and_drops_cut_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(",".join(T.LOG_HEADER) + "\n1,0.5,0.001,0.1,,,\n2,0.4,0.001,0.2,,,\n3,0.3,0.0\n")
    assert T.trim_log(path, 1) == 2
    assert path.read_text().splitlines() == [",".join(T.LOG_HEADER), "1,0.5,0.001,0.1,,,"]
    assert T.trim_log(path, 1) == 0 and _no_temporaries(tmp_path)


def test_ctrl_c_while_loading_images_writes_nothing(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_trainer, "load_training_images", interrupted)
    assert T.main(_argv(data, tmp_path / "run")) == 130
    line = _error_line(capsys.readouterr().err)
    assert line == "seemore-train: interrupted before training started (nothing written)"
    assert not (tmp_path / "run").exists()


def test_ctrl_c_during_validation_keeps_the_last_save(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(self: T.Trainer) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(T.Trainer, "validate", interrupted)
    out = tmp_path / "run"
    assert T.main(_argv(data, out)) == 130  # validates at iteration 3, the last; saved at 2
    assert "interrupted at iteration 3: resume with --resume (the state of iteration 2 is kept)" in _error_line(
        capsys.readouterr().err)
    assert torch.load(out / "state.pt", weights_only=False)["iteration"] == 2
    assert not (out / "best.safetensors").exists() and _no_temporaries(out)


def test_ctrl_c_during_the_first_save_leaves_no_partial_state(data: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    save = torch.save

    def half_written(obj: object, path: str) -> None:
        Path(path).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_written)
    out = tmp_path / "run"
    assert T.main(_argv(data, out)) == 130
    monkeypatch.setattr(torch, "save", save)
    assert "before the first save: nothing to resume; start again with --overwrite" in _error_line(
        capsys.readouterr().err)
    assert not (out / "state.pt").exists() and _no_temporaries(out)


# --------------------------------------------------------------------------- memory and patch size


def test_step_too_large_for_memory_is_refused_before_the_first_step(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(train_memory, "available_memory", lambda device: 150 << 20)

    def no_step(*args: object) -> float:
        raise AssertionError("trained although the memory check should refuse")

    monkeypatch.setattr(T.Trainer, "_step", no_step)
    out = tmp_path / "run"
    argv = _argv(data, out)
    argv[argv.index("--batch-size") + 1] = "4"
    assert T.main(argv) == 2
    line = _error_line(capsys.readouterr().err)
    assert "memory: a training step of seemore_t x2 at batch_size 4, patch_size 16 needs about" in line
    assert line.endswith("but 150 MiB is available on cpu; lower batch_size to at most 2"), line
    assert not out.exists()


def test_memory_estimate_bounds_a_measured_step() -> None:
    # A fresh process: ru_maxrss is the process's lifetime peak.
    code = "from seemore.train import measure_step_memory as m; print(m('seemore_t', 2, 32, 1))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    measured = int(proc.stdout.split()[-1])
    estimate = T.estimate_step_bytes(T.TrainConfig(scale=2, patch_size=32, batch_size=1))
    assert measured < estimate < 2.5 * measured, (measured, estimate)  # an upper bound, not a wild one


def test_patch_larger_than_every_image_is_refused(data: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    argv = _argv(data, out)
    argv[argv.index("--patch-size") + 1] = "40"
    assert T.main(argv) == 2
    line = _error_line(capsys.readouterr().err)
    assert "patch_size: 40 is larger than every LR training image at x2 (the largest, train/img0, is 32x32)" in line
    assert "lower patch_size to at most 32" in line and not out.exists()


def test_images_smaller_than_the_patch_are_padded_with_a_note(data: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    train = tmp_path / "train"
    shutil.copytree(data / "train", train)
    Image.fromarray(np.full((20, 24, 3), 128, np.uint8)).save(train / "small.png")
    argv = _argv(data, tmp_path / "run", iterations=1)
    argv[argv.index("--train-data") + 1] = str(train)
    assert T.main(argv) == 0
    assert ("note: 1 of 3 training images are smaller than the 16x16 LR patch and are mirror-padded "
            "(smallest: train/small, 12x10 LR)") in capsys.readouterr().err


# --------------------------------------------------------------------------- progress


def test_progress_in_a_log_is_summary_lines(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a for a in _argv(data, tmp_path / "run") if a != "--no-progress"]
    assert T.main(argv) == 0
    err = capsys.readouterr().err
    assert "\r" not in err  # captured stderr is no terminal: no bar redraws
    assert "train seemore_t_x2: 3/3 it (100%)" in err and "loss=" in err
