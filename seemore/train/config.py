"""Training configuration: :class:`TrainConfig`, its strict parsing and validation, resume rules.

TOML files, flags and a resumed run's config.json all go through :func:`resolve_config`, which
checks every field before any work and names the key and its allowed values in one line.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from seemore import cli
from seemore.checkpoint import CheckpointError, load_model
from seemore.config import SUPPORTED_SCALES, list_variants
from seemore.paths import DataError

class ConfigError(cli.UsageError):
    """A config value, run folder or resource request that cannot be used (exit status 2)."""


# Limits of the two settings that scale a step's memory; the memory estimate is the real bound,
# these only catch typos (a 4096 patch asks for terabytes) before any arithmetic on them.
MIN_PATCH_SIZE = 16  # two stride-4 aggregations of SeemoRe-T/B need 16 LR pixels
MAX_PATCH_SIZE = 512
MAX_BATCH_SIZE = 1024
MAX_SEED = 2**63 - 1  # torch.manual_seed's range

SCHEDULERS = ("multistep", "cosine", "wsd")
AMP_CHOICES = ("auto", "off", "fp16", "bf16")

# What --resume may change: how fast and where the run goes, how often it reports, and how long
# it lasts. ``iterations`` extends a run (the cosine schedule stretches with it); ``decay_iters``
# branches a WSD run into its decay (configs/seemore_t_x4_291.toml). ``val_data`` changes what
# later validations measure (best.safetensors keeps the earlier best score as its bar). ``out`` is
# always the folder being resumed (a run may be copied). Everything else is the run's identity.
RESUME_CHANGEABLE = (
    "iterations", "decay_iters", "threads", "val_every", "save_every", "log_every", "data_root", "val_data",
    "device", "channels_last", "compile", "out",
)




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
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    amp: str = "auto"  # auto (fp16 on CUDA, off elsewhere) | off | fp16 | bf16
    channels_last: bool = True
    compile: bool = False
    init_from: str | None = None
    out: str = "runs/seemore_t_x4"

    def validate(self) -> None:
        """Check every field (type, range, device availability); :class:`ConfigError` naming the key.

        Does not touch files: :func:`check_init_from` and :func:`check_out_dir` do.
        """
        for f in dataclasses.fields(self):
            coerce(f.name, getattr(self, f.name))  # types, also for a TrainConfig built by hand
        for name, (low, high) in _INT_BOUNDS.items():
            value = getattr(self, name)
            if value < low or (high is not None and value > high):
                raise _bad(name, value)
        for name, bounds in _FLOAT_BOUNDS.items():
            if not _in_interval(getattr(self, name), *bounds):
                raise _bad(name, getattr(self, name))
        for name, choices in _choices().items():
            if getattr(self, name) not in choices:
                raise _bad(name, getattr(self, name))
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise _bad("betas", self.betas)
        if any(m < 1 for m in self.milestones) or any(a >= b for a, b in zip(self.milestones, self.milestones[1:])):
            raise _bad("milestones", self.milestones)
        if self.min_lr > self.lr:
            raise ConfigError(f"min_lr: must be in [0, lr] = [0, {self.lr:g}], got {self.min_lr:g}")
        if self.decay_iters > self.iterations:
            raise ConfigError(f"decay_iters: must be in [0, iterations] = [0, {self.iterations}], "
                              f"got {self.decay_iters}")
        if self.warmup >= self.iterations:
            raise ConfigError(f"warmup: must be in [0, iterations) = [0, {self.iterations}), got {self.warmup}")
        for name in ("out", "data_root", "init_from"):  # (the lists' items were checked by coerce)
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise _bad(name, value)
        check_amp(self.amp, resolve_device(self.device))


# --------------------------------------------------------------------------- config checks

# Integer fields and their [low, high] (None: no upper bound); cross-field bounds in validate().
_INT_BOUNDS: dict[str, tuple[int, int | None]] = {
    "patch_size": (MIN_PATCH_SIZE, MAX_PATCH_SIZE),
    "batch_size": (1, MAX_BATCH_SIZE),
    "iterations": (1, None),
    "decay_iters": (0, None),
    "warmup": (0, None),
    "val_every": (1, None),
    "save_every": (1, None),
    "log_every": (1, None),
    "seed": (0, MAX_SEED),
    "threads": (0, None),
}
# Number fields: (low, low included, high or None, high included).
_FLOAT_BOUNDS: dict[str, tuple[float, bool, float | None, bool]] = {
    "lr": (0.0, False, None, False),
    "weight_decay": (0.0, True, None, False),
    "gamma": (0.0, False, 1.0, True),
    "min_lr": (0.0, True, None, False),
    "fft_weight": (0.0, True, None, False),
    "ema_decay": (0.0, True, 1.0, False),
    "grad_clip": (0.0, True, None, False),
}
_WORDS: dict[str, str] = {
    "train_data": "a non-empty list of training folders (comma separated)",
    "val_data": "a non-empty list of validation sets (comma separated, e.g. Set5,Set14)",
    "data_root": "a folder path",
    "betas": "two numbers in [0, 1), e.g. 0.9,0.99",
    "milestones": "increasing positive integers (comma separated; empty for none)",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "channels_last": "true or false",
    "compile": "true or false",
    "init_from": "a checkpoint file or shipped name",
    "out": "a folder path",
}


def _choices() -> dict[str, tuple[Any, ...]]:
    """Fields with a fixed set of values."""
    return {"variant": tuple(list_variants()), "scale": SUPPORTED_SCALES, "scheduler": SCHEDULERS,
            "amp": AMP_CHOICES}


def _in_interval(value: float, low: float, low_in: bool, high: float | None, high_in: bool) -> bool:
    above = value >= low if low_in else value > low
    below = high is None or (value <= high if high_in else value < high)
    return above and below


def allowed(name: str) -> str:
    """What field ``name`` may be, in words (the second half of every config error)."""
    if name in _INT_BOUNDS:
        low, high = _INT_BOUNDS[name]
        return f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
    if name in _FLOAT_BOUNDS:
        low, low_in, high, high_in = _FLOAT_BOUNDS[name]
        if high is None:
            return f"a number {'>=' if low_in else '>'} {low:g}"
        return f"a number in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
    if name in _choices():
        return "one of " + ", ".join(map(str, _choices()[name]))
    return _WORDS.get(name, "a value of its type")


def _bad(name: str, value: Any) -> ConfigError:
    """The one-line error for field ``name``: ``patch_size: must be an integer in [16, 512], got 8``."""
    shown = list(value) if isinstance(value, tuple) else value
    return ConfigError(f"{name}: must be {allowed(name)}, got {shown!r}")


def _to_int(value: Any) -> int:
    # bool is an int subclass and 64.5 would truncate: both are mistakes, not integers.
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    raise ValueError


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    number = float(value)  # ValueError for text that is no number
    if not math.isfinite(number):
        raise ValueError
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value


def _items(value: Any) -> list[Any]:
    """A list from a TOML/JSON array or a comma-separated flag value."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")] if value.strip() else []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError


def _to_str_list(value: Any) -> list[str]:
    items = _items(value)
    if not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise ValueError
    return items


def _to_int_list(value: Any) -> list[int]:
    return [_to_int(v) for v in _items(value)]


def _to_float_pair(value: Any) -> tuple[float, float]:
    items = _items(value)
    if len(items) != 2:
        raise ValueError
    return (_to_float(items[0]), _to_float(items[1]))


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int, "float": _to_float, "bool": _to_bool, "str": _to_str,
    "list[str]": _to_str_list, "list[int]": _to_int_list, "tuple[float, float]": _to_float_pair,
}
FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}


def coerce(name: str, value: Any) -> Any:
    """Convert a TOML/JSON/flag value to the type of the :class:`TrainConfig` field ``name``, strictly.

    An int field takes an int or an integral string (not 64.5, not true), a float field a finite
    number, a bool field a bool or true/false, a list/tuple field its length and element types,
    a str field a string; anything else is a :class:`ConfigError` naming the key.
    """
    kind = FIELD_TYPES[name]
    optional = kind.endswith(" | None")
    if value is None:
        if optional:
            return None
        raise _bad(name, value)
    try:
        converted = _CONVERTERS[kind.removesuffix(" | None")](value)
    except (TypeError, ValueError):
        raise _bad(name, value) from None
    if name == "variant":  # the registry's spelling (SeemoRe-T -> seemore_t), so resumed runs compare equal
        converted = converted.strip().lower().replace("-", "_")
    return converted


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available (this rank's GPU under torchrun), else CPU.

    :class:`ConfigError` for a name that is not auto, cpu, cuda, cuda:N or mps, or a device
    this machine does not have.
    """
    local_rank = os.environ.get("LOCAL_RANK")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and local_rank is not None:
        name = f"cuda:{local_rank}"
    here = "auto, cpu" + (", cuda" if torch.cuda.is_available() else "") + (", mps" if _mps_available() else "")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise ConfigError(f"device: mps requested but not available (available here: {here})")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise _bad("device", name)
    if not torch.cuda.is_available():
        raise ConfigError(f"device: {name} requested but no CUDA device is available (available here: {here})")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device: {name} requested but this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s): cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return torch.device(name)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def check_amp(amp: str, device: torch.device) -> None:
    """:class:`ConfigError` when the mixed precision ``amp`` cannot run on ``device``."""
    if amp == "fp16" and device.type != "cuda":
        # The loss scaler is CUDA's; fp16 training on other devices is not supported here.
        raise ConfigError(f"amp: fp16 needs a CUDA device (device is {device}); use bf16 or off")
    if amp == "bf16":
        if device.type == "mps":
            raise ConfigError(f"amp: bf16 is not supported on {device}; use off")
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"amp: bf16 is not supported by {torch.cuda.get_device_name(device)}; use fp16 or off")


def check_init_from(path: str | None) -> None:
    """:class:`ConfigError` unless ``path`` (when set) loads as a SeemoRe checkpoint."""
    if path is None:
        return
    try:
        load_model(path)
    except (CheckpointError, OSError, ValueError) as exc:
        raise ConfigError(f"init_from: must be {allowed('init_from')}: {cli.one_line(exc)}") from None


def _check_known(values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - set(FIELD_TYPES))
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)} (known: see --help)")


def load_toml(config_file: str) -> dict[str, Any]:
    """The values of a TOML config file; :class:`ConfigError` when it cannot be read or parsed."""
    try:
        with open(config_file, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{config_file}: cannot read config ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_file}: invalid TOML ({cli.one_line(exc)})") from None


def resolve_config(config_file: str | None, overrides: dict[str, Any], resuming: bool = False) -> TrainConfig:
    """Defaults, then the TOML file, then command-line overrides; every value checked.

    The one validation path of fresh runs, TOML files, flags and resumed configs.
    ``resuming`` skips the ``init_from`` file check (a resumed run does not read it again).
    """
    values: dict[str, Any] = load_toml(config_file) if config_file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    _check_known(values)
    cfg = TrainConfig(**{k: coerce(k, v) for k, v in values.items()})
    cfg.validate()
    if not resuming:
        check_init_from(cfg.init_from)
    return cfg


def merge_resumed(saved: dict[str, Any], given: dict[str, Any], where: str = "config.json") -> dict[str, Any]:
    """The resumed run's values: ``saved`` (its config.json) with the ``given`` changes allowed on resume.

    A given value of another key that differs from the run's is a :class:`ConfigError` naming
    the key, the run's value and the given one.
    """
    _check_known(given)
    try:
        _check_known(saved)
    except ConfigError as exc:  # the run's file, not the user's flags: a data error, naming the file
        raise DataError(f"{where}: {exc}") from None
    defaults = dataclasses.asdict(TrainConfig())
    merged = {**defaults, **saved}
    for key, value in given.items():
        new = coerce(key, value)
        if key in RESUME_CHANGEABLE:
            merged[key] = new
            continue
        old = coerce(key, merged[key])
        if new != old:
            shown = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
            raise ConfigError(
                f"--resume: {key} is {shown(old)!r} in the run's {where}, given {shown(new)!r}; "
                f"on resume only {', '.join(k for k in RESUME_CHANGEABLE if k != 'out')} may change"
            )
    return merged
