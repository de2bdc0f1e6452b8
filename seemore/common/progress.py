"""Progress for long work: a live bar on a terminal, a few summary lines in a log.

tqdm redraws its bar with carriage returns; written to a file or a CI log every redraw becomes
text, and a training run of 500k steps floods the log. :func:`progress` therefore returns a
tqdm bar only when stderr is a terminal; otherwise a :class:`LogProgress` that prints one line
every ``LOG_EVERY_S`` seconds (and one when done), in the same ``desc: done/total unit`` form.
Both offer the subset of tqdm the project uses: iteration, ``update``, ``set_postfix``,
``write``, ``close`` and the ``n`` counter.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TextIO, TypeVar

from tqdm import tqdm

from seemore.common import interrupt

T = TypeVar("T")

# Seconds between two summary lines in a log; short runs (tests) print only the final line.
LOG_EVERY_S = 60.0


class Progress(Protocol):
    """What callers may do with a progress object (tqdm and :class:`LogProgress` both qualify)."""

    n: int

    def update(self, n: int = 1) -> object: ...

    def set_postfix(self, **values: Any) -> object: ...

    def close(self) -> None: ...


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class LogProgress:
    """Progress as occasional lines: ``desc: 120/500 step (24%), 01:10 elapsed, loss=0.02``.

    ``quiet`` lines are only the final one (``leave=False`` work that finishes quickly still
    reports nothing, like a vanished tqdm bar).
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        leave: bool = True,
        file: TextIO | None = None,
        every_s: float | None = None,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.leave = total, desc, unit, leave
        self.n = initial
        self._start_n = initial
        self.file = file if file is not None else sys.stderr
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self.postfix = ""
        self._start = self._last = time.monotonic()
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LogProgress was created without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self) -> str:
        """The current summary line."""
        elapsed = time.monotonic() - self._start
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        percent = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = ""
        if self.n > self._start_n and elapsed > 0:
            per_second = (self.n - self._start_n) / elapsed
            rate = f", {per_second:.3g} {self.unit}/s" if per_second >= 1 else f", {1 / per_second:.3g} s/{self.unit}"
        postfix = f", {self.postfix}" if self.postfix else ""
        prefix = f"{self.desc}: " if self.desc else ""
        return f"{prefix}{done} {self.unit}{percent}, {_format_seconds(elapsed)} elapsed{rate}{postfix}"

    def update(self, n: int = 1) -> None:
        """Advance by ``n``; prints a line when ``every_s`` passed since the last one."""
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.every_s and (self.total is None or self.n < self.total):
            self._last = now
            self.write(self.line())

    def refresh(self) -> None:
        """Counterpart of tqdm's refresh after setting ``n`` directly: may print a line."""
        self.update(0)

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the counter (tqdm's ``set_postfix``)."""
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        """Text shown after the counter (tqdm's ``set_postfix_str``)."""
        self.postfix = text

    def set_description(self, desc: str) -> None:
        """Change the label (tqdm's ``set_description``)."""
        self.desc = desc

    def write(self, message: str) -> None:
        """Print a line (tqdm's ``write``)."""
        print(message, file=self.file, flush=True)

    def close(self) -> None:
        """Print the final line once (only when ``leave`` or the work took a while)."""
        if self._closed:
            return
        self._closed = True
        # After Ctrl-C the one "interrupted" line is the last word: a recorded SIGINT, or a
        # KeyboardInterrupt being handled right now (close() called from an except/finally).
        if interrupt.interrupted() or isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return
        if self.leave or time.monotonic() - self._start >= self.every_s:
            self.write(self.line())


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    initial: int = 0,
    leave: bool = True,
    position: int | None = None,
) -> Any:
    """A tqdm bar on a terminal, :class:`LogProgress` in a log, or a silent tqdm when not ``enabled``.

    Everything goes to stderr, so stdout stays for results.
    """
    if not enabled:
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=True)
    if _is_terminal(sys.stderr):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave,
                    position=position, file=sys.stderr, dynamic_ncols=True)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave)


def write_line(message: str) -> None:
    """Print a line on stderr without breaking a live bar (tqdm.write on a terminal)."""
    if _is_terminal(sys.stderr):
        tqdm.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr, flush=True)
