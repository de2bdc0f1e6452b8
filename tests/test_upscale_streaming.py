"""Streamed upscaling: row bands equal the whole-tensor result bit for bit, the rolling buffer stays
bounded, the band-by-band writers give the pixels of the whole-image writers, and the CLI checks
its outputs before compute, refuses multi-frame files and leaves nothing behind on Ctrl-C.

Tiny random-weight models (16 channels) and images of a few dozen pixels keep it fast.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from conftest import REPO, exit_code, load_script
from seemore import create_model, get_config, save_model
from seemore import imageio as sio
from seemore import tiling
from seemore import upscale as up
from seemore.tiling import (
    Window,
    _align,
    _model_device,
    _pad_to_minimum,
    _ramp,
    _StopPass,
    _TiledRun,
    plan_axis,
    plan_tiles,
    upscale_rows,
    upscale_tensor,
)

torch.set_num_threads(1)  # small windows: one thread beats waiting for a busy second core
RNG = np.random.default_rng(7)


def tiny(seed: int = 0, scale: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("seemore_t", scale, num_layers=1, embedding_dim=16).eval()


class NearestModel(nn.Module):
    """Stand-in network (nearest-neighbour upscaling) with a SeemoRe config for the size rules."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.config = get_config("seemore_t", scale)
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.config.scale, mode="nearest") + self.anchor


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(tiny(), path)
    return path


# ---------------------------------------------------------------------------------------------
# The whole-tensor implementation before streaming, frozen here as the bit-exact reference.


def _reference_axis_weights(span: tiling.Span, size: int, half: int, scale: int) -> tuple[int, int, Tensor]:
    first, last = span.core_start == 0, span.core_stop == size
    lo = span.core_start - (0 if first else half)
    hi = span.core_stop + (0 if last else half)
    positions = torch.arange(lo * scale, hi * scale, dtype=torch.float32)
    weight = torch.ones_like(positions)
    if not first:
        weight = weight * _ramp(positions, span.core_start, half, scale)
    if not last:
        weight = weight * (1 - _ramp(positions, span.core_stop, half, scale))
    return lo * scale, hi * scale, weight


def _reference_place(out: Tensor, result: Tensor, window: Window, scale: int, band: int,
                     windows: list[Window]) -> None:
    r, c = window.rows, window.cols
    height, width = out.shape[-2] // scale, out.shape[-1] // scale
    if band == 0:
        out[:, :, r.core_start * scale : r.core_stop * scale, c.core_start * scale : c.core_stop * scale] = (
            result[:, :, (r.core_start - r.start) * scale : (r.core_stop - r.start) * scale,
                   (c.core_start - c.start) * scale : (c.core_stop - c.start) * scale]
        )
        return
    cores = [w.rows.core_stop - w.rows.core_start for w in windows] + [
        w.cols.core_stop - w.cols.core_start for w in windows
    ]
    half = max(0, min(band, min(cores)) // 2)
    y0, y1, wy = _reference_axis_weights(r, height, half, scale)
    x0, x1, wx = _reference_axis_weights(c, width, half, scale)
    part = result[:, :, y0 - r.start * scale : y1 - r.start * scale, x0 - c.start * scale : x1 - c.start * scale]
    out[:, :, y0:y1, x0:x1] += part * (wy[:, None] * wx[None, :]).to(out.dtype)


def reference_upscale(model: nn.Module, lr: Tensor, tile: int | None, overlap: int, routing: str) -> Tensor:
    """Preallocated whole output, every window placed into it (the code before streaming)."""
    align, scale = _align(model), int(model.config.scale)
    height, width = lr.shape[-2:]
    image = _pad_to_minimum(lr, align)
    windows = plan_tiles(image.shape[-2], image.shape[-1], tile, overlap, align)
    device = _model_device(model)
    with torch.inference_mode():
        if len(windows) == 1:
            return model(image.to(device))[:, :, : height * scale, : width * scale]
        h, w = image.shape[-2:]
        run = _TiledRun(model, h, w)
        misaligned = h % align != 0 or w % align != 0
        passes = len(run.gates) if routing == "global" else 0

        def crop(window: Window) -> Tensor:
            r, c = window.rows, window.cols
            return image[:, :, r.start : r.stop, c.start : c.stop].to(device)

        for _ in range(passes):
            with run.hooks(align_context=misaligned, pin=True, collect=True):
                for window in windows:
                    run.window = window
                    try:
                        model(crop(window))
                    except _StopPass:
                        pass
            run.finish_router()
        out = torch.zeros((1, 3, h * scale, w * scale), dtype=image.dtype)
        band = 0 if routing == "global" else overlap
        with run.hooks(align_context=misaligned, pin=routing == "global", collect=False):
            for window in windows:
                run.window = window
                _reference_place(out, model(crop(window)), window, scale, band, windows)
        return out[:, :, : height * scale, : width * scale]


def photo_u8(height: int, width: int, channels: int = 3) -> np.ndarray:
    """Gradients plus noise, uint8."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 3) * np.cos(y / 4), 1 - x / width], axis=2)
    noisy = np.clip(base[:, :, :channels] + RNG.normal(0, 0.05, (height, width, channels)), 0, 1)
    return (noisy * 255).round().astype(np.uint8)


def as_tensor(image: np.ndarray) -> Tensor:
    return torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


# ---------------------------------------------------------------------------------------------
# Row bands


@pytest.mark.parametrize("routing", ["tile", "global"])
@pytest.mark.parametrize(
    ("size", "tile", "overlap"),
    [((64, 48), 32, 8), ((75, 53), 32, 8), ((90, 40), 48, 16), ((12, 70), 32, 8), ((40, 36), None, 0)],
    ids=["aligned", "misaligned", "wider-fade", "padded-rows", "one-window"],
)
def test_streamed_rows_equal_the_whole_tensor_path(
    model: nn.Module, routing: str, size: tuple[int, int], tile: int | None, overlap: int
) -> None:
    image = photo_u8(*size)
    lr = as_tensor(image)
    want = reference_upscale(model, lr, tile, overlap, routing)
    stream = upscale_rows(model, lr, tile=tile, overlap=overlap, routing=routing)
    bands = [band.clone() for band in stream]
    if tile is not None and size[0] > 16:
        assert len(bands) == len(plan_axis(size[0], tile, overlap, 16)) >= 3  # several row spans
    assert torch.equal(torch.cat(bands, dim=2), want)
    assert torch.equal(upscale_tensor(model, lr, tile=tile, overlap=overlap, routing=routing), want)
    # A Picture source (uint8 samples, float windows made one at a time) gives the same bits.
    picture = sio.Picture(image)
    assert torch.equal(upscale_tensor(model, picture, tile=tile, overlap=overlap, routing=routing), want)


def test_rolling_buffer_is_bounded_by_the_tile_not_the_image() -> None:
    scale, tile, overlap = 2, 32, 8
    net = NearestModel(scale)
    for height in (64, 200, 400):
        stream = upscale_rows(net, torch.rand(1, 3, height, 40), tile=tile, overlap=overlap, routing="tile")
        rows = [band.shape[2] for band in stream]
        assert sum(rows) == stream.height == height * scale
        # The bound from the plan's rules alone: a window is at most tile (rounded down to the
        # grid) + grid - 1 rows tall, and a span writes only inside its windows.
        bound = (tile // 16 * 16 + 15) * scale
        assert stream.buffer_bound <= bound
        assert 0 < stream.max_buffer_rows <= stream.buffer_bound
        assert max(rows) <= stream.max_buffer_rows
        # Exactly: core + both fade halves, whatever the height.
        spans = plan_axis(height, tile, overlap, 16)
        half = tiling._fade_half(overlap, plan_tiles(height, 40, tile, overlap, 16))
        assert half is not None
        widest = max(s.core_stop - s.core_start + 2 * half for s in spans)
        assert stream.max_buffer_rows <= widest * scale
    # Global routing copies cores: the buffer is one span's core rows.
    stream = upscale_rows(tiny(), torch.rand(1, 3, 100, 32), tile=32, overlap=8, routing="global")
    list(stream)
    cores = [s.core_stop - s.core_start for s in plan_axis(100, 32, 8, 16)]
    assert stream.max_buffer_rows == max(cores) * 2


def test_picture_windows_convert_exactly() -> None:
    for samples, top in ((photo_u8(21, 19), 255.0), (photo_u8(21, 19).astype(np.uint16) * 256 + 3, 65535.0),
                         (photo_u8(21, 19, 1), 255.0)):
        picture = sio.Picture(samples, gray=samples.shape[2] == 1, bits=16 if top > 255 else 8)
        # What reading produced before samples were kept: float32 of the whole image, gray repeated.
        want = np.repeat(samples, 3 // samples.shape[2], axis=2).astype(np.float32) / top
        assert picture.rgb.dtype == np.float32 and np.array_equal(picture.rgb, want)
        whole = sio.to_tensor(picture)
        assert torch.equal(whole[0].permute(1, 2, 0), torch.from_numpy(want))
        assert torch.equal(picture.crop_tensor(3, 17, 5, 11), whole[:, :, 3:17, 5:11])


# ---------------------------------------------------------------------------------------------
# Band-by-band writers


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_alpha_rows_equal_the_whole_resize(scale: int) -> None:
    alpha = np.clip(RNG.normal(0.5, 0.4, (23, 17)), 0, 1).astype(np.float32)
    alpha[:, :5] = 1.0
    height, width = 23 * scale, 17 * scale
    rows = sio.AlphaRows(alpha, height, width)
    assert rows.streamed == (scale != 3)  # x3: resized whole (see AlphaRows)
    whole = sio.resize_alpha(alpha, height, width)
    for cuts in ([0, 1, 7, 8, 30, height], [0, height], list(range(0, height, 5)) + [height]):
        pieces = [rows.rows(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        assert np.array_equal(np.concatenate(pieces), whole)


# kind -> (samples channels, bits, gray, alpha)
KINDS = {
    "RGB": (3, 8, False, False),
    "RGBA": (3, 8, False, True),
    "L": (1, 8, True, False),
    "LA": (1, 8, True, True),
    "RGB;16": (3, 16, False, False),
    "RGBA;16": (3, 16, False, True),
    "L;16": (1, 16, True, False),
    "LA;16": (1, 16, True, True),
}


def _source(kind: str, height: int = 13, width: int = 11) -> sio.Picture:
    channels, bits, gray, has_alpha = KINDS[kind]
    samples = photo_u8(height, width, channels)
    if bits == 16:
        samples = samples.astype(np.uint16) * 256 + 7
    alpha = None
    if has_alpha:
        alpha = np.zeros((height, width), np.float32)
        alpha[:, : width // 2] = 1.0
        alpha[3:6] = 0.37
    return sio.Picture(samples, alpha, gray=gray, bits=bits, icc_profile=b"fake-icc" if kind == "RGB" else None)


def _bands(result: Tensor, cuts: list[int]) -> Iterator[Tensor]:
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        yield result[:, :, a:b]


def _expected(source: sio.Picture, result: Tensor, scale: int, fmt: str = "PNG") -> np.ndarray:
    """The samples the writer before streaming stored: its formulas on the whole image."""
    rgb = sio.from_tensor(result)
    colour = rgb.mean(axis=2, keepdims=True) if source.gray else rgb
    planes = colour
    if source.alpha is not None:
        alpha = sio.resize_alpha(source.alpha, rgb.shape[0], rgb.shape[1])
        if fmt in sio.ALPHA_FORMATS:
            planes = np.concatenate([colour, alpha[:, :, None]], axis=2)
        else:
            planes = colour * alpha[:, :, None] + (1.0 - alpha[:, :, None])
    top = 65535.0 if source.bits == 16 else 255.0
    return np.rint(np.clip(planes, 0.0, 1.0) * top).astype(np.uint16 if source.bits == 16 else np.uint8)


def _decoded(path: Path) -> np.ndarray:
    """Every stored sample of a PNG, at its bit depth (Pillow for 8 bits, our codec for 16)."""
    with Image.open(path) as im:
        if path.read_bytes()[24] == 8:
            values = np.asarray(im)
            return values[:, :, None] if values.ndim == 2 else values
    picture = sio.read_image(path)
    samples = picture.samples
    if picture.alpha is not None:
        samples = np.concatenate([samples, np.rint(picture.alpha * 65535).astype(np.uint16)[:, :, None]], axis=2)
    return samples


@pytest.mark.parametrize("kind", list(KINDS))
def test_streamed_png_has_the_pixels_of_the_whole_image_writer(kind: str, tmp_path: Path) -> None:
    source, scale = _source(kind), 2
    # Out-of-range values too: the writer clips, as it always did.
    result = torch.from_numpy(RNG.uniform(-0.1, 1.1, (1, 3, 26, 22)).astype(np.float32))
    streamed, whole = tmp_path / "streamed.png", tmp_path / "whole.png"
    sio.write_upscaled(streamed, _bands(result, [0, 1, 9, 10, 25, 26]), source, scale)
    rgb = sio.from_tensor(result)
    alpha = None if source.alpha is None else sio.resize_alpha(source.alpha, 26, 22)
    sio.write_image(sio.Picture(rgb, alpha, gray=source.gray, bits=source.bits, icc_profile=source.icc_profile),
                    whole)
    want = _expected(source, result, scale)
    assert np.array_equal(_decoded(streamed), want)
    assert np.array_equal(_decoded(whole), want)
    with Image.open(streamed) as im:
        im.load()  # Pillow checks CRCs and filters
        assert im.size == (22, 26)
        assert im.info.get("icc_profile") == source.icc_profile
    assert sio.read_image(streamed).mode == source.mode


@pytest.mark.parametrize(("kind", "suffix"), [("RGBA", ".jpg"), ("RGB;16", ".tif"), ("LA", ".webp")])
def test_other_formats_are_assembled_from_the_bands(kind: str, suffix: str, tmp_path: Path) -> None:
    source = _source(kind)
    result = torch.from_numpy(RNG.uniform(0, 1, (1, 3, 26, 22)).astype(np.float32))
    streamed, whole = tmp_path / f"streamed{suffix}", tmp_path / f"whole{suffix}"
    sio.write_upscaled(streamed, _bands(result, [0, 5, 26]), source, 2)
    alpha = None if source.alpha is None else sio.resize_alpha(source.alpha, 26, 22)
    rgb = sio.from_tensor(result)
    sio.write_image(sio.Picture(rgb, alpha, gray=source.gray, bits=source.bits), whole)
    a, b = sio.read_image(streamed), sio.read_image(whole)
    assert np.array_equal(a.samples, b.samples) and a.bits == b.bits == source.bits
    if suffix == ".tif":  # lossless: the exact samples
        assert np.array_equal(a.samples, _expected(source, result, 2, "TIFF"))


def test_upscale_file_streams_the_pixels_of_the_in_memory_path(model: nn.Module, tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.fromarray(np.dstack([photo_u8(70, 60), photo_u8(70, 60, 1)])).save(source)  # RGBA
    streamed, whole = tmp_path / "streamed.png", tmp_path / "whole.png"
    result = up.upscale_file(model, source, streamed, tile=32, overlap=8)
    assert result.windows == 6 and result.out_size == (120, 140)
    picture = sio.read_image(source)
    sio.write_image(up.upscale_picture(model, picture, tile=32, overlap=8), whole)
    with Image.open(streamed) as a, Image.open(whole) as b:
        assert a.mode == b.mode == "RGBA"
        assert np.array_equal(np.asarray(a), np.asarray(b))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_failing_producer_or_writer_leaves_nothing(tmp_path: Path) -> None:
    source = _source("RGB")
    result = torch.rand(1, 3, 26, 22)
    target = tmp_path / "out.png"

    def broken() -> Iterator[Tensor]:
        yield result[:, :, :10]
        raise RuntimeError("network blew up")

    with pytest.raises(RuntimeError, match="network blew up"):  # not reported as a write error
        sio.write_upscaled(target, broken(), source, 2)
    assert not target.exists() and _leftovers(tmp_path) == []
    with pytest.raises(sio.ImageError, match="cannot write PNG"):  # too few rows
        sio.write_upscaled(target, _bands(result, [0, 10]), source, 2)
    assert not target.exists() and _leftovers(tmp_path) == []
    target.write_bytes(b"old")

    def interrupted() -> Iterator[Tensor]:
        yield result[:, :, :9]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sio.write_upscaled(target, interrupted(), source, 2)
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []  # the old file is untouched


# ---------------------------------------------------------------------------------------------
# Checks before compute


def _no_reading(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record read_image calls in upscale (there must be none when the output is unwritable)."""
    calls: list[Path] = []
    real = up.read_image
    monkeypatch.setattr(up, "read_image", lambda path: calls.append(Path(path)) or real(path))
    return calls


def test_output_under_a_file_is_one_line_before_reading(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(photo_u8(20, 20)).save(src)
    blocker = tmp_path / "some_file.png"
    blocker.write_bytes(b"x")
    calls = _no_reading(monkeypatch)
    for target in (blocker / "out.png", blocker / "deeper" / "out.png"):
        code = up.main([str(src), "-o", str(target), "--model", str(model_file), "--no-progress"])
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("seemore-upscale: error:")]
        assert code == 1 and "Traceback" not in err
        assert errors == [
            f"seemore-upscale: error: {target}: cannot create folder {target.parent}: {blocker} is a file"
        ]
    assert calls == []


def test_unwritable_folder_is_reported_before_reading(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(photo_u8(20, 20)).save(src)
    calls = _no_reading(monkeypatch)

    def refuse(path: Path) -> None:
        raise PermissionError(13, "Permission denied")

    # Running as root makes chmod useless, so the refusal is simulated where the probe is made.
    monkeypatch.setattr(sio, "probe_writable", refuse)
    out = tmp_path / "out"
    code = up.main([str(src), "-o", str(out), "--model", str(model_file), "--no-progress"])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert code == 1 and calls == []
    assert errors == [
        f"seemore-upscale: error: {out / 'in_x2.png'}: cannot write in folder {out} (Permission denied)"
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into a read-only folder")
def test_read_only_folder_for_real(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(sio.ImageError, match="cannot write in folder"):
            sio.check_writable(folder / "x.png")
    finally:
        folder.chmod(0o755)


def test_check_writable_creates_the_folder_and_leaves_no_probe(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    sio.check_writable(target)
    assert target.parent.is_dir() and list(target.parent.iterdir()) == []
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(sio.ImageError, match="is a folder"):
        sio.check_writable(tmp_path / "dir.png")


# ---------------------------------------------------------------------------------------------
# Multi-frame files


def _frames(kind: str, folder: Path) -> Path:
    frames = [Image.fromarray(photo_u8(16, 16)) for _ in range(3)]
    if kind == "gif":
        path = folder / "anim.gif"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    elif kind == "apng":
        path = folder / "anim.png"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    elif kind == "tiff":
        path = folder / "pages.tif"
        frames[0].save(path, save_all=True, append_images=frames[1:])
    elif kind == "webp":
        path = folder / "anim.webp"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, lossless=True)
    else:  # a 16-bit APNG header goes through the project's own PNG decoder
        path = folder / "anim16.png"
        sio._write_png16(path, photo_u8(16, 16).astype(np.uint16) * 257, None)
        data = path.read_bytes()
        actl = sio._png_chunk(b"acTL", struct.pack(">II", 3, 0))
        path.write_bytes(data[:33] + actl + data[33:])
    return path


@pytest.mark.parametrize("kind", ["gif", "apng", "tiff", "webp", "apng16"])
def test_multi_frame_files_are_refused(kind: str, tmp_path: Path) -> None:
    path = _frames(kind, tmp_path)
    with pytest.raises(sio.ImageError) as info:
        sio.read_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: has 3 frames") and "extract the frames first" in message
    assert "\n" not in message


def test_single_frame_gif_and_mpo_are_read(tmp_path: Path) -> None:
    path = tmp_path / "still.gif"
    Image.fromarray(photo_u8(16, 16)).save(path)
    assert sio.read_image(path).mode == "RGB"
    # MPO (phones' JPEG + preview): the main picture, the one viewers show.
    main, preview = Image.fromarray(photo_u8(32, 32)), Image.fromarray(photo_u8(16, 16))
    path = tmp_path / "phone.jpg"
    main.save(path, format="MPO", save_all=True, append_images=[preview], quality=95)
    with Image.open(path) as im:
        assert im.format == "MPO" and im.n_frames == 2
    assert (sio.read_image(path).height, sio.read_image(path).width) == (32, 32)


# ---------------------------------------------------------------------------------------------
# Ctrl-C and progress


@pytest.mark.parametrize("where", ["network", "encoder"])
def test_ctrl_c_in_process_is_one_line_and_leaves_nothing(
    where: str, tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(photo_u8(64, 64)).save(src)
    out = tmp_path / "out"
    calls = {"n": 0}
    if where == "network":
        real_place = tiling._place

        def place(*args: object, **kwargs: object) -> None:
            calls["n"] += 1
            if calls["n"] == 7:  # in the last of 3 row spans, after two bands went to the file
                raise KeyboardInterrupt
            real_place(*args, **kwargs)

        monkeypatch.setattr(tiling, "_place", place)
    else:
        real_write = sio._PngEncoder.write

        def write(self: sio._PngEncoder, values: np.ndarray) -> None:
            calls["n"] += 1
            if calls["n"] == 3:  # after two pieces are in the temporary file
                raise KeyboardInterrupt
            real_write(self, values)

        monkeypatch.setattr(sio._PngEncoder, "write", write)
        monkeypatch.setattr(sio, "_CHUNK_BYTES", 12 * 128 * 8)  # 8-row pieces: several per image
    # Progress on (stderr is not a terminal here: summary lines), to check none is printed.
    code = up.main([str(src), "-o", str(out), "--model", str(model_file), "--tile", "32", "--overlap", "8"])
    captured = capsys.readouterr()
    assert code == 130
    assert captured.err.splitlines() == ["seemore-upscale: interrupted"]
    assert calls["n"] >= 3
    assert list(out.iterdir()) == []  # no output, no temporary


def _writing(folder: Path) -> bool:
    """Whether a temporary file in ``folder`` has bytes in it (the pre-flight probe has none)."""
    for path in folder.glob(".*.tmp") if folder.is_dir() else []:
        try:
            if path.stat().st_size > 0:
                return True
        except FileNotFoundError:  # renamed or removed meanwhile
            pass
    return False


def test_ctrl_c_for_real(tmp_path: Path, model_file: Path) -> None:
    src = tmp_path / "noise.png"
    Image.fromarray(RNG.integers(0, 256, (320, 320, 3), dtype=np.uint8)).save(src)  # incompressible
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "seemore.upscale", str(src), "-o", str(out), "--model", str(model_file),
           "--tile", "32", "--overlap", "8", "--threads", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        # Upscaling has started once the temporary output holds encoded rows.
        while not _writing(out):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the upscale never started writing"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == ["seemore-upscale: interrupted"]
    assert list(out.iterdir()) == []


def test_progress_in_a_log_is_summary_lines(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(photo_u8(40, 40)).save(src)
    assert up.main([str(src), "-o", str(tmp_path / "o.png"), "--model", str(model_file), "--tile", "32",
                    "--overlap", "8"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines()[-1].startswith("upscaling: 1/1 img (100%)")


def test_png_encoder_pieces_decode_like_one_piece(tmp_path: Path) -> None:
    values = RNG.integers(0, 65536, (17, 9, 4), dtype=np.uint16)
    with open(tmp_path / "p.png", "wb") as f:
        encoder = sio._PngEncoder(f, 17, 9, 4, 16, None)
        for a, b in ((0, 1), (1, 8), (8, 17)):
            encoder.write(values[a:b])
        encoder.close()
    picture = sio.read_image(tmp_path / "p.png")
    assert np.array_equal(picture.samples, values[:, :, :3])
    assert np.array_equal(np.rint(picture.alpha * 65535).astype(np.uint16), values[:, :, 3])
    # IDAT must decompress to one byte of filter type plus the row, for every row.
    data = (tmp_path / "p.png").read_bytes()
    stream = b"".join(payload for kind, payload in sio._png_chunks(data, tmp_path / "p.png") if kind == b"IDAT")
    assert len(zlib.decompress(stream)) == 17 * (1 + 9 * 8)


def test_memory_benchmark_runs_small(tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_script("benchmarks/upscale_memory.py")
    js = tmp_path / "mem.json"
    argv = ["--size", "48x56", "--model", str(model_file), "--tile", "32", "--overlap", "8", "--threads", "1",
            "--no-progress", "--json", str(js)]
    assert bench.main(argv) == 0
    doc = json.loads(js.read_text())
    assert doc["output"] == {"height": 96, "width": 112} and doc["windows"] == 4
    assert doc["peak_rss_mib"] >= doc["peak_rss_before_mib"] > 0
    assert "peak RSS" in capsys.readouterr().out
    assert exit_code(bench.main, ["--size", "8", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("upscale_memory.py: error:")
