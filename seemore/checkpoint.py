"""Reading and writing SeemoRe weights.

Two formats are understood:

* our own safetensors files, whose metadata header carries the :class:`SeemoReConfig`
  (key ``seemore_config``) and optionally a training record, so a file is self-describing;
* official BasicSR ``.pth`` files (``{"params": sd}``, ``{"params_ema": sd}`` or a bare
  state_dict). These carry no config, so the variant and scale are found by matching the
  tensor shapes against every registered variant.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from seemore.common.files import atomic_write, file_sha256  # noqa: F401  (re-exported)
from seemore.config import SUPPORTED_SCALES, SeemoReConfig, get_config, list_variants
from seemore.model import SeemoRe

CONFIG_KEY = "seemore_config"
RECORD_KEY = "training_record"
FORMAT_KEY = "format"
FORMAT_VALUE = "seemore-mobile/1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message is one line and names the file."""


def create_model(variant: str = "seemore_t", scale: int = 4, **overrides: Any) -> SeemoRe:
    """Build a randomly initialised SeemoRe of a registered ``variant`` at ``scale``."""
    return SeemoRe(get_config(variant, scale, **overrides))


def list_models() -> list[str]:
    """Registered model names: every variant at every scale, e.g. ``seemore_t_x4``."""
    return [f"{v}_x{s}" for v in list_variants() for s in SUPPORTED_SCALES]


def list_shipped() -> dict[str, Path]:
    """Trained checkpoints bundled with the package, by name (``seemore_t_x4`` ...)."""
    if not WEIGHTS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def save_model(
    model: SeemoRe,
    path: str | Path,
    record: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write ``model`` (or an explicit ``state_dict`` such as EMA weights) as safetensors.

    The config and the optional training ``record`` go into the metadata header.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in (state_dict or model.state_dict()).items()}
    metadata = {FORMAT_KEY: FORMAT_VALUE, CONFIG_KEY: model.config.to_json()}
    if record is not None:
        metadata[RECORD_KEY] = json.dumps(dict(record), sort_keys=True)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Decoded metadata of one of our safetensors files (config and record as dicts)."""
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    out: dict[str, Any] = dict(raw)
    for key in (CONFIG_KEY, RECORD_KEY):
        if key in out:
            out[key] = json.loads(out[key])
    return out


def _official_state_dict(obj: Any, path: Path, param_key: str | None) -> dict[str, torch.Tensor]:
    """Pull the state_dict out of a BasicSR checkpoint object."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: not a state_dict or BasicSR checkpoint")
    if param_key is not None:
        if param_key not in obj:
            raise CheckpointError(f"{path}: no '{param_key}' entry (has: {', '.join(map(str, obj))})")
        obj = obj[param_key]
    else:
        # BasicSR stores EMA weights next to the raw ones; EMA is what the authors evaluate.
        for key in ("params_ema", "params", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    sd = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"{path}: contains no tensors")
    return sd


def _shapes_fit(cfg: SeemoReConfig, sd: Mapping[str, torch.Tensor]) -> bool:
    ref = SeemoRe(cfg).state_dict()
    return ref.keys() == sd.keys() and all(ref[k].shape == sd[k].shape for k in ref)


def infer_config(sd: Mapping[str, torch.Tensor]) -> SeemoReConfig | None:
    """The registered variant/scale whose parameter names and shapes equal ``sd``, if any."""
    for variant in list_variants():
        for scale in SUPPORTED_SCALES:
            cfg = get_config(variant, scale)
            if _shapes_fit(cfg, sd):
                return cfg
    return None


def _load_into(model: SeemoRe, sd: Mapping[str, torch.Tensor], path: Path) -> None:
    """``load_state_dict(strict=True)`` with a one-line explanation when it does not fit."""
    ref = model.state_dict()
    if ref.keys() == sd.keys() and all(ref[k].shape == sd[k].shape for k in ref):
        model.load_state_dict(sd, strict=True)
        return
    fits = infer_config(sd)
    want = model.config.name
    if fits is not None:
        raise CheckpointError(f"{path}: weights are for {fits.name}, not {want}")
    raise CheckpointError(f"{path}: does not fit {want} or any registered variant ({describe_mismatch(ref, sd)})")


def describe_mismatch(reference: Mapping[str, torch.Tensor], loaded: Mapping[str, torch.Tensor]) -> str:
    """How ``loaded`` fails to fit ``reference``: the first few missing, unexpected and wrongly
    shaped names (empty when it fits)."""
    missing = sorted(reference.keys() - loaded.keys())[:3]
    unexpected = sorted(loaded.keys() - reference.keys())[:3]
    wrong = [k for k in reference if k in loaded and reference[k].shape != loaded[k].shape][:3]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if unexpected:
        parts.append("unexpected " + ", ".join(unexpected))
    if wrong:
        parts.append("wrong shape " + ", ".join(
            f"{k} {tuple(loaded[k].shape)} (expected {tuple(reference[k].shape)})" for k in wrong))
    return "; ".join(parts)


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A file path, or the bundled checkpoint of that name (``seemore_t_x4``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = list_shipped()
    key = str(name_or_path).lower().replace("-", "_")
    if key in shipped:
        return shipped[key]
    if path.is_dir():
        raise CheckpointError(f"{name_or_path}: is a folder, not a checkpoint file")
    if path.suffix or os.sep in str(name_or_path):
        raise CheckpointError(f"{name_or_path}: no such file")
    available = ", ".join(shipped) or "none bundled"
    raise CheckpointError(f"{name_or_path}: not a file or a shipped checkpoint (shipped: {available})")


def load_model(
    name_or_path: str | Path,
    variant: str | None = None,
    scale: int | None = None,
    param_key: str | None = None,
    map_location: str | torch.device = "cpu",
) -> SeemoRe:
    """Load a SeemoRe from a shipped name, one of our safetensors files or an official ``.pth``.

    ``variant``/``scale`` are optional for both formats; when given they are checked
    against the file, and a mismatch names the variant and scale the file fits. Returns the
    model in eval mode.
    """
    path = resolve_model_path(name_or_path)
    sd: dict[str, torch.Tensor]
    cfg: SeemoReConfig | None = None
    if path.suffix == ".safetensors":
        try:
            meta = read_metadata(path)
            with safe_open(str(path), framework="pt", device=str(map_location)) as f:
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors raises several unrelated types
            raise CheckpointError(f"{path}: unreadable safetensors file ({exc})") from None
        if CONFIG_KEY in meta:
            cfg = SeemoReConfig.from_dict(meta[CONFIG_KEY])
    else:
        try:
            obj = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__})") from None
        sd = _official_state_dict(obj, path, param_key)
    if cfg is None:
        cfg = infer_config(sd)
        if cfg is None and variant is None:
            raise CheckpointError(f"{path}: does not match any registered variant; pass variant and scale")
    want = get_config(variant or (cfg.variant if cfg else "seemore_t"), scale or (cfg.scale if cfg else 4))
    if cfg is not None and (variant or scale) and (want.variant, want.scale) != (cfg.variant, cfg.scale):
        raise CheckpointError(f"{path}: weights are for {cfg.name}, not {want.name}")
    model = SeemoRe(cfg if cfg is not None else want)
    _load_into(model, sd, path)
    return model.eval()
