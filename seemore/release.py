"""Turn a training checkpoint into a shipped one: ``python -m seemore.release RUN/best.safetensors``.

The weights are re-evaluated on Set5 and Set14 with the standard protocol, the result is added
to the training record, and the file is written (atomically) to ``seemore/weights/<name>.safetensors``,
where :func:`seemore.load_model` finds it by name. Shipped files must stay under 2 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from seemore import cli
from seemore.checkpoint import (
    RECORD_KEY,
    WEIGHTS_DIR,
    CheckpointError,
    file_sha256,
    load_model,
    read_metadata,
    save_model,
)
from seemore.common.files import atomic_write
from seemore.paths import DataError

MAX_SHIPPED_BYTES = 2_000_000
PROG = "seemore-release"


def release(source: str | Path, name: str | None = None, data_root: str | None = None,
            dest_dir: Path = WEIGHTS_DIR) -> tuple[Path, dict[str, Any]]:
    """Evaluate ``source`` on Set5/Set14 and write it as a shipped checkpoint; returns (path, record)."""
    from seemore.evaluate import evaluate_model

    model = load_model(source)
    name = name or model.config.name
    record: dict[str, Any] = dict(read_metadata(source).get(RECORD_KEY) or {})
    report = evaluate_model(model, ("Set5", "Set14"), model.scale, data_root, progress=True, label=name)
    record["evaluation"] = {
        s.name: {"psnr_y": round(s.psnr, 4), "ssim_y": round(s.ssim, 5)} for s in report.sets
    }
    record["evaluation_protocol"] = "seemore.evaluate (Y channel, crop border = scale, gray on own channel)"
    record["source_sha256"] = file_sha256(source)
    # The per-image validation detail is in the run folder; the shipped record keeps the summary.
    if isinstance(record.get("validation"), dict):
        record["validation"] = {
            "iteration": record["validation"].get("iteration"),
            "sets": {k: {m: v.get(m) for m in ("psnr", "ssim")}
                     for k, v in record["validation"].get("sets", {}).items()},
        }
    dest = dest_dir / f"{name}.safetensors"
    # Size-checked before the rename: an oversized file must not replace the checkpoint shipped today.

    def write(tmp: str) -> None:
        save_model(model, tmp, record)
        size = os.path.getsize(tmp)
        if size > MAX_SHIPPED_BYTES:
            raise CheckpointError(f"{source}: {size} bytes is over the {MAX_SHIPPED_BYTES}-byte limit for shipped files")

    atomic_write(dest, write)
    print(report.table(), file=sys.stderr)
    return dest, record


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m seemore.release`` argument parser."""
    p = cli.make_parser(PROG, __doc__ or "")
    p.add_argument("source", help="checkpoint to ship (e.g. runs/seemore_t_x4/best.safetensors)")
    p.add_argument("--name", help="shipped name (default: the config name, e.g. seemore_t_x4)")
    cli.add_data_root(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 shipped, 1 failed, 2 bad arguments, 130 interrupted)."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        if args.name is not None and not args.name.replace("_", "").replace("-", "").isalnum():
            raise cli.UsageError(f"--name {args.name!r}: use letters, digits, '_' and '-' only")
        dest, record = release(args.source, args.name, args.data_root)
        ev = record["evaluation"]
        print(f"shipped {dest} ({dest.stat().st_size} bytes): "
              + ", ".join(f"{k} {v['psnr_y']:.2f} dB / {v['ssim_y']:.4f}" for k, v in ev.items()))
        return 0

    return cli.run_main(PROG, body, expected=(CheckpointError, DataError))


if __name__ == "__main__":
    raise SystemExit(main())
