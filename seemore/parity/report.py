"""The parity table: one row per artifact, the notes below it."""

from __future__ import annotations

import math
from collections.abc import Sequence

from seemore.common.tables import format_table
from seemore.parity.harness import ParityResult


def _db(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return "inf" if math.isinf(value) else f"{value:.1f}"


def format_results(results: Sequence[ParityResult]) -> str:
    """Artifact, runtime, parity against its torch model (bound), reference self-parity, task metrics, status."""
    sets: list[str] = []
    for r in results:
        sets.extend(s for s in r.task if s not in sets)
    header = ["artifact", "runtime/backend/precision", "ran", "parity min (bound)", "ref. self",
              *(f"{s} PSNR/SSIM" for s in sets), "status"]
    rows = []
    for r in results:
        parity = "-" if r.parity_min_db is None else f"{_db(r.parity_min_db)} dB" + (
            f" (>= {r.bound_db:.0f})" if r.bound_db is not None else "")
        task = [f"{r.task[s]['psnr']:.2f}/{r.task[s]['ssim']:.4f}" if s in r.task else "-" for s in sets]
        floor = "-" if r.reference_floor_db is None else f"{_db(r.reference_floor_db)} dB"
        rows.append([r.artifact, f"{r.runtime}/{r.backend}/{r.precision}", "yes" if r.ran else "no", parity, floor,
                     *task, r.status])
    notes = [f"- {r.artifact}: {n}" for r in results for n in r.notes]
    against = sorted({f"- {r.artifact}: parity against {r.against}" for r in results if r.against})
    return "\n".join([format_table(header, rows)] + ([""] + against if against else []) + ([""] + notes if notes else []))
