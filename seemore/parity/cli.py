"""``python mobile/parity.py`` (``seemore-parity``): every artifact against PyTorch, one table.

Artifacts are found by their contracts under ``--root``. Each one that runs here is run on the
Set5 and Set14 LR images (tiled per its contract's rule) and compared with its torch model under
the bound of its backend and precision (:mod:`seemore.parity.bounds`); the table also gives each
artifact's Y-channel PSNR/SSIM against HR. Artifacts this host cannot run get a structural check
and are reported "not run". Results are written back into each contract's ``parity``. Exit
status 1 when a bound or a check fails, or a contract cannot be read.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from seemore.cli import (
    UsageError,
    add_data_root,
    add_json,
    add_progress,
    add_threads,
    apply_threads,
    check_json_path,
    fail,
    make_parser,
    run_main,
    write_json,
)
from seemore.parity.harness import DEFAULT_ROOT, DEFAULT_SETS

PROG = "parity.py"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface."""
    p = make_parser(PROG, "Parity of every exported artifact against its PyTorch reference, in its own runtime.")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                   help=f"folder searched (recursively) for artifacts with a contract JSON (default: {DEFAULT_ROOT})")
    add_data_root(p)
    p.add_argument("--sets", nargs="+", default=list(DEFAULT_SETS), metavar="SET",
                   help=f"benchmark sets to run (default: {' '.join(DEFAULT_SETS)})")
    p.add_argument("--no-write", action="store_true", help="do not write the results back into the contracts")
    p.add_argument("--strict", action="store_true",
                   help="treat INT8 artifacts 'at floor' (below their bound but as close as the torch reference is "
                   "to itself) as failures")
    add_threads(p)
    add_json(p)
    add_progress(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        from seemore.toolchain_logs import quiet_toolchain_logs

        quiet_toolchain_logs()
        check_json_path(args.json)
        from seemore.contract import ContractError, discover
        from seemore.parity.harness import results_json, run_parity
        from seemore.parity.report import format_results
        from seemore.paths import resolve_data_root

        try:
            if not discover(args.root):
                raise UsageError(f"{args.root}: no artifacts with a contract JSON found")
        except ContractError as exc:
            raise UsageError(str(exc)) from None
        data_root = resolve_data_root(args.data_root)
        apply_threads(args.threads)
        results = run_parity(args.root, data_root, args.sets, write=not args.no_write,
                             progress=not args.no_progress, strict=args.strict)
        print(format_results(results))
        print("\nparity: PSNR (peak 1.0) of the artifact against its torch model on the worst image; "
              "task metrics: Y channel, crop = scale, images tiled per the artifact's contract.")
        if args.json is not None:
            write_json(args.json, results_json(args.root, args.sets, results))
        failed = [r.artifact for r in results if r.failed]
        if failed:
            return fail(PROG, f"parity failed for {', '.join(failed)}", code=1)
        return 0

    from seemore.paths import DataError

    return run_main(PROG, body, expected=(DataError,))
