"""Progress: a bar on a terminal, a few summary lines in a log (never bar redraws in CI logs)."""

from __future__ import annotations

import io
import sys

import pytest
from tqdm import tqdm

from seemore.common import progress as progress_module
from seemore.common.progress import LogProgress, progress


def test_a_log_gets_summary_lines_not_redraws(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    for _ in progress(range(500), desc="train", unit="step"):
        pass
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 1 and lines[0].startswith("train: 500/500 step (100%)")


def test_a_long_run_reports_every_interval() -> None:
    log = io.StringIO()
    bar = LogProgress(total=4, desc="qat", unit="step", file=log, every_s=0.0)
    for step in range(4):
        bar.set_postfix(loss=f"{0.1 * step:.2f}")
        bar.update()
    bar.close()
    bar.close()  # once only
    lines = log.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["qat: 1/4 step (25%)", "qat: 2/4 step (50%)",
                                                      "qat: 3/4 step (75%)", "qat: 4/4 step (100%)"]
    assert lines[-1].endswith("loss=0.30")


def test_a_terminal_gets_a_bar_and_disabled_is_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "_is_terminal", lambda stream: True)
    bar = progress(total=3, desc="x")
    assert isinstance(bar, tqdm) and not bar.disable
    bar.close()
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    quiet = progress(range(3), enabled=False)
    assert list(quiet) == [0, 1, 2] and log.getvalue() == ""
