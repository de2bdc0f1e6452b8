"""``python -m seemore.train``: flags for every :class:`TrainConfig` field, ``--resume``, ``--overwrite``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from seemore import cli
from seemore.checkpoint import CheckpointError
from seemore.paths import DataError
from seemore.train.config import (
    MAX_BATCH_SIZE,
    MAX_PATCH_SIZE,
    MIN_PATCH_SIZE,
    RESUME_CHANGEABLE,
    ConfigError,
    TrainConfig,
    coerce,
    load_toml,
    merge_resumed,
    resolve_config,
)
from seemore.train.trainer import Trainer

# --------------------------------------------------------------------------- CLI


PROG = "seemore-train"
# Fields with a flag of the project-wide convention (seemore.cli) instead of a generated one.
_CONVENTION_FIELDS = ("data_root", "threads")


def build_parser() -> argparse.ArgumentParser:
    """Flags: one per :class:`TrainConfig` field, plus ``--config``, ``--resume``, ``--overwrite``, ``--no-progress``.

    Generated flags default to None, meaning "not given": the config file (or the resumed run) and
    then the :class:`TrainConfig` defaults decide.
    """
    parser = cli.make_parser(
        PROG, "Train SeemoRe. Defaults are the paper's recipe; a TOML --config and flags override them."
    )
    parser.add_argument("--config", help="TOML file with TrainConfig fields (flags override it; with --resume "
                        "its values are checked against the run like flags)")
    changeable = ", ".join(k for k in RESUME_CHANGEABLE if k != "out")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its state.pt (config taken from that run; flags may "
                        f"only change {changeable})")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in an --out that holds a run: its config.json, state.pt, "
                        "latest/best.safetensors and log.csv are removed (no other file) when training starts")
    cli.add_progress(parser)
    cli.add_data_root(parser)
    # cli.add_threads's flag, but defaulting to None ("not given") so that a config file's or the resumed
    # run's threads wins over the convention's default of 2 (applied in _cli_threads).
    parser.add_argument("--threads", type=cli.positive_int, default=None, metavar="N",
                        help="CPU threads for PyTorch "
                        f"(default: the config's threads, else {cli.DEFAULT_THREADS})")
    helps = {
        "train_data": "training folders (comma separated; relative names are looked up under the data root)",
        "val_data": "validation sets (comma separated, e.g. Set5,Set14)",
        "milestones": "iterations at which the LR is multiplied by gamma (comma separated)",
        "betas": "Adam betas, e.g. 0.9,0.99",
        "init_from": "checkpoint (e.g. of another scale) to initialise matching tensors from",
        "amp": "mixed precision: auto (fp16 on CUDA), off, fp16 (CUDA), bf16",
        "device": "auto, cpu, cuda, cuda:N or mps",
        "ema_decay": "EMA decay of the shipped weights (0 = off)",
        "patch_size": f"LR patch side, {MIN_PATCH_SIZE}..{MAX_PATCH_SIZE}",
        "batch_size": f"patches per step and process, 1..{MAX_BATCH_SIZE}",
        "out": "output folder for checkpoints, log and config",
    }
    for f in dataclasses.fields(TrainConfig):
        if f.name in _CONVENTION_FIELDS:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                            help=f"{helps.get(f.name, f.name.replace('_', ' '))} (default: {default})")
    return parser


def _cli_threads(cfg: TrainConfig) -> TrainConfig:
    """The CLI's thread count: the flag or the config's ``threads``, else the convention's default.

    ``threads = 0`` (the library default, "torch's choice") becomes 2 here, as in every seemore CLI.
    """
    return cfg if cfg.threads else dataclasses.replace(cfg, threads=cli.DEFAULT_THREADS)


def _read_saved_config(path: Path) -> dict[str, Any]:
    """A run's config.json; :class:`DataError` when it is not a JSON object."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable run config ({cli.one_line(exc)})") from None
    if not isinstance(saved, dict):
        raise DataError(f"{path}: not a run config (expected a JSON object)")
    return saved


def _resolve(args: argparse.Namespace) -> TrainConfig:
    """The run's config from the flags; :class:`ConfigError` (a :class:`cli.UsageError`) for a bad one.

    With ``--resume`` the run's config.json is the base; a ``--config`` file's values and the flags
    (which win over the file) are checked against it by :func:`merge_resumed`.
    """
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    flags = {k: v for k, v in flags.items() if v is not None}
    if not args.resume:
        return _cli_threads(resolve_config(args.config, flags))
    given = {**(load_toml(args.config) if args.config else {}), **flags}
    out = Path(coerce("out", given.get("out", TrainConfig.out)))
    saved_path = out / "config.json"
    if not saved_path.is_file():
        raise ConfigError(f"--resume: {out}: nothing to resume (no config.json)")
    merged = merge_resumed(_read_saved_config(saved_path), {**given, "out": str(out)}, where=str(saved_path))
    return _cli_threads(resolve_config(None, merged, resuming=True))


def _train(args: argparse.Namespace) -> int:
    if args.overwrite and args.resume:
        raise cli.UsageError("--overwrite and --resume exclude each other: --resume continues the run in --out, "
                             "--overwrite starts it over")
    cfg = _resolve(args)
    try:
        trainer = Trainer(cfg, resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    except KeyboardInterrupt:  # e.g. while the images load: nothing was written yet
        print(f"{PROG}: interrupted before training started (nothing written)", file=sys.stderr)
        return 130
    try:
        result = trainer.train()
    except KeyboardInterrupt:
        # One line, as cli.run_main would print, plus how to continue.
        print(f"{PROG}: {trainer.interrupted_message()}", file=sys.stderr)
        return 130
    if result is not None:
        print(trainer._val_line(result))
    print(f"done: {trainer.iteration} iterations, {trainer.wall_time / 60:.1f} min; checkpoints in {trainer.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 done, 1 failed, 2 bad arguments or config, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    return cli.run_main(PROG, lambda: _train(args), expected=(DataError, CheckpointError, FloatingPointError))
