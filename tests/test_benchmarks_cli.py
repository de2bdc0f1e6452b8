"""The benchmark CLIs' bad input: one line, non-zero exit, before any timing or export."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import exit_code, load_script


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "positive integer"),
        (["--runs", "0"], "positive integer"),
        (["--size", "180"], "HEIGHTxWIDTH"),
        (["--size", "8x8"], "too small"),
        (["--targets", "metal-fp32"], "unknown target 'metal-fp32'"),
        (["--model", "/nonexistent/m.safetensors"], "no such file"),
        (["--json", "."], "is a folder"),
    ],
)
def test_host_runtime_bad_input(args: list[str], message: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    cli = load_script("benchmarks/host_runtime.py")
    assert exit_code(cli.main, ["--root", str(tmp_path), "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("host_runtime.py: error:") and message in err[0]


@pytest.mark.parametrize(("args", "message"), [(["--threads", "0"], "positive integer"),
                                               (["--json", "."], "is a folder")])
def test_qat_spread_bad_input(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    cli = load_script("benchmarks/qat_spread.py")
    assert exit_code(cli.main, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qat_spread.py: error:") and message in err[0]
