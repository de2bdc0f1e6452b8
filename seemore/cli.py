"""The one command-line convention of every seemore-mobile tool.

Every CLI (``quantization/qat.py``, ``mobile/*.py``, ``benchmarks/*.py``, ``python -m
seemore.*``) builds its parser with :func:`make_parser` and the ``add_*`` helpers below, so
the same flag means the same thing everywhere:

``--model``      checkpoint: a shipped name (``seemore_t_x4``) or a ``.safetensors``/``.pth`` file
``--size HxW``   always the *LR input* size, height first (``180x320`` -> 720x1280 at x4)
``--data-root``  folder holding ``benchmark/`` and ``train/`` (default ``$SEEMORE_DATA`` or
                 ``../shared/data``; bundled sample photos when none exists)
``--threads N``  CPU threads for PyTorch and every runtime (default 2: the machines' core count)
``--json PATH``  also write the results as JSON (atomically)
``--no-progress`` hide progress bars

Bad input is reported as one line ``<prog>: error: <message>`` on stderr with exit status 2
(usage) or 1 (the work failed), Ctrl-C as one line with status 130; never a usage dump or
a traceback (:func:`run_main`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "seemore_t_x4"
DEFAULT_THREADS = 2
DEFAULT_LR_SIZE = (180, 320)


class UsageError(ValueError):
    """A bad argument found after parsing (exit status 2); the message is one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line (no usage dump), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def make_parser(prog: str, description: str, epilog: str | None = None) -> OneLineParser:
    """A parser of the project's convention (one-line errors, help text kept as written).

    Abbreviations are off: an old flag (``--data``) must be an error, not a silent prefix of
    another one (``--data-root``).
    """
    return OneLineParser(prog=prog, description=description, epilog=epilog, allow_abbrev=False,
                         formatter_class=argparse.RawDescriptionHelpFormatter)


def parse_size(text: str) -> tuple[int, int]:
    """``"HxW"`` (e.g. ``180x320``) -> ``(H, W)``, positive integers; :class:`UsageError` otherwise."""
    parts = str(text).lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise UsageError(f"size must be HEIGHTxWIDTH of the LR input (e.g. 180x320), got {text!r}")
    h, w = int(parts[0]), int(parts[1])
    if h < 1 or w < 1:
        raise UsageError(f"size must be positive, got {text!r}")
    return h, w


def size_type(text: str) -> tuple[int, int]:
    """:func:`parse_size` as an argparse ``type`` (a bad size is argparse's usage error)."""
    try:
        return parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_at_least(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def add_model(p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL, help_extra: str = "") -> None:
    """``--model``: shipped name or checkpoint file."""
    shown = f" (default: {default})" if default else ""
    p.add_argument("--model", default=default, metavar="NAME|PATH",
                   help=f"shipped checkpoint name or a .safetensors/.pth file{shown}{help_extra}")


def add_size(p: argparse.ArgumentParser, default: tuple[int, int] | None = DEFAULT_LR_SIZE, what: str = "") -> None:
    """``--size HxW``: the LR input size, parsed to ``(H, W)``."""
    shown = f" (default: {default[0]}x{default[1]})" if default else ""
    p.add_argument("--size", type=size_type, default=default, metavar="HxW",
                   help=f"LR input size, height x width{what}{shown}")


def add_data_root(p: argparse.ArgumentParser) -> None:
    """``--data-root``: where ``benchmark/`` and ``train/`` live."""
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="data folder holding benchmark/ (Set5, Set14) and train/ (default: $SEEMORE_DATA or "
                   "../shared/data; scikit-image's bundled sample photos when none exists, with a note)")


def add_threads(p: argparse.ArgumentParser, default: int = DEFAULT_THREADS) -> None:
    """``--threads N``: CPU threads of PyTorch and the runtimes."""
    p.add_argument("--threads", type=positive_int, default=default, metavar="N",
                   help=f"CPU threads for PyTorch and every runtime (default: {default})")


def add_json(p: argparse.ArgumentParser) -> None:
    """``--json PATH``: results as JSON."""
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")


def add_progress(p: argparse.ArgumentParser) -> None:
    """``--no-progress``: hide progress bars."""
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def apply_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in PyTorch and (when installed) the ExecuTorch runtime."""
    import torch

    torch.set_num_threads(threads)
    from seemore.runtime.executorch import set_runtime_threads

    set_runtime_threads(threads)


def check_json_path(path: Path | None) -> None:
    """:class:`UsageError` when ``--json`` names a folder or cannot be written (before any work)."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--json {path}: is a folder; give a file path")
    check_output_folder(path.parent, f"--json {path}:")


def check_output_folder(path: str | Path, flag: str = "--out") -> None:
    """:class:`UsageError` unless ``path`` is, or can become, a writable folder (before any work).

    Nothing is created: the nearest existing folder on the way must be a writable folder.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {folder}: is a file, not a folder")
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p.is_symlink() or p == Path(p.anchor))
    if not existing.is_dir():
        raise UsageError(f"{flag} {folder}: cannot create it: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {folder}: {existing} is not writable")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, whitespace collapsed (its type when empty)."""
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(exc).__name__


def fail(prog: str, message: str, code: int = 2) -> int:
    """Print ``<prog>: error: <message>`` to stderr and return ``code`` (for ``return fail(...)``)."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def run_main(prog: str, body: Callable[[], int], expected: Sequence[type[BaseException]] = ()) -> int:
    """Run a CLI body with the project's error convention; returns the exit status.

    :class:`UsageError` -> status 2; the project's own one-line errors (``expected``, plus
    ``ValueError`` and ``OSError``) -> 1; Ctrl-C -> 130; any other exception (a toolchain
    failure) -> 1 with its type and first line, never a traceback.
    """
    from seemore.common import interrupt

    try:
        with interrupt.armed():
            status = body()
            if status != 130:  # (130: the body reported its interruption itself, e.g. training)
                interrupt.check()  # a Ctrl-C that Python swallowed in a callback still stops with 130
        return status
    except UsageError as exc:
        return fail(prog, str(exc), 2)
    except KeyboardInterrupt:
        interrupt.reset()
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (*expected, ValueError, OSError) as exc:
        return fail(prog, one_line(exc), 1)
    except Exception as exc:  # a toolchain failure: one line, not a traceback
        return fail(prog, f"{type(exc).__name__}: {one_line(exc)}", 1)


def write_json(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON, atomically."""
    from seemore.common.files import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=float) + "\n")
