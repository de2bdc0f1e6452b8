"""Plain-text tables for the CLIs' one-screen summaries."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], numbers_from: int | None = None) -> str:
    """Columns with a dashed rule under ``header``; cells are ``str()``-ed.

    Columns are left-aligned, except those from index ``numbers_from`` on, which are
    right-aligned (numbers line up by their last digit).
    """
    text = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(header))]
    right = len(header) if numbers_from is None else numbers_from

    def cell(i: int, c: str) -> str:
        return c.rjust(widths[i]) if i >= right else c.ljust(widths[i])

    lines = ["  ".join(cell(i, c) for i, c in enumerate(r)).rstrip() for r in text]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
