"""Check every exported artifact against PyTorch in its own runtime, and print one table.

Run from the repository root::

    python mobile/parity.py                         # every artifact under artifacts/
    python mobile/parity.py --root /tmp/pte --json runs/parity.json
    python mobile/parity.py --sets Set5 --no-write

Artifacts are found by their sidecar JSON. Each runnable one (XNNPACK ``.pte`` here) is run
on the Set5 and Set14 LR images (mirror-padded or tiled to its fixed input size) and
compared with its torch model: FP32 against eager PyTorch (>= 60 dB PSNR), INT8 against the
fake-quantized program it was lowered from (target >= 45 dB; "ref. self" is how closely that
program reproduces itself on channels-last input, and an INT8 artifact below 45 dB but within
1 dB of it is reported "at floor", a failure with ``--strict``; see
:mod:`seemore.export.bounds`); the table also gives each artifact's Y-channel PSNR/SSIM
against HR. Artifacts this host cannot run (Vulkan ``.pte``)
get a structural check and are reported as not run. Results are written back into each
sidecar's ``parity`` entry. Exit status 1 when a bound or a check fails. A thin CLI over
:mod:`seemore.parity`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from seemore.cli import OneLineParser, fail, write_json
from seemore.toolchain_logs import quiet_toolchain_logs
from seemore.parity import DEFAULT_ROOT, DEFAULT_SETS

PROG = "parity.py"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    p = OneLineParser(prog=PROG, description="Parity of every exported artifact against its PyTorch reference.")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                   help=f"folder searched (recursively) for artifacts with sidecar JSON (default: {DEFAULT_ROOT})")
    p.add_argument("--data-root", default=None,
                   help="data folder with benchmark/Set5, Set14 (default: $SEEMORE_DATA or ../shared/data; "
                   "scikit-image's sample photos when none exists)")
    p.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS),
                   help=f"benchmark sets to run (default: {' '.join(DEFAULT_SETS)})")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the table as JSON")
    p.add_argument("--no-write", action="store_true", help="do not write the results back into the sidecars")
    p.add_argument("--threads", type=int, default=2,
                   help="CPU threads for PyTorch and the ExecuTorch runtime (default: 2)")
    p.add_argument("--strict", action="store_true",
                   help="treat INT8 artifacts 'at floor' (below 45 dB but as close as the torch reference is to "
                   "itself) as failures")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    quiet_toolchain_logs()
    if args.threads < 1:
        return fail(PROG, f"--threads must be >= 1, got {args.threads}")
    from seemore.parity import discover, format_table, run_parity
    from seemore.paths import DataError

    try:
        if not discover(args.root):
            return fail(PROG, f"{args.root}: no artifacts with a sidecar JSON found")
    except DataError as exc:
        return fail(PROG, str(exc))
    import torch

    torch.set_num_threads(args.threads)
    try:
        from seemore.export.executorch_export import set_runtime_threads

        set_runtime_threads(args.threads)
    except ImportError:  # no ExecuTorch: its runner reports per artifact
        pass
    try:
        results = run_parity(args.root, args.data_root, args.sets, write=not args.no_write,
                             progress=not args.no_progress, strict=args.strict)
    except DataError as exc:
        return fail(PROG, str(exc))
    print(format_table(results))
    print("\nparity: PSNR (peak 1.0) of the artifact against its torch model on the worst image; "
          "task metrics: Y channel, crop = scale, images mirror-padded/tiled to the artifact's input size.")
    if args.json is not None:
        payload = {"root": str(args.root), "sets": list(args.sets), "results": [r.to_dict() for r in results]}
        write_json(args.json, payload)
    failed = [r.artifact for r in results if r.failed]
    if failed:
        return fail(PROG, f"parity failed for {', '.join(failed)}", code=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
