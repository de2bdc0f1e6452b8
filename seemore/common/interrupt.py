"""Ctrl-C that always stops the work: one line, exit 130, no artifact appears afterwards.

Python turns SIGINT into a KeyboardInterrupt at the next bytecode of the main thread. When that
bytecode belongs to a weakref callback or a ``__del__`` (torch.export runs many), Python prints
"Exception ignored in ..." with a traceback and carries on: a Ctrl-C during an export was
measured to be swallowed this way and the export then finished with status 0. So the handler
installed by :func:`install` also records the interrupt; :func:`check` raises it again at the
places that matter (every atomic write checks before renaming into place, and
``seemore.cli.run_main`` checks when the work returns), and the swallowed one's traceback is
not printed. :func:`check` acts only while a CLI's work runs (:func:`armed`): a program that
imports seemore, catches a Ctrl-C itself and goes on keeps Python's behaviour.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

_interrupted = threading.Event()
_installed = False
_armed = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def _quiet_unraisable(previous: Any) -> Any:
    def hook(unraisable: Any) -> None:
        # A KeyboardInterrupt raised inside a callback: already recorded, so no traceback.
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _interrupted.is_set():
            return
        previous(unraisable)

    return hook


def install() -> None:
    """Record every Ctrl-C (once per process; only from the main thread, where signals go)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    # Keep SIGINT ignored where the parent asked for it (``nohup``, background jobs of a script).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)
    _installed = True


def interrupted() -> bool:
    """Whether Ctrl-C was pressed since :func:`reset`."""
    return _interrupted.is_set()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed during a CLI's work, even when its first
    raise was swallowed. Outside :func:`armed` (a library user's own program, which may catch
    KeyboardInterrupt and go on) it does nothing."""
    if _armed and _interrupted.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def armed() -> Iterator[None]:
    """The span of a CLI's work (``seemore.cli.run_main``): Ctrl-C is recorded from a clean
    slate, and :func:`check` raises it."""
    global _armed
    install()
    reset()
    before, _armed = _armed, True
    try:
        yield
    finally:
        _armed = before


def reset() -> None:
    """Forget an earlier Ctrl-C (run_main calls it when it has reported one, and before work)."""
    _interrupted.clear()


def _program_name() -> str:
    """``export_executorch.py``, or ``seemore.train`` for ``python -m seemore.train``."""
    argv = getattr(sys, "orig_argv", sys.argv)
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "seemore"


def quiet_uncaught_interrupts() -> None:
    """A Ctrl-C that nothing catches (e.g. while torch is still being imported) prints one line.

    Python would print a traceback through the import machinery. Worse, a Ctrl-C inside numpy's
    own import leaves numpy half-initialised, and the next import that touches it (scipy) fails
    with a RecursionError, which then looks like a bug. So from here on SIGINT is recorded (the
    handler of :func:`install`, which raises KeyboardInterrupt like Python's own), and any
    exception that ends the program after a Ctrl-C is reported as the interruption: one line,
    status 130 (a KeyboardInterrupt itself keeps Python's exit by SIGINT, 130 in a shell).
    Only for non-interactive runs: a REPL user keeps Python's behaviour.
    """
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return
    previous = sys.excepthook
    if getattr(previous, "_seemore_quiet", False):
        return
    install()

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            print(f"{_program_name()}: interrupted", file=sys.stderr)
            return
        if _interrupted.is_set():  # a failure caused by the interrupt (half-imported modules)
            print(f"{_program_name()}: interrupted", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(130)
        previous(kind, value, tb)

    hook._seemore_quiet = True  # type: ignore[attr-defined]
    sys.excepthook = hook
