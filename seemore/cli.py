"""Small helpers shared by the command-line tools (``quantization/``, ``mobile/``).

Every CLI reports bad input as one line ``<prog>: error: <message>`` on stderr with a
non-zero exit status, never a usage dump or a traceback, and writes its JSON atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line (no usage dump), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def fail(prog: str, message: str, code: int = 2) -> int:
    """Print ``<prog>: error: <message>`` to stderr and return ``code`` (for ``return fail(...)``)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def write_json(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented, key-sorted JSON, atomically."""
    from seemore.checkpoint import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=True, default=float)
            f.write("\n")

    atomic_write(path, write)
