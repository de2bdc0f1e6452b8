"""Timing loops: medians of repeated calls, and side-by-side round-robin timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``runs`` calls after ``warmup`` calls."""
    return statistics.median(round_robin_ms({"fn": fn}, runs, warmup)["fn"])


def round_robin_ms(
    engines: Mapping[str, Callable[[], object]], runs: int, warmup: int = 1,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Per-call wall times (ms) of every engine, the engines taking turns each round.

    Taking turns spreads the noise of a shared machine over all engines alike, so their
    medians compare within one run.
    """
    for _ in range(warmup):
        for fn in engines.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in engines}
    for r in range(runs):
        for name, fn in engines.items():
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1000.0)
        if on_round is not None:
            on_round(r)
    return times
