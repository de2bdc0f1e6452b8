"""One training run: :class:`Trainer` owns the model, optimiser, EMA, data stream and run folder."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seemore import cli
from seemore.checkpoint import atomic_write, describe_mismatch, infer_config, load_model, save_model
from seemore.common.progress import progress as progress_bar
from seemore.config import get_config
from seemore.model import SeemoRe
from seemore.paths import DataError, bundled_images, note_fallback, resolve_data_root
from seemore.train.config import (
    FIELD_TYPES,
    MIN_PATCH_SIZE,
    RESUME_CHANGEABLE,
    ConfigError,
    TrainConfig,
    coerce,
    resolve_device,
)
from seemore.train.data import (
    PatchSampler,
    Prefetcher,
    TrainImage,
    degrade,
    largest_patch,
    load_training_images,
    padded_images,
    padding_bytes,
    read_rgb,
)
from seemore.train.memory import format_bytes, check_memory
from seemore.train.objective import EMA, lr_factor, sr_loss
from seemore.train.rundir import LOG_HEADER, check_out_dir, remove_run_files, trim_log

# --------------------------------------------------------------------------- helpers


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
    if not loaded:  # a checkpoint of another architecture: "initialised from" it would be a lie
        raise ConfigError(f"init_from: no tensor of {path} fits {model.config.name}")
    model.load_state_dict(loaded, strict=False)
    return sorted(set(target) - set(loaded))


def state_dict_mismatch(reference: dict[str, Tensor], loaded: Any) -> str | None:
    """How ``loaded`` fails to fit ``reference`` (first few names of each kind), or None when it fits."""
    if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
        return "not a state_dict of tensors"
    return describe_mismatch(reference, loaded) or None


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
    """One training run: owns the model, optimiser, EMA, data stream and output folder.

    Everything that can be refused is checked here, before the first step and before anything
    is written: the output folder (:func:`check_out_dir`), the data folders, the step's memory,
    the resumed state against the config, and the patch size against the images.
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True,
                 command: str | None = None, overwrite: bool = False) -> None:
        self.cfg = cfg
        self.progress = progress
        self.resumed = resume
        self.overwrite = overwrite
        # Every invocation that contributed to this run (the first, then each --resume).
        self.commands = [command or " ".join(["python -m seemore.train", *sys.argv[1:]])]
        self.out = Path(cfg.out)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.rank == 0:  # the only writer; other ranks would see rank 0's fresh files
            check_out_dir(self.out, resume, overwrite)
        self.device = resolve_device(cfg.device)
        self.data_root = resolve_data_root(cfg.data_root)
        self.train_folders = self._find_train_folders()
        if self.rank == 0:
            self._check_val_sets()
        check_memory(cfg, self.device)  # config only: before the model, the data and any allocation
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
        self.saved_iteration: int | None = None  # the iteration state.pt holds (None: nothing saved)
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
        self.data_summary: dict[str, Any] = {}
        images = self._load_images()
        self._check_patch(images)
        extra = padding_bytes(images, cfg.patch_size, cfg.scale)
        check_memory(cfg, self.device, extra, f" with {format_bytes(extra)} of padded images" if extra else "")
        self.sampler = PatchSampler(images, cfg.scale, cfg.patch_size, cfg.seed)

    # ------------------------------------------------------------------ data

    def _find_train_folders(self) -> list[Path] | None:
        """The training folders (checked to exist now, not after the model is built); None: bundled photos."""
        if self.data_root is None and all(not Path(e).expanduser().is_dir() for e in self.cfg.train_data):
            return None
        return find_data_folders(self.cfg.train_data, self.data_root)

    def _load_images(self) -> list[TrainImage]:
        if self.train_folders is None:
            if self.rank == 0:
                note_fallback("training")
            images = []
            for path in bundled_images():
                hr, lr = degrade(read_rgb(path), self.cfg.scale)
                images.append(TrainImage(path.stem, hr, lr))
            self.data_summary = {"folders": ["<scikit-image bundled photos>"], "images": len(images)}
            return images
        images = load_training_images(self.train_folders, self.cfg.scale,
                                      progress=self.progress and self.rank == 0)
        self.data_summary = {"folders": [str(f) for f in self.train_folders], "images": len(images)}
        return images

    def _check_patch(self, images: list[TrainImage]) -> None:
        """Refuse a patch that no image holds; say how many smaller images get mirror-padded."""
        p, scale = self.cfg.patch_size, self.cfg.scale
        largest, image = largest_patch(images)
        if largest < p:
            h, w = image.lr.shape[:2]
            fix = (f"lower patch_size to at most {largest}" if largest >= MIN_PATCH_SIZE
                   else f"use larger images (patch_size is at least {MIN_PATCH_SIZE})")
            raise ConfigError(f"patch_size: {p} is larger than every LR training image at x{scale} "
                              f"(the largest, {image.name}, is {w}x{h}); {fix}")
        small = padded_images(images, p)
        if small and self.rank == 0:
            tiniest = min(small, key=lambda im: min(im.lr.shape[:2]))
            h, w = tiniest.lr.shape[:2]
            print(f"note: {len(small)} of {len(images)} training images are smaller than the {p}x{p} LR patch "
                  f"and are mirror-padded (smallest: {tiniest.name}, {w}x{h} LR)", file=sys.stderr)

    def _check_val_sets(self) -> None:
        """Load the validation sets now (cached for later): a typo fails here, not at the first validation."""
        from seemore.benchmark import load_named_benchmark  # local: evaluation's own data cache

        for name in self.cfg.val_data:
            load_named_benchmark(name, self.cfg.scale, self.data_root)

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
        """Restore state.pt after checking it belongs to this config; one-line errors otherwise."""
        path = self.state_path
        if not path.is_file():
            raise DataError(f"{path}: nothing to resume (no training state)")
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:
            raise DataError(f"{path}: unreadable training state ({type(exc).__name__})") from None
        needed = ("config", "iteration", "model", "optimizer", "scaler", "ema", "rng")
        if not isinstance(state, dict) or any(k not in state for k in needed):
            raise DataError(f"{path}: not a training state of seemore.train (needs {', '.join(needed)})")
        self._check_state_config(state["config"])
        if state["iteration"] > self.cfg.iterations:
            raise ConfigError(f"iterations: the run is at iteration {state['iteration']}; give iterations >= "
                              f"{state['iteration']}, got {self.cfg.iterations}")
        name = f"{self.cfg.variant} x{self.cfg.scale}"
        mismatch = state_dict_mismatch(self.model.state_dict(), state["model"])
        if mismatch is not None:
            fits = infer_config(state["model"]) if isinstance(state["model"], dict) else None
            raise DataError(f"{path} does not match {name}: "
                            + (f"its weights are for {fits.name}" if fits is not None else mismatch))
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            # An empty scaler state comes from a run without fp16 (e.g. moved from CPU to CUDA):
            # the new scaler starts fresh instead of failing.
            if state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None and state["ema"] is not None:
                self.ema.load_state_dict(state["ema"])
            _set_rng_state(state["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise DataError(f"{path} does not match {name}: {cli.one_line(exc)}") from None
        self.iteration = int(state["iteration"])
        self.saved_iteration = self.iteration
        self.wall_time = float(state.get("wall_time", 0.0))
        self.best = state.get("best")
        self.last_val = state.get("last_val")
        self.not_initialised = state.get("not_initialised", [])
        self.commands = list(state.get("commands", [])) + self.commands

    def _check_state_config(self, saved: Any) -> None:
        """state.pt's own config must equal this run's on every key that resume may not change."""
        if not isinstance(saved, dict):
            raise DataError(f"{self.state_path}: no config in the training state")
        defaults = dataclasses.asdict(TrainConfig())
        for key in FIELD_TYPES:
            if key in RESUME_CHANGEABLE:
                continue
            mine = getattr(self.cfg, key)
            try:
                theirs = coerce(key, saved.get(key, defaults[key]))
            except ConfigError:
                theirs = saved.get(key)
            if theirs != mine:
                show = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
                raise DataError(f"{self.state_path}: saved with {key} {show(theirs)!r}, but the run's config "
                                f"has {show(mine)!r} (config.json and state.pt disagree)")

    def save(self) -> None:
        """Write state.pt and latest.safetensors atomically (rank 0 only)."""
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        state = self._state()
        atomic_write(self.state_path, lambda tmp: torch.save(state, tmp))
        self.saved_iteration = self.iteration
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

    def interrupted_message(self) -> str:
        """What a Ctrl-C at this point leaves behind, and how to go on."""
        if self.saved_iteration is None:
            return (f"interrupted at iteration {self.iteration}, before the first save: nothing to resume; "
                    "start again with --overwrite")
        return (f"interrupted at iteration {self.iteration}: resume with --resume "
                f"(the state of iteration {self.saved_iteration} is kept)")

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

    def _prepare_out(self) -> None:
        """Right before the first write: clear an overwritten run, trim a resumed log, save the config."""
        self.out.mkdir(parents=True, exist_ok=True)
        if self.overwrite:
            # Only now, after every check passed: a refused or failed start loses nothing.
            removed = remove_run_files(self.out)
            if removed:
                print(f"--overwrite: removed the previous run's {', '.join(removed)} in {self.out}", file=sys.stderr)
        if self.resumed:
            trim_log(self.out / "log.csv", self.iteration)
        atomic_write(self.out / "config.json",
                     lambda tmp: Path(tmp).write_text(json.dumps(dataclasses.asdict(self.cfg), indent=2)))

    def train(self) -> dict[str, Any] | None:
        """Run until ``cfg.iterations``; returns the last validation result."""
        cfg = self.cfg
        if self.rank == 0:
            self._prepare_out()
            if self.not_initialised:
                print(f"init_from {cfg.init_from}: not loaded (fresh init): {', '.join(self.not_initialised)}",
                      file=sys.stderr)
        self.net.train()
        stream = Prefetcher(self.sampler, self.iteration, cfg.iterations, cfg.batch_size, self.rank)
        # A live bar on a terminal, a summary line now and then in a log (CI): not a redraw per step.
        bar = progress_bar(total=cfg.iterations, initial=self.iteration, desc=f"train {cfg.variant}_x{cfg.scale}",
                           unit="it", enabled=self.progress and self.rank == 0)
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
        first = next(iter(val["sets"].items())) if val is not None else None
        row = [
            self.iteration, f"{loss:.6f}", f"{self.optimizer.param_groups[0]['lr']:.6g}", f"{self.wall_time:.1f}",
            first[0] if first else "", f"{first[1]['psnr']:.4f}" if first else "",
            f"{first[1]['ssim']:.5f}" if first else "",
        ]
        text = io.StringIO()
        csv.writer(text).writerows([*([] if path.exists() else [LOG_HEADER]), row])
        # Appended in one write (a rewrite per row would be quadratic over a long run); a row cut
        # short by a kill is dropped by trim_log on resume.
        with open(path, "a", newline="") as f:
            f.write(text.getvalue())
