"""Bad and unusual input across the CLIs: one line on stderr, the right exit status, nothing written.

Each row is what a new user might type. The training and upscaling cases (run folders, config
values, streamed output, multi-frame images) are in ``test_train_hardening.py`` and
``test_upscale_streaming.py``; parity's malformed contracts in ``test_parity.py``. Everything
here fails before any model work, so the whole table takes seconds.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import REPO, exit_code, load_script, saved_small_model
from seemore import cli
from seemore.common import interrupt
from seemore.common.files import atomic_write, atomic_write_bytes, make_parent, tmp_prefix

# Placeholders in the rows: {tmp} the test's folder, {file} a regular file, {dir} a folder,
# {junk} a file that is no checkpoint.
CASES: list[tuple[str, list[str], int, str]] = [
    # evaluate
    ("seemore.evaluate", ["--model", "{tmp}/missing.safetensors"], 1, "no such file"),
    ("seemore.evaluate", ["--model", "{dir}"], 1, "is a folder, not a checkpoint file"),
    ("seemore.evaluate", ["--model", "{junk}"], 1, "unreadable safetensors file"),
    ("seemore.evaluate", ["--scale", "5"], 2, "invalid choice"),
    ("seemore.evaluate", ["--data-root", "{tmp}/missing"], 1, "data root is not a folder"),
    ("seemore.evaluate", ["--data-root", "{file}"], 1, "data root is not a folder"),
    ("seemore.evaluate", ["--threads", "-1"], 2, "positive integer"),
    ("seemore.evaluate", ["--device", "bogus"], 2, "not a torch device"),
    ("seemore.evaluate", ["--json", "{dir}"], 2, "is a folder"),
    ("seemore.evaluate", ["--json", "{file}/x.json"], 2, "is a file, not a folder"),
    ("seemore.evaluate", ["--model", "seemore_t_x4", "--scale", "2"], 1, "not --scale 2"),
    ("seemore.evaluate", ["--frobnicate"], 2, "unrecognized arguments"),
    # info
    ("seemore.info", ["--size", "0x5"], 2, "size must be positive"),
    ("seemore.info", ["--size", "abc"], 2, "HEIGHTxWIDTH"),
    ("seemore.info", ["--json", "{file}/x.json"], 2, "is a file, not a folder"),
    # export
    ("seemore.export.cli:executorch_main", ["--size", "8x8"], 2, "too small"),
    ("seemore.export.cli:executorch_main", ["--targets", "bogus"], 2, "invalid choice"),
    ("seemore.export.cli:executorch_main", ["--batch", "0"], 2, "positive integer"),
    ("seemore.export.cli:executorch_main", ["--int8-program", "{tmp}/missing.pt2", "--targets", "xnnpack-int8"], 2,
     "no such program file"),
    ("seemore.export.cli:executorch_main", ["--ptq", "--int8-program", "x"], 2, "exclude each other"),
    ("seemore.export.cli:executorch_main", ["--model", "{junk}"], 2, "unreadable safetensors file"),
    ("seemore.export.cli:executorch_main", ["--model", "{dir}"], 2, "is a folder"),
    ("seemore.export.cli:executorch_main", ["--out", "{file}"], 2, "is a file, not a folder"),
    ("seemore.export.cli:executorch_main", ["--out", "{file}/sub"], 2, "is a file, not a folder"),
    ("seemore.export.cli:executorch_main", ["--json", "{dir}"], 2, "is a folder"),
    ("seemore.export.cli:executorch_main", ["--calibration-images", "0"], 2, "positive integer"),
    # quantization/qat.py
    ("seemore.quantize.cli", ["--model", "{tmp}/missing"], 2, "no such file"),
    ("seemore.quantize.cli", ["--model", "{dir}"], 2, "is a folder"),
    ("seemore.quantize.cli", ["--backend", "bogus"], 2, "invalid choice"),
    ("seemore.quantize.cli", ["--steps", "-1"], 2, "steps must be >= 0"),
    ("seemore.quantize.cli", ["--size", "1x1"], 2, "too small"),
    ("seemore.quantize.cli", ["--out", "{file}"], 2, "is a file, not a folder"),
    ("seemore.quantize.cli", ["--json", "{dir}"], 2, "is a folder"),
    # pipeline
    ("seemore.pipeline", ["--steps", "bogus"], 2, "invalid choice"),
    ("seemore.pipeline", ["--model", "{tmp}/missing"], 2, "no such file"),
    ("seemore.pipeline", ["--data-root", "{tmp}/missing"], 2, "data root is not a folder"),
    ("seemore.pipeline", ["--out", "{file}"], 2, "is a file, not a folder"),
    ("seemore.pipeline", ["--threads", "0"], 2, "positive integer"),
    # release
    ("seemore.release", ["{tmp}/missing.safetensors"], 1, "no such file"),
    ("seemore.release", ["{junk}"], 1, "unreadable safetensors file"),
    ("seemore.release", ["{dir}"], 1, "is a folder"),
    ("seemore.release", ["--name", "../x", "{junk}"], 2, "letters, digits"),
    # parity
    ("seemore.parity.cli", ["--root", "{tmp}/missing"], 2, "does not exist"),
    ("seemore.parity.cli", ["--root", "{file}"], 2, "is a file, not an artifact folder"),
    ("seemore.parity.cli", ["--root", "{dir}"], 2, "no artifacts"),
    ("seemore.parity.cli", ["--root", "{dir}", "--threads", "0"], 2, "positive integer"),
]


def _main(name: str) -> Callable[[list[str]], int]:
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function or "main")  # type: ignore[no-any-return]


@pytest.mark.parametrize(("tool", "argv", "code", "fragment"), CASES,
                         ids=[f"{c[0].split('.')[-1]}:{' '.join(c[1])}" for c in CASES])
def test_bad_input_is_one_line(tool: str, argv: list[str], code: int, fragment: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "junk.safetensors").write_bytes(b"garbage")
    places = {"tmp": str(tmp_path), "file": str(tmp_path / "a_file"), "dir": str(tmp_path / "a_dir"),
              "junk": str(tmp_path / "junk.safetensors")}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert exit_code(_main(tool), [a.format(**places) for a in argv]) == code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "cpuinfo" not in line]
    assert len(err) == 1, err
    assert ": error: " in err[0] and fragment in err[0], err[0]
    assert "Traceback" not in err[0]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


# ----------------------------------------------------------------------------------------- files


def test_an_output_under_a_regular_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "photo.png").write_text("x")
    with pytest.raises(NotADirectoryError, match="photo.png is a file, not a folder"):
        atomic_write_bytes(tmp_path / "photo.png" / "out" / "x.png", b"1")
    with pytest.raises(cli.UsageError, match="is a file, not a folder"):
        cli.check_output_folder(tmp_path / "photo.png" / "out")
    make_parent(tmp_path / "new" / "deeper" / "x.png")
    assert (tmp_path / "new" / "deeper").is_dir()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_writes_temporaries_are_removed_on_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "model.pte"
    mine = tmp_prefix(target)  # .model.pte.<host>-<pid>.
    host = mine.split(".")[-2].rsplit("-", 1)[0]
    dead = tmp_path / f".model.pte.{host}-{_dead_pid()}.abc.tmp"
    alive = tmp_path / f".model.pte.{host}-{os.getppid()}.def.tmp"  # a running process's write
    old = tmp_path / ".model.pte.legacyname.tmp"
    other = tmp_path / ".other.pte.x.tmp"
    for path in (dead, alive, old, other):
        path.write_bytes(b"partial")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    atomic_write_bytes(target, b"complete")
    assert target.read_bytes() == b"complete"
    assert not dead.exists() and not old.exists()
    assert alive.exists() and other.exists()


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fail(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


# ----------------------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_is_one_line_and_130(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise KeyboardInterrupt

    assert cli.run_main("tool", body) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["tool: interrupted"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_python_swallowed_still_stops_the_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A KeyboardInterrupt raised inside a finaliser is printed and dropped by Python; the
    recorded interrupt still keeps the artifact from appearing and ends with 130."""

    class Finalised:
        def __del__(self) -> None:
            interrupt._on_sigint(signal.SIGINT, None)  # what SIGINT does when it lands here

    reached = []

    def body() -> int:
        Finalised()  # collected at once: the raise in __del__ is swallowed
        reached.append("write")  # so the work goes on, as it did in a real export
        atomic_write_bytes(tmp_path / "model.pte", b"x")
        return 0

    assert cli.run_main("tool", body) == 130
    assert reached == ["write"]
    assert capsys.readouterr().err.strip().splitlines()[-1] == "tool: interrupted"
    assert list(tmp_path.iterdir()) == []
    assert not interrupt.interrupted()  # reported, then forgotten


def _python(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_ctrl_c_while_starting_up_is_one_line() -> None:
    process = _python("mobile/export_executorch.py", "--help")
    # Inside the torch import: libtorch is mapped (seemore/__init__ has run and torch is loading).
    # A signal before the interpreter is up would just kill it silently, which is not our code.
    maps = Path(f"/proc/{process.pid}/maps")
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:
            pass
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.fail("the process finished before the signal: raise the test's margin")
    assert process.returncode in (130, -signal.SIGINT)
    assert err.strip().splitlines() == ["export_executorch.py: interrupted"]


def test_ctrl_c_during_an_export_leaves_no_files(tmp_path: Path) -> None:
    _, checkpoint = saved_small_model(tmp_path)
    out = tmp_path / "out"
    process = _python("mobile/export_executorch.py", "--model", str(checkpoint), "--targets", "xnnpack-fp32",
                      "--size", "16x16", "--out", str(out), "--no-check", "--no-progress", "--threads", "1")
    assert process.stderr is not None
    line = process.stderr.readline()  # "exporting ... -> out": loading is done, lowering starts
    assert line.startswith("exporting"), line
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    lines = [x for x in err.splitlines() if x.strip() and "cpuinfo" not in x]
    assert process.returncode == 130, err
    assert lines == ["export_executorch.py: interrupted"]
    assert not out.exists() or list(out.iterdir()) == []


# ----------------------------------------------------------------------------------------- release


def test_an_oversized_release_keeps_the_shipped_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import seemore.evaluate
    import seemore.release as release

    class Report:
        sets = [type("S", (), {"name": "Set5", "psnr": 30.0, "ssim": 0.9})()]

    _, checkpoint = saved_small_model(tmp_path)
    shipped = tmp_path / "weights" / "seemore_t_x4.safetensors"
    shipped.parent.mkdir()
    shipped.write_bytes(b"today's shipped weights")
    monkeypatch.setattr(seemore.evaluate, "evaluate_model", lambda *a, **k: Report())
    monkeypatch.setattr(release, "MAX_SHIPPED_BYTES", 100)
    with pytest.raises(seemore.CheckpointError, match="over the 100-byte limit"):
        release.release(checkpoint, dest_dir=shipped.parent)
    assert shipped.read_bytes() == b"today's shipped weights"
    assert [p.name for p in shipped.parent.iterdir()] == [shipped.name]


def test_thin_scripts_follow_the_convention(capsys: pytest.CaptureFixture[str]) -> None:
    for script in ("quantization/qat.py", "mobile/export_executorch.py", "mobile/parity.py"):
        module = load_script(script)
        main = getattr(module, "main", None) or getattr(module, "executorch_main")
        assert exit_code(main, ["--threads", "-3"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "positive integer" in err[0], err
