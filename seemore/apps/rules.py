"""The rules both demo apps follow, written once: tile plan, pixel packing, blend, 8-bit output, memory.

The Android app's plain-Kotlin source set (``android_demo/app/src/logic/kotlin``) and the iOS
app's plain Swift files (``ios_demo/SeemoreDemo/Logic``) implement these functions line for
line, with the same names in camelCase. This module is their reference: the tests run the Kotlin
code on the JVM against golden files written from here (:mod:`seemore.apps.golden`) and evaluate
the Swift tile math on example sizes against it.

What an app does with a photo of h x w pixels and a fixed-shape artifact (tile th x tw, scale s):

1. :func:`check_fits`: refuse the photo when the streamed working set does not fit the memory
   budget; nothing of the photo is ever held as floats except one tile and one band of rows.
2. :func:`tile_plan`: the padded size (an image smaller than a tile is mirrored up to it), the
   exactly tile-sized windows of :func:`seemore.tiling.plan_tiles` (``exact=True``) and the
   cross-fade half-width.
3. :func:`pack_tile` per window: RGB order, alpha ignored (never un-premultiplied: Android's
   ``getPixels`` and the iOS ``CGContext`` the app draws into give straight 8-bit RGB),
   ``value / 255`` in float32, NCHW or NHWC per the contract, padded pixels by :func:`mirror_index`.
4. :class:`RowStitcher`: each tile's output is added with the weights of :func:`axis_weights`
   into a float band of output rows; rows that no later window touches are turned into bytes
   (:func:`to_byte`) and handed out, top to bottom. This is :func:`seemore.tiling.run_fixed_tiles`
   (the rule the parity harness checks the artifacts with), streamed, and bit-equal to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seemore.contract.spec import LAYOUTS
from seemore.tiling import Span, Window, _axis_weights, _fade_half, _ramp, _reach, fixed_tile_overlap, plan_tiles

# Bytes per pixel of the 8-bit RGBA images the apps hold (Android ARGB_8888, iOS RGBA8 CGImage).
RGBA_BYTES = 4
FLOAT_BYTES = 4


class AppRuleError(ValueError):
    """A contract or image the app rules cannot handle; the message is one line."""


@dataclass(frozen=True)
class AppTiling:
    """What an app takes from an artifact's contract to tile a photo."""

    tile_h: int
    tile_w: int
    overlap: int
    scale: int
    layout: str

    @classmethod
    def from_contract(cls, contract: dict[str, Any]) -> "AppTiling":
        """The tiling of a contract as read from JSON (the keys in :data:`CONTRACT_KEYS`)."""
        try:
            tile_h, tile_w = (int(v) for v in contract["tiling"]["tile"])
            tiling = cls(tile_h, tile_w, int(contract["tiling"]["overlap"]), int(contract["spec"]["scale"]),
                         str(contract["spec"]["layout"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AppRuleError(f"contract has no usable tiling ({exc})") from None
        tiling.check()
        return tiling

    def check(self) -> None:
        """Raise :class:`AppRuleError` when the values cannot come from an exporter."""
        if min(self.tile_h, self.tile_w, self.scale) < 1 or self.overlap < 0:
            raise AppRuleError(f"bad tiling {self}")
        if self.overlap != fixed_tile_overlap(self.tile_h, self.tile_w):
            raise AppRuleError(f"overlap {self.overlap} is not the fixed-tile overlap of {self.tile_h}x{self.tile_w}")
        if self.layout not in LAYOUTS:
            raise AppRuleError(f"unknown layout {self.layout!r}")


# The contract keys the apps read (dotted paths; ``inputs.0`` is the first list item). The
# agreement test checks that the Kotlin and Swift readers ask for exactly these and that every
# exporter's contract has them.
CONTRACT_KEYS: tuple[str, ...] = (
    "format", "version", "kind", "artifact.path", "artifact.sha256",
    "spec.backend", "spec.runtime", "spec.precision", "spec.height", "spec.width", "spec.scale",
    "spec.layout", "spec.io", "spec.io_dtype",
    "inputs.0.name", "inputs.0.shape", "outputs.0.name", "outputs.0.shape",
    "tiling.tile", "tiling.overlap", "source.model",
)


def contract_value(contract: Any, key: str) -> Any:
    """The value at a dotted key of a contract read from JSON (``inputs.0.name``); KeyError when absent."""
    value = contract
    for part in key.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(key)
    return value


def missing_contract_keys(contract: dict[str, Any]) -> list[str]:
    """The :data:`CONTRACT_KEYS` a contract (as read from JSON) lacks; empty when the apps can read it."""
    missing = []
    for key in CONTRACT_KEYS:
        try:
            contract_value(contract, key)
        except KeyError:
            missing.append(key)
    return missing


@dataclass(frozen=True)
class TilePlan:
    """Where the windows of one photo are: padded size, windows (row-major) and fade half-width."""

    height: int
    width: int
    padded_h: int
    padded_w: int
    windows: list[Window]
    fade_half: int | None  # None: one window, or cores copied (overlap 0)


def fade_half(overlap: int, windows: list[Window]) -> int | None:
    """Half-width (LR px) of the cross-fade, as :func:`seemore.tiling.run_fixed_tiles` uses it.

    None when there is one window (its output is cropped, not blended) or the overlap is 0
    (cores copied). Otherwise half the overlap, kept inside the smallest core (the tiler's own
    rule, :func:`seemore.tiling._fade_half`).
    """
    return None if len(windows) == 1 else _fade_half(overlap, windows)


def tile_plan(height: int, width: int, tiling: AppTiling) -> TilePlan:
    """The windows of an image of ``height`` x ``width`` LR pixels for a fixed-shape artifact."""
    if height < 1 or width < 1:
        raise AppRuleError(f"empty image {height}x{width}")
    padded_h, padded_w = max(height, tiling.tile_h), max(width, tiling.tile_w)
    windows = plan_tiles(padded_h, padded_w, (tiling.tile_h, tiling.tile_w), tiling.overlap, 1, exact=True)
    return TilePlan(height, width, padded_h, padded_w, windows, fade_half(tiling.overlap, windows))


def mirror_index(i: int, size: int) -> int:
    """Source pixel of padded position ``i`` along an axis of ``size`` pixels.

    :func:`seemore.tiling.mirror_pad` appends the mirrored image until it is large enough, which
    repeats with period ``2 * size``: ``x, reversed x, x, ...`` (the edge pixel appears twice).
    """
    j = i % (2 * size)
    return j if j < size else 2 * size - 1 - j


def pack_index(channel: int, y: int, x: int, tile_h: int, tile_w: int, layout: str) -> int:
    """Offset of (channel, y, x) in a tile's flat float buffer (batch 1)."""
    if layout == "NHWC":
        return (y * tile_w + x) * 3 + channel
    return (channel * tile_h + y) * tile_w + x


def pack_tile(rgba: np.ndarray, window: Window, tiling: AppTiling) -> np.ndarray:
    """The artifact's input for one window: a flat float32 buffer, ``value / 255``, RGB, alpha ignored.

    ``rgba`` is the photo as (h, w, 4) uint8; padded positions read :func:`mirror_index`.
    """
    h, w = rgba.shape[:2]
    rows = np.array([mirror_index(y, h) for y in range(window.rows.start, window.rows.stop)])
    cols = np.array([mirror_index(x, w) for x in range(window.cols.start, window.cols.stop)])
    pixels = rgba[rows[:, None], cols[None, :], :3].astype(np.float32) / np.float32(255)
    if tiling.layout == "NHWC":
        return np.ascontiguousarray(pixels).reshape(-1)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)).reshape(-1)


def reach(span: Span, size: int, half: int | None) -> tuple[int, int]:
    """LR range [lo, hi) a window writes along one axis: its core, widened by the fade inside
    (the tiler's own rule, :func:`seemore.tiling._reach`)."""
    return _reach(span, size, half)


def ramp(position: int, centre: int, half: int, scale: int) -> np.float32:
    """Weight rising from 0 to 1 across [centre - half, centre + half) LR px, at HR pixel ``position``'s centre.

    The tiler's float32 ramp (:func:`seemore.tiling._ramp`) at one position: the apps compute
    ``(position + 0.5 - (centre - half) * scale) / (2 * half * scale)`` in float32, in this
    order, clamped to [0, 1] (a step at ``centre * scale`` when ``half`` is 0).
    """
    return np.float32(_ramp(torch.tensor([position], dtype=torch.float32), centre, half, scale)[0].item())


def axis_weights(span: Span, size: int, half: int | None, scale: int) -> tuple[int, int, np.ndarray]:
    """HR range [lo, hi) a window adds to along one axis, and its float32 weights there: the
    product of the rising and falling ramps at the interior core edges
    (:func:`seemore.tiling._axis_weights`); all ones when cores are copied (``half`` None)."""
    if half is None:
        lo, hi = reach(span, size, half)
        return lo * scale, hi * scale, np.ones((hi - lo) * scale, dtype=np.float32)
    lo, hi, weights = _axis_weights(span, size, half, scale, torch.device("cpu"))
    return lo, hi, weights.numpy()


def to_byte(value: np.ndarray) -> np.ndarray:
    """8-bit output of float values: clamp to [0, 1], x 255 in float32, round half to even."""
    scaled = np.clip(value.astype(np.float32), np.float32(0.0), np.float32(1.0)) * np.float32(255)
    return np.rint(scaled).astype(np.uint8)


def band_rows(plan: TilePlan, scale: int) -> int:
    """Tallest float band (HR rows) the stitcher holds: the largest HR row range one row span writes."""
    tallest = 0
    for window in plan.windows:
        lo, hi = reach(window.rows, plan.padded_h, plan.fade_half)
        tallest = max(tallest, (hi - lo) * scale)
    return tallest


def memory_bytes(height: int, width: int, tiling: AppTiling) -> int:
    """Peak bytes of the streamed working set for an h x w photo.

    The 8-bit RGBA input and output images, one float band of output rows (3 channels, padded
    output width), one tile's input and output float buffers. The artifact's own memory is not
    included (the app measures it after loading).
    """
    plan = tile_plan(height, width, tiling)
    s = tiling.scale
    images = RGBA_BYTES * (height * width + height * s * width * s)
    band = FLOAT_BYTES * 3 * band_rows(plan, s) * plan.padded_w * s
    tile = FLOAT_BYTES * 3 * tiling.tile_h * tiling.tile_w * (1 + s * s)
    return images + band + tile


def check_fits(height: int, width: int, tiling: AppTiling, budget_bytes: int) -> None:
    """Raise :class:`AppRuleError` (the message the apps show) when the photo needs more than the budget."""
    need = memory_bytes(height, width, tiling)
    if need > budget_bytes:
        s = tiling.scale
        raise AppRuleError(
            f"{width}x{height} -> {width * s}x{height * s} needs {_mib(need)} MiB, more than the "
            f"{_mib(budget_bytes)} MiB this device allows; pick a smaller photo")


def _mib(n: int) -> int:
    return -(-n // (1 << 20))


class RowStitcher:
    """Adds tile outputs into a float band and hands out finished 8-bit RGB rows, top to bottom.

    Windows must come in plan order (row-major). After the last window of a row span the rows
    above the next span's reach are final: they are converted with :func:`to_byte`, cropped to
    the image's own width and height, and returned by :meth:`add`; the rest of the band moves up.
    """

    def __init__(self, plan: TilePlan, tiling: AppTiling) -> None:
        self.plan, self.tiling = plan, tiling
        s = tiling.scale
        self.out_w = plan.width * s
        self.rows_total = plan.height * s
        self.band = np.zeros((band_rows(plan, s), plan.padded_w * s, 3), dtype=np.float32)
        self.band_top = 0  # HR row of band[0]
        self.emitted = 0  # HR rows handed out so far
        self.next_index = 0
        self.finished_floats = np.zeros((0, self.out_w, 3), dtype=np.float32)

    def add(self, output: np.ndarray) -> np.ndarray:
        """Place the next window's flat float32 output; returns the rows finished by it, (n, out_w, 3) uint8."""
        plan, tiling, s = self.plan, self.tiling, self.tiling.scale
        window = plan.windows[self.next_index]
        self.next_index += 1
        th, tw = tiling.tile_h * s, tiling.tile_w * s
        tile = output.reshape((th, tw, 3) if tiling.layout == "NHWC" else (3, th, tw))
        if tiling.layout != "NHWC":
            tile = tile.transpose(1, 2, 0)
        if len(plan.windows) == 1:
            self.band[:th, :tw] = tile[: self.band.shape[0]]
        else:
            y0, y1, wy = axis_weights(window.rows, plan.padded_h, plan.fade_half, s)
            x0, x1, wx = axis_weights(window.cols, plan.padded_w, plan.fade_half, s)
            part = tile[y0 - window.rows.start * s : y1 - window.rows.start * s,
                        x0 - window.cols.start * s : x1 - window.cols.start * s]
            weight = (wy[:, None] * wx[None, :])[:, :, None]
            region = self.band[y0 - self.band_top : y1 - self.band_top, x0:x1]
            if plan.fade_half is None:
                region[...] = part  # overlap 0: cores copied
            else:
                region += part * weight
        last_of_span = self.next_index == len(plan.windows) or plan.windows[self.next_index].rows != window.rows
        if not last_of_span:
            self.finished_floats = np.zeros((0, self.out_w, 3), dtype=np.float32)
            return np.zeros((0, self.out_w, 3), dtype=np.uint8)
        if self.next_index == len(plan.windows):
            final = self.rows_total
        else:
            final = min(self.rows_total, reach(plan.windows[self.next_index].rows, plan.padded_h, plan.fade_half)[0] * s)
        # The float values of the finished rows, before rounding (the golden files record them).
        self.finished_floats = self.band[self.emitted - self.band_top : final - self.band_top, : self.out_w].copy()
        done = to_byte(self.finished_floats)
        self.emitted = max(self.emitted, final)
        shift = self.emitted - self.band_top
        if shift > 0 and self.next_index < len(plan.windows):
            self.band[:-shift] = self.band[shift:].copy()
            self.band[-shift:] = 0
            self.band_top = self.emitted
        return done


def stitch_floats(plan: TilePlan, tiling: AppTiling,
                  outputs: Iterator[np.ndarray] | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All rows of a photo from its windows' outputs: (h * s, w * s, 3) uint8, and the float32 values they round."""
    stitcher = RowStitcher(plan, tiling)
    rows, values = [], []
    for out in outputs:
        rows.append(stitcher.add(out))
        values.append(stitcher.finished_floats)
    image = np.concatenate(rows, axis=0)
    if image.shape[0] != plan.height * tiling.scale:
        raise AppRuleError(f"stitched {image.shape[0]} of {plan.height * tiling.scale} rows")
    return image, np.concatenate(values, axis=0)


def stitch(plan: TilePlan, tiling: AppTiling, outputs: Iterator[np.ndarray] | list[np.ndarray]) -> np.ndarray:
    """All rows of a photo from its windows' outputs, as (h * s, w * s, 3) uint8."""
    return stitch_floats(plan, tiling, outputs)[0]
