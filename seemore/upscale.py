"""Upscale image files with a SeemoRe model: library functions and the ``seemore-upscale`` CLI.

``python -m seemore.upscale photo.jpg -o photo_x4.png`` upscales one file;
``python -m seemore.upscale shots/ more.png -o out/`` upscales everything into a folder. Reading
and writing (alpha, gray, palette, 16-bit, EXIF orientation, CMYK) is :mod:`seemore.imageio`;
tiling and MoE routing is :mod:`seemore.tiling`. A file that cannot be read or written gets a
one-line error on stderr, the others are still processed, and the exit status is 1 if any
failed. Outputs are written atomically; ``--json PATH`` also writes what was done as JSON.

:func:`upscale_file` streams: the network's output goes to the file row band by row band
(:func:`seemore.tiling.upscale_rows`, :func:`seemore.imageio.write_upscaled`), so memory is
bounded by the tile size and the output width, not the image size (formula in ``--tile``'s
help). Before any compute it checks that the output can be written. Ctrl-C leaves no output
file and no temporary behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from seemore import cli
from seemore.checkpoint import CheckpointError, list_shipped, load_model
from seemore.common.progress import progress, write_line
from seemore.imageio import (
    ImageError,
    Picture,
    check_writable,
    from_tensor,
    image_extensions,
    output_format,
    read_image,
    resize_alpha,
    write_upscaled,
)
from seemore.tiling import (
    DEFAULT_OVERLAP,
    DEFAULT_ROUTING,
    DEFAULT_TILE,
    ROUTINGS,
    ProgressFn,
    Routing,
    plan_axis,
    upscale_rows,
    upscale_tensor,
)

DEFAULT_MODEL = cli.DEFAULT_MODEL
PROG = "seemore-upscale"


@dataclass(frozen=True)
class UpscaleResult:
    """What :func:`upscale_file` did to one file."""

    source: Path
    target: Path
    in_size: tuple[int, int]  # (width, height)
    out_size: tuple[int, int]
    mode: str  # e.g. RGB, RGBA, L;16
    windows: int
    seconds: float


def upscale_picture(
    model: nn.Module,
    picture: Picture,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    routing: Routing = DEFAULT_ROUTING,
    progress: ProgressFn | None = None,
) -> Picture:
    """Super-resolve a :class:`Picture` in memory; alpha is resized bicubically (see
    :mod:`seemore.imageio`). The whole result is held as float32 (12 bytes per output pixel);
    :func:`upscale_file` streams instead."""
    sr = upscale_tensor(model, picture, tile=tile, overlap=overlap, routing=routing, progress=progress)
    rgb = from_tensor(sr)
    del sr
    alpha = None if picture.alpha is None else resize_alpha(picture.alpha, rgb.shape[0], rgb.shape[1])
    return Picture(rgb, alpha, gray=picture.gray, bits=picture.bits, icc_profile=picture.icc_profile)


def upscale_file(
    model: nn.Module,
    in_path: str | Path,
    out_path: str | Path,
    tile: int | None = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    routing: Routing = DEFAULT_ROUTING,
    fmt: str | None = None,
    progress: ProgressFn | None = None,
) -> UpscaleResult:
    """Read ``in_path``, upscale it, write ``out_path`` atomically (format from its extension
    unless ``fmt`` is given). Raises :class:`ImageError` (one line, names the file) when the
    input cannot be read or the output cannot be written; the output is checked first.

    The output is streamed to the file band by band while the network runs (PNG; other
    formats assemble the quantised image first), so the float output is never held whole.
    """
    start = time.perf_counter()
    in_path, out_path = Path(in_path), Path(out_path)
    fmt = fmt or output_format(out_path)  # fail on a bad extension before spending compute,
    check_writable(out_path)  # and on an output folder that cannot be created or written
    picture = read_image(in_path)
    stream = upscale_rows(model, picture, tile, overlap, routing, progress)
    write_upscaled(out_path, stream, picture, stream.scale, fmt)
    return UpscaleResult(
        source=in_path,
        target=out_path,
        in_size=(picture.width, picture.height),
        out_size=(stream.width, stream.height),
        mode=picture.mode,
        windows=len(stream.windows),
        seconds=time.perf_counter() - start,
    )


# ----------------------------------------------------------------------------------------------
# Which files go where


def find_images(folder: Path, recursive: bool, skip: Path | None = None) -> list[Path]:
    """Image files (by extension, no hidden files) in ``folder``, sorted; ``skip`` excludes a subtree."""
    extensions = image_extensions()
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    found = []
    for path in candidates:
        if not path.is_file() or path.suffix.lower() not in extensions:
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if skip is not None and path.resolve().is_relative_to(skip):
            continue
        found.append(path)
    return sorted(found)


def plan_jobs(
    inputs: Sequence[str | Path], out: str | Path, suffix: str, fmt: str, recursive: bool
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pair every input image with its output path; returns (jobs, one-line errors).

    A single input file goes to ``out`` itself when ``out`` has an extension and is not a
    folder; otherwise ``out`` is a folder and outputs are named ``<stem><suffix>.<fmt>``
    (folder inputs keep their sub-folder layout under ``out`` with ``recursive``).
    """
    out = Path(out)
    errors: list[str] = []
    paths = [Path(p) for p in inputs]
    single_file = len(paths) == 1 and not paths[0].is_dir()
    to_file = single_file and out.suffix != "" and not out.is_dir() and not str(out).endswith(("/", "\\"))
    if to_file:
        return [(paths[0], out)], errors
    if out.exists() and not out.is_dir():
        return [], [f"{out}: exists and is not a folder (several inputs need an output folder)"]
    skip = out.resolve()
    jobs: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir():
            images = find_images(path, recursive, skip)
            if not images:
                errors.append(
                    f"{path}: no images found" + ("" if recursive else " (use --recursive for sub-folders)")
                )
            for image in images:
                relative = image.relative_to(path).parent
                jobs.append((image, out / relative / f"{image.stem}{suffix}.{fmt}"))
        else:
            jobs.append((path, out / f"{path.stem}{suffix}.{fmt}"))
    return jobs, errors


def _dedupe(jobs: list[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Refuse jobs that would overwrite an input or another job's output."""
    seen: dict[Path, Path] = {}
    inputs = {src.resolve() for src, _ in jobs}
    kept, errors = [], []
    for src, dst in jobs:
        key = dst.resolve()
        if key in inputs:
            errors.append(f"{src}: output {dst} would overwrite an input (choose another -o or --suffix)")
        elif key in seen:
            errors.append(
                f"{src}: output {dst} is also the output of {seen[key]} (rename one, or use --suffix)"
            )
        else:
            seen[key] = src
            kept.append((src, dst))
    return kept, errors


# ----------------------------------------------------------------------------------------------
# CLI


class _WindowBar:
    """Progress callback that opens a nested bar once an image turns out to need several passes."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name, self.enabled = name, enabled
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total <= 1:
            return
        if self.bar is None:
            self.bar = progress(
                total=total, desc=self.name, unit="tile", leave=False, position=1, enabled=self.enabled
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Close the bar (after Ctrl-C a log's bar closes without its summary line)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _error(message: str) -> None:
    """One ``<prog>: error:`` line for a file that failed, on stderr, without breaking the bars."""
    write_line(f"{PROG}: error: {' '.join(message.split())}")


def build_parser() -> argparse.ArgumentParser:
    """The ``seemore-upscale`` argument parser."""
    parser = cli.make_parser(
        PROG,
        "Upscale images with a SeemoRe model. Reads anything Pillow can (RGB, RGBA, gray, palette,\n"
        "CMYK, 16-bit PNG/TIFF), applies EXIF orientation, keeps alpha (resized bicubically) and\n"
        "16-bit precision (PNG/TIFF outputs).",
        epilog=(
            "Routing: SeemoRe's experts are chosen from the whole image's average features, so a tile\n"
            "routed on its own content can choose other experts than the whole image. 'global' computes\n"
            "the whole image's choice tile by tile (exact, 3.6-4.2x the time of 'tile' for SeemoRe-T\n"
            "when an image needs several tiles); 'tile' lets each tile choose and cross-fades tile seams.\n"
            "Images no larger than --tile are processed in one pass, which is exact whole-image inference\n"
            "either way.\n\n"
            "Exit status: 0 all done, 1 some files failed or the model could not be loaded, 2 bad\n"
            "arguments, 130 interrupted."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="IN", help="image files and/or folders of images")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output folder (created if needed); for a single input file, the output file itself if it "
        "has an image extension (its format follows the extension)",
    )
    # No default in argparse: _load gives a clearer message when the default is not shipped.
    cli.add_model(parser, default=None, help_extra=f" (default: {DEFAULT_MODEL})")
    parser.add_argument(
        "--tile",
        type=cli.non_negative_int,
        default=DEFAULT_TILE,
        metavar="N",
        help=f"tile side in input pixels, rounded down to a multiple of 16; 0 = whole image in one pass "
        f"(default {DEFAULT_TILE}). Peak memory: Python, torch and the model (about 0.25 GiB) + the "
        "network's activations for one tile (SeemoRe-T x4, measured: about 0.3 GiB at 256, 0.4 GiB at "
        "512) + the rolling band buffer, 12 bytes x (tile x scale + fade rows) x output width (a "
        "4000-pixel-wide photo at x4, tile 512: at most 2080 rows, 0.37 GiB) + the input (3 bytes per "
        "pixel for 8-bit RGB); outputs other than PNG also hold the quantised image (3-8 bytes per output "
        "pixel). Measured (benchmarks/upscale_memory.py under /usr/bin/time -v): a 12 MP photo (3000x4000) "
        "at x4 to a 192 MP PNG peaked at 1.14 GiB RSS with the default tile; a 600x800 input at --tile 256 "
        "at 647 MiB",
    )
    parser.add_argument(
        "--overlap",
        type=cli.non_negative_int,
        default=DEFAULT_OVERLAP,
        metavar="N",
        help=f"minimum context in input pixels kept around each tile's own area (default {DEFAULT_OVERLAP}; "
        "48 makes tiled output equal whole-image output to float precision)",
    )
    parser.add_argument(
        "--routing",
        choices=ROUTINGS,
        default=DEFAULT_ROUTING,
        help=f"expert routing when an image needs several tiles (default {DEFAULT_ROUTING}; see below)",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device to run on: cpu, cuda, cuda:1, mps (default cpu)"
    )
    cli.add_threads(parser)
    parser.add_argument(
        "--suffix",
        default=None,
        help="added to output file names in an output folder (default _x<scale>, e.g. _x4)",
    )
    parser.add_argument(
        "--format",
        default="png",
        help="output format in an output folder: png, jpg, webp, tif, ... (default png)",
    )
    parser.add_argument(
        "--recursive", action="store_true", help="also take images from sub-folders of input folders"
    )
    cli.add_json(parser)
    cli.add_progress(parser)  # bars are also off when stderr is not a terminal
    return parser


def _load(name: str | None) -> nn.Module:
    if name is None:
        if DEFAULT_MODEL not in list_shipped():
            raise CheckpointError(
                f"no --model given and this install ships no {DEFAULT_MODEL} checkpoint; pass --model PATH"
            )
        name = DEFAULT_MODEL
    return load_model(name)


def _result_json(result: UpscaleResult) -> dict[str, object]:
    return {
        "source": str(result.source),
        "target": str(result.target),
        # Named fields: UpscaleResult sizes are (width, height), the project's --size is HxW.
        "in_size": {"height": result.in_size[1], "width": result.in_size[0]},
        "out_size": {"height": result.out_size[1], "width": result.out_size[0]},
        "mode": result.mode,
        "tiles": result.windows,
        "seconds": round(result.seconds, 3),
    }


def _upscale_job(
    model: nn.Module, src: Path, dst: Path, tile: int | None, args: argparse.Namespace, enabled: bool
) -> UpscaleResult | None:
    """One file with its own tile bar; None (after its error line) when it failed.

    Ctrl-C is not a failure of the file: it propagates (the output's temporary is already gone).
    """
    windows = _WindowBar(src.name, enabled)
    try:
        return upscale_file(model, src, dst, tile, args.overlap, args.routing, progress=windows)
    except ImageError as exc:
        _error(str(exc))
    except Exception as exc:  # e.g. out of memory: report, keep going with the other files
        lines = str(exc).strip().splitlines()
        _error(f"{src}: {type(exc).__name__}" + (f": {lines[0]}" if lines else ""))
    finally:
        windows.close()
    return None


def parse_format(text: str) -> str:
    """``--format``'s value as a file extension (``.PNG`` -> ``png``); :class:`cli.UsageError` when
    this install cannot write it."""
    fmt = text.lower().lstrip(".")
    try:
        output_format(f"x.{fmt}")
    except ImageError:
        raise cli.UsageError(f"--format {text}: not a format this install can write") from None
    return fmt


def _run(args: argparse.Namespace) -> int:
    """The CLI's work once the flags are parsed; bad arguments raise :class:`cli.UsageError`."""
    cli.check_json_path(args.json)
    fmt = parse_format(args.format)
    tile = args.tile or None
    # Only PyTorch runs here; cli.apply_threads would also import the ExecuTorch runtime.
    torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise cli.UsageError(f"--device {args.device}: not available ({cli.one_line(exc)})") from None
    model = _load(args.model).to(device).eval()
    scale = int(model.config.scale)
    try:  # the same check the tiler makes, before any file is read
        plan_axis(1 << 20, tile, args.overlap, int(model.config.min_input_size))
    except ValueError as exc:
        raise cli.UsageError(f"--tile/--overlap: {exc}") from None
    suffix = f"_x{scale}" if args.suffix is None else args.suffix
    jobs, errors = plan_jobs(args.inputs, args.output, suffix, fmt, args.recursive)
    jobs, duplicate_errors = _dedupe(jobs)
    errors += duplicate_errors
    for message in errors:
        _error(message)
    enabled = not args.no_progress  # progress() also turns bars into summary lines in a log
    failed = [message.split(": ", 1)[0] for message in errors]
    done: list[UpscaleResult] = []
    start = time.perf_counter()
    bar = progress(total=len(jobs), desc="upscaling", unit="img", enabled=enabled, position=0)
    try:
        for src, dst in jobs:
            result = _upscale_job(model, src, dst, tile, args, enabled)
            bar.update(1)
            if result is None:
                failed.append(str(src))
                continue
            done.append(result)
            (w, h), (big_w, big_h), n = result.in_size, result.out_size, result.windows
            tqdm.write(
                f"{src} -> {dst}  ({w}x{h} -> {big_w}x{big_h}, {result.mode}, "
                f"{n} tile{'s' if n != 1 else ''}, {result.seconds:.1f} s)"
            )
    finally:  # (after Ctrl-C run_main prints the one line and returns 130)
        bar.close()
    elapsed = time.perf_counter() - start
    name = getattr(model.config, "name", "model")
    print(
        f"done: {len(done)} upscaled, {len(failed)} failed, x{scale} with {name} on {device}, "
        f"tile {tile or 'off'}, overlap {args.overlap}, routing {args.routing}, {elapsed:.1f} s"
    )
    if args.json is not None:
        cli.write_json(
            args.json,
            {
                "tool": "seemore.upscale",
                "model": name,
                "scale": scale,
                "device": str(device),
                "threads": args.threads,
                "tile": tile or 0,
                "overlap": args.overlap,
                "routing": args.routing,
                "seconds": round(elapsed, 3),
                "done": [_result_json(r) for r in done],
                "failed": failed,
            },
        )
        print(f"wrote {args.json}", file=sys.stderr)
    if failed:
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        print(f"failed: {shown} (reasons above)", file=sys.stderr)
    if not done and not failed:
        return cli.fail(PROG, "nothing to upscale", 1)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 all done, 1 some files failed or no model, 2 bad
    arguments, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    return cli.run_main(PROG, lambda: _run(args), expected=(CheckpointError, ImageError))


if __name__ == "__main__":
    raise SystemExit(main())
