"""Training SeemoRe: ``python -m seemore.train [--config FILE.toml] [--key value ...]``.

The defaults are the paper's recipe (docs/MODEL.md): LR patches 64x64, batch 32, L1 + 0.1 FFT
loss, Adam 1e-3 with betas (0.9, 0.99), 500k iterations with the learning rate halved at
250k, 400k, 450k and 475k. A TOML config file and command-line flags override fields of
:class:`TrainConfig`; the resolved config is saved next to the checkpoints.

Runs on CPU, on one GPU (automatic mixed precision) and on several GPUs with
``torchrun --nproc_per_node N -m seemore.train ...`` (DistributedDataParallel; each rank
draws its own batches, the batch size is per process).

Output folder (``--out``): ``config.json``, ``state.pt`` (full training state, written
atomically: ``--resume`` continues from it bit-exactly on CPU), ``latest.safetensors`` and
``best.safetensors`` (weights + config + training record), ``log.csv``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import random
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from seemore import cli
from seemore.checkpoint import CheckpointError, atomic_write, load_model, save_model
from seemore.config import get_config
from seemore.model import SeemoRe
from seemore.paths import DataError, bundled_images, note_fallback, resolve_data_root
from seemore.train_data import PatchSampler, Prefetcher, TrainImage, degrade, load_training_images, read_rgb


@dataclass
class TrainConfig:
    """Every training setting; defaults reproduce the paper's recipe for SeemoRe-T."""

    variant: str = "seemore_t"
    scale: int = 4
    # Training folders; relative paths are looked up under the data root first.
    train_data: list[str] = field(default_factory=lambda: ["train"])
    val_data: list[str] = field(default_factory=lambda: ["Set5", "Set14"])
    data_root: str | None = None
    patch_size: int = 64  # LR patch side
    batch_size: int = 32  # per process
    iterations: int = 500_000
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    # multistep: paper; cosine: over all iterations; wsd: constant, then a cosine decay over the
    # last ``decay_iters`` (warmup-stable-decay: a long run can be branched into short decays).
    scheduler: str = "multistep"
    milestones: list[int] = field(default_factory=lambda: [250_000, 400_000, 450_000, 475_000])
    gamma: float = 0.5
    min_lr: float = 1e-6  # cosine / wsd floor
    decay_iters: int = 0  # wsd: length of the final decay
    warmup: int = 0  # linear warm-up iterations
    fft_weight: float = 0.1
    ema_decay: float = 0.0  # 0 disables EMA weights (BasicSR uses 0.999)
    grad_clip: float = 0.0  # 0 disables
    val_every: int = 5_000
    save_every: int = 1_000
    log_every: int = 50
    seed: int = 0
    threads: int = 0  # 0: torch's default
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "auto"  # auto (fp16 on CUDA, off on CPU) | off | fp16 | bf16
    channels_last: bool = True
    compile: bool = False
    init_from: str | None = None
    out: str = "runs/seemore_t_x4"

    def validate(self) -> None:
        """Reject impossible settings with a one-line message."""
        get_config(self.variant, self.scale)
        if self.patch_size < 16:
            raise ValueError("patch_size must be >= 16 (two stride-4 aggregations)")
        if self.batch_size < 1 or self.iterations < 1:
            raise ValueError("batch_size and iterations must be positive")
        if self.scheduler not in ("multistep", "cosine", "wsd"):
            raise ValueError(f"scheduler must be multistep, cosine or wsd, got {self.scheduler!r}")
        if not 0 <= self.decay_iters <= self.iterations:
            raise ValueError("decay_iters must be between 0 and iterations")
        if self.amp not in ("auto", "off", "fp16", "bf16"):
            raise ValueError(f"amp must be auto, off, fp16 or bf16, got {self.amp!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in [0, 1)")


def _coerce(name: str, value: Any) -> Any:
    """Convert a TOML/CLI value to the type of the :class:`TrainConfig` field ``name``."""
    default = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    kind = default.type
    if value is None:
        return None
    if kind in ("int",):
        return int(value)
    if kind in ("float",):
        return float(value)
    if kind == "bool":
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{name}: expected true/false, got {value!r}")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    if kind.startswith("list[int]"):
        return [int(v) for v in (value.split(",") if isinstance(value, str) else value)]
    if kind.startswith("list[str]"):
        return list(value.split(",") if isinstance(value, str) else value)
    if kind.startswith("tuple[float"):
        return tuple(float(v) for v in (value.split(",") if isinstance(value, str) else value))
    return value


def resolve_config(config_file: str | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the TOML file, then command-line overrides."""
    values: dict[str, Any] = {}
    if config_file:
        try:
            with open(config_file, "rb") as f:
                values.update(tomllib.load(f))
        except OSError as exc:
            raise ValueError(f"{config_file}: cannot read config ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{config_file}: invalid TOML ({exc})") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}")
    cfg = TrainConfig(**{k: _coerce(k, v) for k, v in values.items()})
    cfg.validate()
    return cfg


# --------------------------------------------------------------------------- losses


def fft_l1(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between the stacked real and imaginary parts of ``rfft2`` (the paper's FFT loss)."""
    return F.l1_loss(torch.view_as_real(torch.fft.rfft2(pred)), torch.view_as_real(torch.fft.rfft2(target)))


def sr_loss(pred: Tensor, target: Tensor, fft_weight: float) -> Tensor:
    """L1 + ``fft_weight`` * FFT loss, computed in fp32 whatever the autocast dtype."""
    pred, target = pred.float(), target.float()
    loss = F.l1_loss(pred, target)
    if fft_weight:
        loss = loss + fft_weight * fft_l1(pred, target)
    return loss


# --------------------------------------------------------------------------- schedule


def lr_factor(cfg: TrainConfig, iteration: int) -> float:
    """Learning-rate multiplier at ``iteration`` (0-based step about to be taken)."""
    if cfg.warmup and iteration < cfg.warmup:
        return (iteration + 1) / cfg.warmup
    floor = cfg.min_lr / cfg.lr
    if cfg.scheduler == "cosine":
        span = max(1, cfg.iterations - cfg.warmup)
        t = min(1.0, (iteration - cfg.warmup) / span)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.scheduler == "wsd":
        start = cfg.iterations - cfg.decay_iters
        if iteration < start:
            return 1.0
        t = min(1.0, (iteration - start) / max(1, cfg.decay_iters))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    return cfg.gamma ** sum(iteration >= m for m in cfg.milestones)


# --------------------------------------------------------------------------- EMA


class EMA:
    """Exponential moving average of the weights (BasicSR's ``net_g_ema``), with warm-up.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates: without
    the warm-up, a 0.999 average still holds 37 % of the random initialisation after 1,000
    steps, which ruins the shipped weights of any run shorter than several thousand steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow = d * shadow + (1 - d) * weights, with the warmed-up decay d."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)

    def state_dict(self) -> dict[str, Any]:
        """Shadow weights and update count, for the training state."""
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.shadow = state["shadow"]
        self.updates = int(state["updates"])


# --------------------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available (this rank's GPU under torchrun), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        name = f"cuda:{os.environ['LOCAL_RANK']}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device cuda requested but no CUDA device is available")
    return torch.device(name)


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype, or None for full fp32."""
    choice = cfg.amp
    if choice == "auto":
        choice = "fp16" if device.type == "cuda" else "off"
    return {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[choice]


def find_data_folders(entries: list[str], data_root: Path | None) -> list[Path]:
    """Resolve training folder names: as given if they exist, else under the data root."""
    folders = []
    for entry in entries:
        path = Path(entry).expanduser()
        if not path.exists() and data_root is not None and (data_root / entry).exists():
            path = data_root / entry
        if not path.is_dir():
            raise DataError(f"{entry}: training data folder not found (data root: {data_root})")
        folders.append(path)
    return folders


def init_from_checkpoint(model: SeemoRe, path: str) -> list[str]:
    """Copy every same-named, same-shaped tensor from ``path`` (e.g. an x2 model into x4).

    Returns the names of the tensors that kept their fresh initialisation.
    """
    source = load_model(path).state_dict()
    target = model.state_dict()
    loaded = {k: v for k, v in source.items() if k in target and target[k].shape == v.shape}
    model.load_state_dict(loaded, strict=False)
    return sorted(set(target) - set(loaded))


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- trainer


class Trainer:
    """One training run: owns the model, optimiser, EMA, data stream and output folder."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True,
                 command: str | None = None) -> None:
        self.cfg = cfg
        self.progress = progress
        # Every invocation that contributed to this run (the first, then each --resume).
        self.commands = [command or " ".join(["python -m seemore.train", *sys.argv[1:]])]
        self.out = Path(cfg.out)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = resolve_device(cfg.device)
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.amp = amp_dtype(cfg, self.device)
        self.model = SeemoRe(get_config(cfg.variant, cfg.scale)).to(self.device)
        self.not_initialised: list[str] = []
        if cfg.init_from and not resume:
            self.not_initialised = init_from_checkpoint(self.model, cfg.init_from)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp is torch.float16)
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay else None
        self.iteration = 0
        self.wall_time = 0.0
        self.best: dict[str, Any] | None = None
        self.last_val: dict[str, Any] | None = None
        if resume:
            self._load_state()
        self.net: nn.Module = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.data_root = resolve_data_root(cfg.data_root)
        self.data_summary: dict[str, Any] = {}
        self.sampler = PatchSampler(self._load_images(), cfg.scale, cfg.patch_size, cfg.seed)

    # ------------------------------------------------------------------ data

    def _load_images(self) -> list[TrainImage]:
        if self.data_root is None and all(not Path(e).is_dir() for e in self.cfg.train_data):
            if self.rank == 0:
                note_fallback("training")
            images = []
            for path in bundled_images():
                hr, lr = degrade(read_rgb(path), self.cfg.scale)
                images.append(TrainImage(path.stem, hr, lr))
            self.data_summary = {"folders": ["<scikit-image bundled photos>"], "images": len(images)}
            return images
        folders = find_data_folders(self.cfg.train_data, self.data_root)
        images = load_training_images(folders, self.cfg.scale, progress=self.progress and self.rank == 0)
        self.data_summary = {"folders": [str(f) for f in folders], "images": len(images)}
        return images

    # ------------------------------------------------------------------ state

    @property
    def state_path(self) -> Path:
        """The full training state used by ``--resume``."""
        return self.out / "state.pt"

    def _state(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.cfg),
            "iteration": self.iteration,
            "wall_time": self.wall_time,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "rng": _rng_state(),
            "best": self.best,
            "last_val": self.last_val,
            "not_initialised": self.not_initialised,
            "commands": self.commands,
        }

    def _load_state(self) -> None:
        if not self.state_path.is_file():
            raise DataError(f"{self.state_path}: nothing to resume (no training state)")
        try:
            state = torch.load(self.state_path, map_location=self.device, weights_only=False)
        except Exception as exc:
            raise DataError(f"{self.state_path}: unreadable training state ({type(exc).__name__})") from None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.iteration = state["iteration"]
        self.wall_time = state["wall_time"]
        self.best = state["best"]
        self.last_val = state["last_val"]
        self.not_initialised = state.get("not_initialised", [])
        self.commands = list(state.get("commands", [])) + self.commands
        _set_rng_state(state["rng"])

    def save(self) -> None:
        """Write state.pt and latest.safetensors atomically (rank 0 only)."""
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        state = self._state()
        atomic_write(self.state_path, lambda tmp: torch.save(state, tmp))
        save_model(self.model, self.out / "latest.safetensors", self.record(self.last_val), self._weights())

    def _weights(self) -> dict[str, Tensor]:
        """The weights to ship: EMA when enabled, else the raw ones."""
        return self.ema.shadow if self.ema else self.model.state_dict()

    def record(self, validation: dict[str, Any] | None) -> dict[str, Any]:
        """The training record stored in every checkpoint's metadata."""
        return {
            "command": self.commands[0],
            "resumed_with": self.commands[1:],
            "config": dataclasses.asdict(self.cfg),
            "data": self.data_summary,
            "iterations": self.iteration,
            "wall_time_s": round(self.wall_time, 1),
            "device": str(self.device),
            "world_size": self.world,
            "torch": torch.__version__,
            "weights": "ema" if self.ema else "raw",
            "validation": validation,
            "not_initialised_from_init": self.not_initialised,
        }

    # ------------------------------------------------------------------ validation

    def validate(self) -> dict[str, Any]:
        """Evaluate the shipped weights on the validation sets (PSNR/SSIM, Y channel)."""
        from seemore.evaluate import evaluate_model  # local: evaluation pulls in its own data cache

        model = SeemoRe(self.model.config).to(self.device)
        model.load_state_dict(self._weights())
        report = evaluate_model(model.eval(), sets=self.cfg.val_data, scale=self.cfg.scale,
                                data_root=self.data_root, device=str(self.device))
        result = {"iteration": self.iteration, **report.to_dict()}
        self.last_val = result
        return result

    def _val_score(self, result: dict[str, Any]) -> float:
        first = self.cfg.val_data[0]
        sets = result["sets"]
        return float(sets[first]["psnr"] if first in sets else next(iter(sets.values()))["psnr"])

    # ------------------------------------------------------------------ loop

    def train(self) -> dict[str, Any] | None:
        """Run until ``cfg.iterations``; returns the last validation result."""
        cfg = self.cfg
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write(self.out / "config.json",
                         lambda tmp: Path(tmp).write_text(json.dumps(dataclasses.asdict(cfg), indent=2)))
            if self.not_initialised:
                print(f"init_from {cfg.init_from}: not loaded (fresh init): {', '.join(self.not_initialised)}",
                      file=sys.stderr)
        self.net.train()
        stream = Prefetcher(self.sampler, self.iteration, cfg.iterations, cfg.batch_size, self.rank)
        bar = tqdm(total=cfg.iterations, initial=self.iteration, disable=not self.progress or self.rank != 0,
                   desc=f"train {cfg.variant}_x{cfg.scale}", dynamic_ncols=True, smoothing=0.05)
        log_sum, log_n = 0.0, 0
        try:
            for lr_np, hr_np in stream:
                t0 = time.perf_counter()
                loss = self._step(lr_np, hr_np)
                self.iteration += 1
                log_sum, log_n = log_sum + loss, log_n + 1
                if self.rank == 0:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
                val = None
                if self.iteration % cfg.val_every == 0 or self.iteration == cfg.iterations:
                    if self.rank == 0:
                        val = self.validate()
                        self._keep_best(val)
                        bar.write(self._val_line(val))
                self.wall_time += time.perf_counter() - t0
                if self.rank == 0 and (self.iteration % cfg.log_every == 0 or val is not None):
                    self._log(log_sum / max(1, log_n), val)
                    log_sum, log_n = 0.0, 0
                if self.iteration % cfg.save_every == 0 or self.iteration == cfg.iterations:
                    self.save()
        finally:
            stream.close()
            bar.close()
        return self.last_val

    def _step(self, lr_np: np.ndarray, hr_np: np.ndarray) -> float:
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(cfg, self.iteration)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        lr = torch.from_numpy(lr_np).to(self.device, non_blocking=True).contiguous(memory_format=fmt)
        hr = torch.from_numpy(hr_np).to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            pred = self.net(lr)
        loss = sr_loss(pred, hr, cfg.fft_weight)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        value = loss.detach()
        if not torch.isfinite(value):
            raise FloatingPointError(f"loss became {value.item()} at iteration {self.iteration + 1}")
        return float(value)

    def _keep_best(self, val: dict[str, Any]) -> None:
        score = self._val_score(val)
        if self.best is None or score > self.best["score"]:
            self.best = {"score": score, "iteration": self.iteration}
            save_model(self.model, self.out / "best.safetensors", self.record(val), self._weights())

    def _val_line(self, val: dict[str, Any]) -> str:
        parts = [f"{name} {m['psnr']:.2f} dB / {m['ssim']:.4f}" for name, m in val["sets"].items()]
        return f"[iter {self.iteration}] " + ", ".join(parts)

    def _log(self, loss: float, val: dict[str, Any] | None) -> None:
        path = self.out / "log.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["iteration", "loss", "lr", "wall_time_s", "val_set", "val_psnr", "val_ssim"])
            first = None
            if val is not None:
                first = next(iter(val["sets"].items()))
            writer.writerow([
                self.iteration, f"{loss:.6f}", f"{self.optimizer.param_groups[0]['lr']:.6g}",
                f"{self.wall_time:.1f}",
                first[0] if first else "", f"{first[1]['psnr']:.4f}" if first else "",
                f"{first[1]['ssim']:.5f}" if first else "",
            ])


# --------------------------------------------------------------------------- CLI


PROG = "seemore-train"
# Fields with a flag of the project-wide convention (seemore.cli) instead of a generated one.
_CONVENTION_FIELDS = ("data_root", "threads")


def build_parser() -> argparse.ArgumentParser:
    """Flags: one per :class:`TrainConfig` field, plus ``--config``, ``--resume`` and ``--no-progress``.

    Generated flags default to None, meaning "not given": the config file (or the resumed run) and
    then the :class:`TrainConfig` defaults decide.
    """
    parser = cli.make_parser(
        PROG, "Train SeemoRe. Defaults are the paper's recipe; a TOML --config and flags override them."
    )
    parser.add_argument("--config", help="TOML file with TrainConfig fields (flags override it)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its state.pt (config taken from that run)")
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
        "amp": "mixed precision: auto (fp16 on CUDA), off, fp16, bf16",
        "ema_decay": "EMA decay of the shipped weights (0 = off)",
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


def _resolve(args: argparse.Namespace) -> TrainConfig:
    """The run's config from the flags; :class:`cli.UsageError` for a bad config or flag."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    if args.resume:
        out = Path(overrides["out"] or TrainConfig.out)
        saved = out / "config.json"
        if not saved.is_file():
            raise cli.UsageError(f"--resume: {out}: nothing to resume (no config.json)")
        base = json.loads(saved.read_text())
        # Flags may still change settings that do not alter the math (e.g. threads, val_every).
        base.update({k: v for k, v in overrides.items() if v is not None})
        config_file, values = None, base
    else:
        config_file, values = args.config, overrides
    try:
        return _cli_threads(resolve_config(config_file, values))
    except ValueError as exc:  # unknown keys, bad values, unreadable or invalid TOML: bad usage
        raise cli.UsageError(cli.one_line(exc)) from None


def _train(args: argparse.Namespace) -> int:
    cfg = _resolve(args)
    trainer = Trainer(cfg, resume=args.resume, progress=not args.no_progress)
    try:
        result = trainer.train()
    except KeyboardInterrupt:
        # One line, as cli.run_main would print, plus how to continue.
        print(f"{PROG}: interrupted: resume with --resume (state of the last save is kept)", file=sys.stderr)
        return 130
    if result is not None:
        print(trainer._val_line(result))
    print(f"done: {trainer.iteration} iterations, {trainer.wall_time / 60:.1f} min; checkpoints in {trainer.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 done, 1 failed, 2 bad arguments, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    return cli.run_main(PROG, lambda: _train(args), expected=(DataError, CheckpointError, FloatingPointError))


if __name__ == "__main__":
    raise SystemExit(main())
