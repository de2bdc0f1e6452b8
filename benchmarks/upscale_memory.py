"""Peak memory and time of streamed upscaling on a large synthetic photo.

Generates a photo-like input of ``--size`` (LR, height x width; default 3000x4000, a 12 MP
landscape photo; smooth gradients, soft shapes and sensor-like noise, made here, nothing
downloaded), upscales it with the shipped model through :func:`seemore.upscale.upscale_file`
(the CLI's streamed path) and prints the input and output sizes, tile, windows, seconds, the
rolling band buffer's size and the process's peak RSS (``VmHWM``), before and after the
upscale. Meant to be run under ``/usr/bin/time -v`` for a second opinion on the peak:

    /usr/bin/time -v .venv/bin/python benchmarks/upscale_memory.py
    .venv/bin/python benchmarks/upscale_memory.py --size 600x800 --tile 256 --json mem.json

The 12 MP default takes many minutes on CPU (SeemoRe-T x4: about 2 s per 256x256 tile on
two threads). The input and output files live in a temporary folder, removed at the end
unless ``--keep DIR`` names a folder to keep them in.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seemore import cli
from seemore.common.memory import peak_rss_bytes

PROG = "upscale_memory.py"
DEFAULT_SIZE = (3000, 4000)
# Rows of the synthetic input generated at a time: keeps its float temporaries small, so that
# generating the input does not set the peak being measured.
_GEN_ROWS = 256


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's argument parser."""
    from seemore.tiling import DEFAULT_OVERLAP, DEFAULT_ROUTING, DEFAULT_TILE, ROUTINGS

    p = cli.make_parser(PROG, __doc__)
    cli.add_size(p, default=DEFAULT_SIZE, what=" of the synthetic photo")
    cli.add_model(p)
    p.add_argument("--tile", type=cli.non_negative_int, default=DEFAULT_TILE, metavar="N",
                   help=f"tile side in input pixels, 0 = whole image (default {DEFAULT_TILE}, as seemore-upscale)")
    p.add_argument("--overlap", type=cli.non_negative_int, default=DEFAULT_OVERLAP, metavar="N",
                   help=f"minimum context per tile (default {DEFAULT_OVERLAP})")
    p.add_argument("--routing", choices=ROUTINGS, default=DEFAULT_ROUTING,
                   help=f"expert routing (default {DEFAULT_ROUTING})")
    p.add_argument("--format", default="png", help="output format (default png, the streamed one)")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR",
                   help="keep the input and output in this folder (default: a temporary folder, removed)")
    cli.add_threads(p)
    cli.add_json(p)
    cli.add_progress(p)
    return p


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (:func:`seemore.common.memory.peak_rss_bytes`)."""
    return peak_rss_bytes() / (1 << 20)


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(height, width, 3) uint8: colour gradients, a few soft discs and stripes, and noise.

    Made band by band straight into uint8, so the float work never holds the whole image.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((height, width, 3), np.uint8)
    cx, cy = rng.uniform(0, width, 6), rng.uniform(0, height, 6)
    radius = rng.uniform(0.05, 0.2, 6) * min(height, width)
    tint = rng.uniform(-0.3, 0.3, (6, 3)).astype(np.float32)
    x = np.arange(width, dtype=np.float32)[None, :]
    for top in range(0, height, _GEN_ROWS):
        y = np.arange(top, min(height, top + _GEN_ROWS), dtype=np.float32)[:, None]
        shape = (y.shape[0], width)
        base = np.stack(
            [
                np.broadcast_to(0.2 + 0.6 * x / width, shape),
                np.broadcast_to(0.3 + 0.5 * y / height, shape),
                0.5 + 0.2 * np.sin(x / 97 + y / 53),
            ],
            axis=2,
        )
        for i in range(6):  # soft-edged discs: edges of all sharpness for the network
            dist = np.sqrt((x - cx[i]) ** 2 + (y - cy[i]) ** 2)
            base += tint[i] * np.clip((radius[i] - dist) / 8.0, 0.0, 1.0)[:, :, None]
        base += 0.08 * (np.sin(x / 3.0) * (y > height / 2))[:, :, None]  # fine stripes, lower half
        base += rng.normal(0.0, 0.02, base.shape).astype(np.float32)
        out[top : top + base.shape[0]] = np.clip(base * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _run(args: argparse.Namespace) -> int:
    cli.check_json_path(args.json)
    import torch
    from PIL import Image

    from seemore.checkpoint import load_model
    from seemore.common.progress import progress
    from seemore.tiling import plan_tiles
    from seemore.upscale import parse_format, upscale_file

    fmt = parse_format(args.format)
    torch.set_num_threads(args.threads)
    height, width = args.size
    tile = args.tile or None
    model = load_model(args.model).eval()
    scale, align = int(model.config.scale), int(model.config.min_input_size)
    windows = plan_tiles(max(height, align), max(width, align), tile, args.overlap, align)
    buffer_rows = max(w.rows.stop - w.rows.start for w in windows) * scale
    folder = args.keep if args.keep is not None else Path(tempfile.mkdtemp(prefix="upscale_memory."))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        source, target = folder / "synthetic.png", folder / f"synthetic_x{scale}.{fmt}"
        start = time.perf_counter()
        Image.fromarray(synthetic_photo(height, width)).save(source, compress_level=1)
        generated = time.perf_counter() - start
        before = peak_rss_mib()
        print(f"input {height}x{width} ({height * width / 1e6:.1f} MP) generated in {generated:.1f} s; "
              f"peak RSS so far {before:.0f} MiB (Python, torch, model, input)", flush=True)
        bar = progress(total=len(windows), desc="upscaling", unit="tile", enabled=not args.no_progress)

        def step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        start = time.perf_counter()
        try:
            result = upscale_file(model, source, target, tile, args.overlap, args.routing, progress=step)
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        peak = peak_rss_mib()
        out_w, out_h = result.out_size
        buffer_mib = 12 * buffer_rows * out_w / (1 << 20)
        size_mb = target.stat().st_size / 1e6
        print(f"output {out_h}x{out_w} ({out_h * out_w / 1e6:.1f} MP) {fmt}, {size_mb:.1f} MB; "
              f"{model.config.name}, tile {tile or 'off'}, overlap {args.overlap}, routing {args.routing}, "
              f"{result.windows} windows, {args.threads} threads")
        print(f"upscale {seconds:.1f} s; rolling band buffer at most {buffer_rows} rows = {buffer_mib:.1f} MiB; "
              f"peak RSS {peak:.0f} MiB (+{peak - before:.0f} MiB over the start)")
        if args.json is not None:
            cli.write_json(args.json, {
                "tool": "benchmarks/upscale_memory.py",
                "model": model.config.name, "threads": args.threads, "torch": torch.__version__,
                "input": {"height": height, "width": width}, "output": {"height": out_h, "width": out_w},
                "format": fmt, "tile": tile or 0, "overlap": args.overlap, "routing": args.routing,
                "windows": result.windows, "seconds": round(seconds, 3),
                "buffer_rows": buffer_rows, "buffer_mib": round(buffer_mib, 1),
                "peak_rss_before_mib": round(before, 1), "peak_rss_mib": round(peak, 1),
            })
            print(f"wrote {args.json}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    args = build_parser().parse_args(argv)
    from seemore.checkpoint import CheckpointError
    from seemore.imageio import ImageError

    return cli.run_main(PROG, lambda: _run(args), expected=(CheckpointError, ImageError))


if __name__ == "__main__":
    raise SystemExit(main())
