"""Frozen SeemoRe configurations and the variant registry.

Every variant the paper defines is one :class:`SeemoReConfig`; the registry maps
``seemore_t`` / ``seemore_b`` / ``seemore_l`` to the architecture and the scale
is chosen at build time, so one table describes the whole family.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

SUPPORTED_SCALES: tuple[int, ...] = (2, 3, 4)


@dataclass(frozen=True)
class SeemoReConfig:
    """Everything needed to rebuild a SeemoRe network (paper names in comments)."""

    variant: str
    scale: int = 4
    in_chans: int = 3
    num_experts: int = 3
    num_layers: int = 6  # residual groups (RME + SME)
    embedding_dim: int = 36  # C
    img_range: float = 1.0
    use_shuffle: bool = True
    global_kernel_size: int = 11  # K of the striped conv former
    recursive: int = 2  # repeats of the stride-4 aggregation conv
    lr_space: str = "exp"  # expert ranks 2^(i+1): 2, 4, 8 (the only rule the paper's variants use)
    topk: int = 1
    mlp_ratio: int = 2
    rgb_mean: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)

    def __post_init__(self) -> None:
        if self.scale not in SUPPORTED_SCALES:
            raise ValueError(f"scale must be one of {SUPPORTED_SCALES}, got {self.scale}")
        if not 1 <= self.topk <= self.num_experts:
            raise ValueError(f"topk must be in [1, {self.num_experts}], got {self.topk}")
        if self.lr_space != "exp":
            raise ValueError(f"only lr_space='exp' is supported, got {self.lr_space!r}")

    @property
    def name(self) -> str:
        """Registry name with the scale, e.g. ``seemore_t_x4``."""
        return f"{self.variant}_x{self.scale}"

    @property
    def expert_ranks(self) -> tuple[int, ...]:
        """Low-rank dimension of each expert (``lr_space="exp"``: 2, 4, 8, ...)."""
        return tuple(2 ** (i + 1) for i in range(self.num_experts))

    @property
    def min_input_size(self) -> int:
        """Smallest LR side the network accepts (each stride-4 aggregation needs >= 4 pixels)."""
        return 4**self.recursive

    def to_json(self) -> str:
        """Serialise to a JSON string (stored in checkpoint metadata)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SeemoReConfig":
        """Rebuild from :meth:`to_json` output, rejecting unknown fields."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config fields: {', '.join(unknown)}")
        values = dict(data)
        if "rgb_mean" in values:
            values["rgb_mean"] = tuple(values["rgb_mean"])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "SeemoReConfig":
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


# The three variants of the paper (docs/MODEL.md).
_VARIANTS: dict[str, SeemoReConfig] = {
    "seemore_t": SeemoReConfig("seemore_t", num_layers=6, embedding_dim=36, use_shuffle=True, recursive=2),
    "seemore_b": SeemoReConfig("seemore_b", num_layers=8, embedding_dim=48, use_shuffle=True, recursive=2),
    "seemore_l": SeemoReConfig("seemore_l", num_layers=16, embedding_dim=48, use_shuffle=False, recursive=1),
}


def list_variants() -> list[str]:
    """Names of the registered architectures (without scale)."""
    return sorted(_VARIANTS)


def get_config(variant: str, scale: int = 4, **overrides: Any) -> SeemoReConfig:
    """Config of a registered variant at ``scale``; ``overrides`` replace single fields."""
    key = variant.lower().replace("-", "_")
    if key not in _VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(list_variants())}")
    return dataclasses.replace(_VARIANTS[key], scale=scale, **overrides)
