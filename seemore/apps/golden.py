"""Golden files for the apps' plain-Kotlin logic: tile plans, packed tiles and stitched pixels from :mod:`rules`.

:func:`write_goldens` writes ``cases.json`` and raw buffers into a folder; the JVM checker
(``android_demo/app/src/logicCheck/kotlin``) reads them, recomputes everything with the app's own
code and fails on the first difference. Tile outputs are recorded, not recomputed: the checker
plays them back as the "model", so the test is about the app's rules, not a network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seemore.apps.rules import AppTiling, memory_bytes, pack_tile, stitch_floats, tile_plan
from seemore.common.files import atomic_write_bytes, atomic_write_text
from seemore.tiling import fixed_tile_overlap

GOLDEN_FORMAT = "seemore-mobile/app-golden/1"


@dataclass(frozen=True)
class GoldenCase:
    """One photo size against one artifact tiling."""

    name: str
    height: int
    width: int
    tile_h: int
    tile_w: int
    scale: int
    layout: str

    @property
    def tiling(self) -> AppTiling:
        """The tiling an exporter would write for this tile."""
        return AppTiling(self.tile_h, self.tile_w, fixed_tile_overlap(self.tile_h, self.tile_w), self.scale, self.layout)


# Small sizes that still cover every branch: several windows both ways with a short last one,
# an exact fit, images smaller than the tile (mirror padding, 1x1 included), one row of tiles,
# tiles too small for an overlap (cores copied), both layouts, scales 2-4.
CASES: tuple[GoldenCase, ...] = (
    GoldenCase("grid_nchw_x4", 37, 53, 16, 24, 4, "NCHW"),
    GoldenCase("grid_nhwc_x3", 45, 29, 20, 16, 3, "NHWC"),
    GoldenCase("exact_fit_x4", 32, 48, 32, 48, 4, "NCHW"),
    GoldenCase("small_pad_x2", 10, 7, 16, 16, 2, "NHWC"),
    GoldenCase("one_pixel_x3", 1, 1, 8, 8, 3, "NCHW"),
    GoldenCase("one_column_x4", 40, 12, 16, 16, 4, "NHWC"),
    GoldenCase("no_overlap_x2", 7, 5, 3, 3, 2, "NCHW"),
    GoldenCase("wide_x4", 18, 70, 18, 32, 4, "NCHW"),
)


def fake_model(packed: np.ndarray, index: int, tiling: AppTiling) -> np.ndarray:
    """A stand-in network: nearest upscaling, a gain past [0, 1] (tests the clamp) and a per-window offset
    (so that neighbouring windows disagree and the blend weights matter)."""
    th, tw, s = tiling.tile_h, tiling.tile_w, tiling.scale
    if tiling.layout == "NHWC":
        image = packed.reshape(th, tw, 3)
        up = image.repeat(s, axis=0).repeat(s, axis=1)
    else:
        image = packed.reshape(3, th, tw)
        up = image.repeat(s, axis=1).repeat(s, axis=2)
    ramp = np.arange(up.size, dtype=np.float32).reshape(up.shape) % np.float32(7) * np.float32(0.001)
    return (up * np.float32(1.1) - np.float32(0.05) + np.float32(0.013 * (index + 1)) + ramp).astype(np.float32)


def sample_photo(height: int, width: int, seed: int) -> np.ndarray:
    """A deterministic RGBA test photo; alpha varies so that ignoring it is tested too."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 4), dtype=np.uint8)


def write_case(folder: Path, case: GoldenCase, seed: int) -> dict[str, Any]:
    """Write one case's buffers; returns its ``cases.json`` entry."""
    tiling = case.tiling
    photo = sample_photo(case.height, case.width, seed)
    plan = tile_plan(case.height, case.width, tiling)
    inputs = [pack_tile(photo, window, tiling) for window in plan.windows]
    outputs = [fake_model(packed, i, tiling) for i, packed in enumerate(inputs)]
    image, values = stitch_floats(plan, tiling, outputs)
    files = {
        "photo_rgba": photo.tobytes(),
        "tile_inputs_f32": np.concatenate(inputs).astype("<f4").tobytes(),
        "tile_outputs_f32": np.concatenate(outputs).astype("<f4").tobytes(),
        "output_rgb": image.tobytes(),
        "output_f32": values.astype("<f4").tobytes(),
    }
    names = {}
    for key, payload in files.items():
        name = f"{case.name}.{key}.bin"
        atomic_write_bytes(folder / name, payload)
        names[key] = name
    return {
        "name": case.name, "height": case.height, "width": case.width,
        "tiling": {"tile": [case.tile_h, case.tile_w], "overlap": tiling.overlap, "scale": case.scale,
                   "layout": case.layout},
        "padded": [plan.padded_h, plan.padded_w],
        "windows": [[w.rows.start, w.rows.stop, w.rows.core_start, w.rows.core_stop,
                     w.cols.start, w.cols.stop, w.cols.core_start, w.cols.core_stop] for w in plan.windows],
        "fade_half": -1 if plan.fade_half is None else plan.fade_half,
        "memory_bytes": memory_bytes(case.height, case.width, tiling),
        "files": names,
    }


def write_goldens(folder: str | Path, cases: tuple[GoldenCase, ...] = CASES) -> Path:
    """Write every case and ``cases.json`` (last, so a complete index means complete files); returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = [write_case(folder, case, seed) for seed, case in enumerate(cases)]
    index = folder / "cases.json"
    atomic_write_text(index, json.dumps({"format": GOLDEN_FORMAT, "cases": entries}, indent=1) + "\n")
    return index
