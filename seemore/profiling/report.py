"""Profiling output: the terminal table, the Markdown report and its PNG charts (drawn with
Pillow, which the library already needs: no plotting dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seemore.common.tables import format_table
from seemore.profiling.estimate import RATE_GROUPS
from seemore.profiling.plan import AnchorCheck, BackendPlan

# One colour per op group (time-per-group chart) and for pass / fail bars.
_GROUP_COLOURS = {"dense": (52, 101, 164), "dwconv": (114, 159, 207), "elementwise": (245, 121, 0),
                  "reduction": (115, 210, 22), "resize": (117, 80, 123), "movement": (193, 125, 17)}
_PASS, _FAIL, _BUDGET = (78, 154, 6), (204, 0, 0), (46, 52, 54)


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _fmt_j(joules: float) -> str:
    return f"{joules * 1e3:.1f} mJ" if joules < 1 else f"{joules:.2f} J"


def budget_table(plans: Sequence[BackendPlan]) -> str:
    """One row per backend, artifact and scenario: latency, fps, energy, power, budget verdicts."""
    rows = []
    for p in plans:
        if p.mode == "missing":
            rows.append([p.backend, p.precision, "-", "missing", "-", "-", "-", "-", "-",
                         f"make it: {p.missing_command}"])
            continue
        for r in p.results:
            verdict = "pass" if r.passed else "FAIL " + ",".join(k for k, (_, _, ok) in r.checks.items() if not ok)
            rows.append([p.backend, p.precision, p.artifact or "-", p.mode, r.scenario, _fmt_s(r.latency_s),
                         f"{r.fps:.1f}" if r.fps is not None else "-", _fmt_j(r.energy_j), f"{r.power_w:.2f} W",
                         verdict])
    return format_table(["backend", "precision", "artifact", "mode", "scenario", "latency", "fps", "energy",
                         "avg power", "budget"], rows)


def anchor_table(checks: Sequence[AnchorCheck]) -> str:
    """The leave-one-out anchor validation as a table."""
    rows = [[c.anchor.id, c.anchor.unit, c.anchor.precision, f"{c.published_ms:.3g}", f"{c.estimated_ms:.3g}",
             f"{c.ratio:.2f}x", f"{c.correction.factor:.2f}", _fmt_overhead(c.correction.overhead_ms),
             str(len(c.fitted_from)), "yes" if c.within_2x else "NO"]
            for c in checks]
    return format_table(["anchor", "unit", "precision", "published ms", "estimated ms", "est/pub",
                         "rate factor", "overhead ms", "peers", "within 2x"], rows)


def _fmt_overhead(ms: float | None) -> str:
    return "unit's" if ms is None else f"{ms:.3g}"


def _font():  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    return ImageFont.load_default()


def group_time_chart(plans: Sequence[BackendPlan], path: Path, title: str) -> None:
    """Horizontal stacked bars: each backend's per-inference time split by op group."""
    from PIL import Image, ImageDraw

    shown = [p for p in plans if p.per_tile is not None]
    width, left, bar, gap, top = 900, 260, 22, 12, 40
    height = top + len(shown) * (bar + gap) + 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = _font()
    draw.text((10, 10), title, fill="black", font=font)
    longest = max((p.per_tile.latency_ms for p in shown if p.per_tile), default=1.0)
    scale = (width - left - 40) / longest
    for i, p in enumerate(shown):
        assert p.per_tile is not None
        y = top + i * (bar + gap)
        draw.text((10, y + 5), f"{p.backend} {p.precision}", fill="black", font=font)
        x = float(left)
        for group in RATE_GROUPS:
            ms = p.per_tile.group_ms.get(group, 0.0)
            if ms > 0:
                draw.rectangle([x, y, x + ms * scale, y + bar], fill=_GROUP_COLOURS[group])
                x += ms * scale
        if p.per_tile.overhead_ms > 0:
            draw.rectangle([x, y, x + p.per_tile.overhead_ms * scale, y + bar], fill=(186, 189, 182))
            x += p.per_tile.overhead_ms * scale
        draw.text((x + 4, y + 5), f"{p.per_tile.latency_ms:.1f} ms", fill="black", font=font)
    legend_y = height - 40
    x = 10
    for group in (*RATE_GROUPS, "other / overhead"):
        colour = _GROUP_COLOURS.get(group, (186, 189, 182))
        draw.rectangle([x, legend_y, x + 12, legend_y + 12], fill=colour)
        draw.text((x + 16, legend_y), group, fill="black", font=font)
        x += 16 + 8 * len(group) + 18
    _save_png(image, path)


def budget_chart(plans: Sequence[BackendPlan], scenario: str, path: Path, title: str) -> None:
    """For one scenario: latency and energy of each backend as a fraction of the budget (log
    scale, the budget at 1x), green when within it, red when over."""
    import math

    from PIL import Image, ImageDraw

    rows = [(p, r) for p in plans for r in p.results if r.scenario == scenario]
    width, left, bar, gap, top = 900, 260, 14, 14, 40
    height = top + len(rows) * (2 * bar + gap) + 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = _font()
    draw.text((10, 10), title, fill="black", font=font)
    span = 4.0  # decades shown: 1/100x .. 100x of the budget
    plot = width - left - 40

    def x_of(fraction: float) -> float:
        return left + plot * (min(max(math.log10(max(fraction, 1e-9)), -span / 2), span / 2) + span / 2) / span

    budget_x = x_of(1.0)
    for i, (p, r) in enumerate(rows):
        y = top + i * (2 * bar + gap)
        draw.text((10, y + 6), f"{p.backend} {p.precision}", fill="black", font=font)
        for j, key in enumerate(("latency", "energy")):
            value, limit, ok = r.checks[key]
            yy = y + j * bar
            draw.rectangle([left, yy + 1, x_of(value / limit), yy + bar - 1], fill=_PASS if ok else _FAIL)
            draw.text((x_of(value / limit) + 4, yy + 1), f"{key} {value / limit:.2g}x", fill="black", font=font)
    draw.line([budget_x, top - 8, budget_x, height - 40], fill=_BUDGET, width=2)
    draw.text((budget_x - 20, height - 34), "budget", fill="black", font=font)
    draw.text((left, height - 20), "1/100x", fill="black", font=font)
    draw.text((width - 70, height - 20), "100x", fill="black", font=font)
    _save_png(image, path)


def _save_png(image: object, path: Path) -> None:
    from seemore.common.files import atomic_write

    atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))  # type: ignore[attr-defined]


def markdown_report(device_title: str, plans: Sequence[BackendPlan], charts: Sequence[tuple[str, str]],
                    assumptions: Sequence[str], header_lines: Sequence[str]) -> str:
    """The report: what was estimated how, the budget table, the charts and every assumption."""
    lines = [f"# {device_title}: SeemoRe on-device budget report", "", *header_lines, ""]
    lines += ["## Budgets", "", "```", budget_table(plans), "```", ""]
    for caption, file in charts:
        lines += [f"![{caption}]({file})", ""]
    lines += ["## Assumptions", ""] + [f"- {a}" for a in assumptions] + [""]
    return "\n".join(lines)
