"""The project's main job on bundled defaults: ``python -m seemore.pipeline`` (``bash run.sh pipeline``).

Steps, each a thin call into the library, each writing into ``--out``:

1. ``cost``: params and MACs of every variant (``seemore.info``) -> ``cost.json``
2. ``evaluate``: the shipped SeemoRe-T x4 and MATLAB bicubic on Set5/Set14 (``seemore.evaluate``)
   -> ``eval.json``
3. ``upscale``: the shipped model on a sample image (``seemore.upscale``) -> ``upscaled/``

Data come from the data root (``--data-root``, ``$SEEMORE_DATA`` or ``../shared/data``); without
one, the bundled sample photos are used and the pipeline says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seemore.checkpoint import CheckpointError, atomic_write, list_shipped, load_model
from seemore.paths import DataError, bundled_images, resolve_data_root

DEFAULT_MODEL = "seemore_t_x4"


@dataclass
class PipelineContext:
    """What every step needs: where to write, which data and model to use."""

    out: Path
    data_root: Path | None
    model_name: str
    threads: int

    def write_text(self, name: str, text: str) -> Path:
        """Write ``text`` atomically to ``out/name``."""
        path = self.out / name
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        return path

    def write_json(self, name: str, doc: dict[str, Any]) -> Path:
        """Write ``doc`` as JSON atomically to ``out/name``."""
        return self.write_text(name, json.dumps(doc, indent=2) + "\n")


def step_cost(ctx: PipelineContext) -> str:
    """Params/MACs table of all variants (HR output 1280x720)."""
    from seemore.info import cost_table, format_table, rows_to_json

    rows = cost_table()
    print(format_table(rows))
    path = ctx.write_text("cost.json", rows_to_json(rows))
    return f"{len(rows)} variant/scale rows -> {path}"


def step_evaluate(ctx: PipelineContext) -> str:
    """Shipped model and bicubic on Set5/Set14 (or the bundled photos)."""
    from seemore.evaluate import evaluate_bicubic, evaluate_model, format_reports

    model = load_model(ctx.model_name)
    sets = ("Set5", "Set14")
    reports = [
        evaluate_model(model, sets, model.scale, ctx.data_root, progress=True, label=ctx.model_name),
        evaluate_bicubic(sets, model.scale, ctx.data_root, progress=True),
    ]
    print(format_reports(reports))
    path = ctx.write_json("eval.json", {"reports": [r.to_dict() for r in reports]})
    return f"{reports[0].summary()} (bicubic {reports[1].summary()}) -> {path}"


def _sample_image(data_root: Path | None) -> Path:
    if data_root is not None:
        candidate = data_root / "benchmark" / "Set5" / "LR_bicubic" / "X4" / "butterflyx4.png"
        if candidate.is_file():
            return candidate
    return bundled_images()[0]


def step_upscale(ctx: PipelineContext) -> str:
    """Upscale one sample image as ``python -m seemore.upscale`` would."""
    from seemore.upscale import upscale_file

    model = load_model(ctx.model_name)
    source = _sample_image(ctx.data_root)
    target = ctx.out / "upscaled" / f"{source.stem}_x{model.scale}.png"
    result = upscale_file(model, source, target)  # the CLI's defaults (tile size, overlap, routing)
    return f"{source.name} {result.in_size} -> {target} {result.out_size}, {result.windows} window(s)"


STEPS: dict[str, Callable[[PipelineContext], str]] = {
    "cost": step_cost,
    "evaluate": step_evaluate,
    "upscale": step_upscale,
}


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m seemore.pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="artifacts/pipeline", help="output folder (default: artifacts/pipeline)")
    p.add_argument("--data-root", help="data root (default: $SEEMORE_DATA or ../shared/data, else bundled)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"checkpoint or shipped name (default: {DEFAULT_MODEL})")
    p.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS), help="steps to run (default: all)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the selected steps in order; stop at the first failure with a one-line reason."""
    args = build_parser().parse_args(argv)
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        data_root = resolve_data_root(args.data_root)
        if args.model == DEFAULT_MODEL and DEFAULT_MODEL not in list_shipped():
            raise CheckpointError(f"no shipped {DEFAULT_MODEL} checkpoint in this install")
        ctx = PipelineContext(Path(args.out), data_root, args.model, args.threads)
        print(f"data root: {data_root if data_root else 'none (bundled sample photos)'}; model: {args.model}")
        summary = []
        for name in args.steps:
            print(f"\n=== {name} ===", flush=True)
            start = time.perf_counter()
            result = STEPS[name](ctx)
            summary.append((name, time.perf_counter() - start, result))
    except (CheckpointError, DataError, ValueError, OSError) as exc:
        print(f"pipeline: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print("\n=== summary ===")
    for name, seconds, result in summary:
        print(f"{name:10s} {seconds:7.1f} s  {result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
