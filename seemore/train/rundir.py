"""A run folder: which files make a run, the check of ``--out`` before any work, the log on resume."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from seemore import cli
from seemore.common.files import atomic_write
from seemore.train.config import ConfigError

# The files of a run in ``--out``; --overwrite removes these and nothing else.
RUN_FILES = ("config.json", "state.pt", "latest.safetensors", "best.safetensors", "log.csv")
LOG_HEADER = ["iteration", "loss", "lr", "wall_time_s", "val_set", "val_psnr", "val_ssim"]


def check_out_dir(out: Path, resume: bool, overwrite: bool) -> list[str]:
    """Check ``--out`` before any work; returns the run files it holds.

    :class:`ConfigError` when it is a file, not writable, or holds a run that neither
    ``resume`` nor ``overwrite`` allows to touch.
    """
    try:
        cli.check_output_folder(out, "out:")  # the check every tool makes of its output folder
    except cli.UsageError as exc:
        raise ConfigError(str(exc)) from None
    present = [name for name in RUN_FILES if (out / name).exists() or (out / name).is_symlink()]
    for name in present:
        if (out / name).is_dir():
            raise ConfigError(f"out: {out / name} is a folder, not a file of a run; move it away")
    if present and not resume and not overwrite:
        raise ConfigError(
            f"out: {out} already holds a run ({', '.join(present)}); pass --resume to continue it "
            "or --overwrite to start over"
        )
    return present


def remove_run_files(out: Path) -> list[str]:
    """Delete the previous run's files in ``out`` (only :data:`RUN_FILES`); returns their names."""
    removed = []
    for name in RUN_FILES:
        path = out / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(name)
    return removed


def trim_log(path: Path, iteration: int) -> int:
    """Keep the header and the rows up to ``iteration`` of a run's log (atomically); returns rows dropped.

    A resumed run logs the iterations after its saved state again; a row cut short by a kill
    is dropped too.
    """
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    body = rows[1:] if rows and rows[0] == LOG_HEADER else rows
    keep = [r for r in body if len(r) == len(LOG_HEADER) and r[0].isdigit() and int(r[0]) <= iteration]
    if len(keep) == len(body) and rows and rows[0] == LOG_HEADER:
        return 0
    text = io.StringIO()
    csv.writer(text).writerows([LOG_HEADER, *keep])
    atomic_write(path, lambda tmp: Path(tmp).write_text(text.getvalue(), newline=""))
    return len(body) - len(keep)
