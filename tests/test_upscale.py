"""Tests for image I/O, tiled inference with MoE routing, and the upscale CLI.

Small random-weight SeemoRe models and small images keep the file fast. A nearest-neighbour stub
stands in for the network where a test checks that pixels land in the right place (orientation,
16-bit precision), which a random network would scramble.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from seemore import create_model, get_config, save_model
from seemore import imageio as sio
from seemore import upscale as up
from seemore.model import MoELayer
from seemore.tiling import plan_axis, plan_tiles, upscale_tensor

torch.set_num_threads(min(2, torch.get_num_threads()))
RNG = np.random.default_rng(0)
# Tiled (global routing) vs whole-image tolerance on the [0, 1] output scale: float32 rounding of
# reordered sums is ~1e-6 here; 1e-5 stays below one 16-bit step (1.5e-5).
TIGHT = 1e-5


class NearestModel(nn.Module):
    """Stand-in network: nearest-neighbour upscaling, with a SeemoRe config for the size rules."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.config = get_config("seemore_t", scale)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the model a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.config.scale, mode="nearest") + self.anchor


def tiny_model(layers: int = 1, scale: int = 2, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("seemore_t", scale, num_layers=layers).eval()


def photo(height: int, width: int) -> np.ndarray:
    """Smooth colour gradients plus texture: (H, W, 3) float in [0, 1]."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width, y / height, 0.5 + 0.4 * np.sin(x / 3) * np.cos(y / 4)], axis=2)
    return np.clip(base + RNG.normal(0, 0.03, base.shape), 0, 1).astype(np.float32)


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()


def u8(image: np.ndarray) -> np.ndarray:
    return (image * 255).round().astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Image I/O


def make_input(kind: str, folder: Path) -> Path:
    """Write a 20x28 (H x W) test image of the given kind; returns its path."""
    rgb = u8(photo(20, 28))
    gray = rgb[:, :, 0]
    alpha = np.zeros((20, 28), np.uint8)
    alpha[:, :14] = 255
    path = folder / f"{kind}.png"
    if kind == "RGB":
        Image.fromarray(rgb).save(path)
    elif kind == "RGBA":
        Image.fromarray(np.dstack([rgb, alpha])).save(path)
    elif kind == "L":
        Image.fromarray(gray).save(path)
    elif kind == "LA":
        Image.fromarray(np.dstack([gray, alpha])).convert("LA").save(path)
    elif kind == "P":
        Image.fromarray(rgb).quantize(16).save(path)
    elif kind == "P-transparent":
        im = Image.fromarray(rgb).quantize(15)
        indices = np.asarray(im).copy()
        indices[:, 14:] = 15  # a 16th palette entry, the transparent one
        im.putpalette(im.getpalette()[: 15 * 3] + [255, 0, 255])
        im.putdata(indices.ravel().tolist())
        im.save(path, transparency=15)
    elif kind == "1":
        Image.fromarray(gray > 128).save(path)
    elif kind == "I;16":
        Image.fromarray(gray.astype(np.uint16) * 256 + 3).save(path)
    elif kind in ("RGB;16", "RGBA;16", "LA;16"):
        # Colour values that are not multiples of 257 (so not 8-bit values in disguise).
        rgb16, gray16, alpha16 = (
            rgb.astype(np.uint16) * 256 + 7,
            gray.astype(np.uint16) * 256 + 7,
            alpha.astype(np.uint16) * 257,
        )
        planes = {
            "RGB;16": rgb16,
            "RGBA;16": np.dstack([rgb16, alpha16]),
            "LA;16": np.dstack([gray16, alpha16]),
        }[kind]
        sio._write_png16(path, planes, None)
    elif kind == "CMYK":
        path = folder / "cmyk.jpg"
        Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    elif kind == "TIFF;16":
        tifffile = pytest.importorskip("tifffile")
        path = folder / "rgb16.tif"
        tifffile.imwrite(path, rgb.astype(np.uint16) * 256 + 5, photometric="rgb")
    else:
        raise AssertionError(kind)
    return path


# kind -> (output mode as Pillow reports it, bit depth of the PNG written)
MODES = {
    "RGB": ("RGB", 8),
    "RGBA": ("RGBA", 8),
    "L": ("L", 8),
    "LA": ("LA", 8),
    "P": ("RGB", 8),
    "P-transparent": ("RGBA", 8),
    "1": ("L", 8),
    "I;16": ("I;16", 16),
    "RGB;16": ("RGB", 16),
    "RGBA;16": ("RGBA", 16),
    "LA;16": ("RGBA", 16),  # Pillow shows 16-bit gray+alpha PNGs as RGBA
    "CMYK": ("RGB", 8),
    "TIFF;16": ("RGB", 16),
}


def png_depth(path: Path) -> int:
    head = path.read_bytes()[:33]
    return head[24]


@pytest.fixture(scope="module")
def random_model() -> nn.Module:
    return tiny_model(layers=1, scale=2)


@pytest.mark.parametrize("kind", list(MODES))
def test_every_input_kind_gives_right_size_and_mode(
    kind: str, tmp_path: Path, random_model: nn.Module
) -> None:
    src = make_input(kind, tmp_path)
    out = tmp_path / "out" / f"{kind.replace(';', '_')}.png"
    result = up.upscale_file(random_model, src, out, tile=None)
    with Image.open(out) as im:
        assert im.size == (56, 40)
        assert im.mode == MODES[kind][0]
        assert png_depth(out) == MODES[kind][1]
    assert result.out_size == (56, 40)


@pytest.mark.parametrize("kind", ["RGBA", "LA", "P-transparent", "RGBA;16"])
def test_alpha_is_kept_and_resized(kind: str, tmp_path: Path) -> None:
    src = make_input(kind, tmp_path)
    out = tmp_path / "out.png"
    up.upscale_file(NearestModel(2), src, out, tile=None)
    alpha = sio.read_image(out).alpha
    assert alpha is not None and alpha.shape == (40, 56)
    # Opaque left half, transparent right half; the bicubic ramp only touches the edge.
    assert np.all(alpha[:, :24] == 1.0) and np.all(alpha[:, 32:] == 0.0)
    expected = sio.resize_alpha(sio.read_image(src).alpha, 40, 56)
    assert np.abs(alpha - expected).max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("kind", ["I;16", "RGB;16", "RGBA;16", "TIFF;16"])
def test_16bit_precision_survives(kind: str, tmp_path: Path) -> None:
    src = make_input(kind, tmp_path)
    out = tmp_path / ("out.tif" if kind == "TIFF;16" else "out.png")
    up.upscale_file(NearestModel(2), src, out, tile=None)
    before, after = sio.read_image(src), sio.read_image(out)
    assert after.bits == 16 and after.gray == before.gray
    # Nearest-neighbour x2 must give back every 16-bit value exactly (values are not multiples of 257).
    want = np.rint(before.rgb * 65535).repeat(2, 0).repeat(2, 1)
    assert np.array_equal(np.rint(after.rgb * 65535), want)
    assert np.any(want.astype(np.int64) % 257 != 0)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = u8(photo(16, 32))
    stored[:4, :4] = [255, 0, 0]  # a red marker in the stored image's top-left corner
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    src = tmp_path / "rotated.png"
    im.save(src, exif=exif.tobytes())
    out = tmp_path / "out.png"
    up.upscale_file(NearestModel(2), src, out, tile=None)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(src)))
    assert upright.shape == (32, 16, 3)
    with Image.open(out) as result:
        assert result.size == (32, 64)  # (W, H): portrait now
        assert 0x0112 not in result.getexif()
        assert np.array_equal(np.asarray(result), upright.repeat(2, 0).repeat(2, 1))
    assert np.all(upright[:4, -4:] == [255, 0, 0])  # the marker went to the top-right


def test_gray_comes_back_as_the_same_gray(tmp_path: Path) -> None:
    src = make_input("L", tmp_path)
    out = tmp_path / "out.png"
    up.upscale_file(NearestModel(2), src, out, tile=None)
    want = np.asarray(Image.open(src)).repeat(2, 0).repeat(2, 1)
    assert np.array_equal(np.asarray(Image.open(out)), want)


def test_jpeg_output_flattens_alpha_onto_white(tmp_path: Path) -> None:
    picture = sio.Picture(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.float32))
    sio.write_image(picture, tmp_path / "x.jpg")
    with Image.open(tmp_path / "x.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert np.asarray(im).min() >= 250  # transparent black became white


def test_png16_decoder_matches_pillows_encoder(tmp_path: Path) -> None:
    # Pillow writes 8-bit RGBA with adaptive filters (Sub, Paeth, ...); with the header relabelled
    # as 16-bit gray+alpha (same 4 bytes per pixel, so the same filtering) it must decode to the
    # same bytes read as big-endian 16-bit values.
    pixels = u8(photo(23, 37)[:, :, [0, 1, 2, 0]])
    Image.fromarray(pixels, "RGBA").save(tmp_path / "p.png")
    data = bytearray((tmp_path / "p.png").read_bytes())
    data[24], data[25] = 16, 4
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (tmp_path / "la16.png").write_bytes(data)
    picture = sio.read_image(tmp_path / "la16.png")
    words = pixels.reshape(23, 37, 2, 2).astype(np.uint16)
    words = words[..., 0] * 256 + words[..., 1]
    assert np.array_equal(np.rint(picture.rgb[:, :, 0] * 65535), words[:, :, 0])
    assert np.array_equal(np.rint(picture.alpha * 65535), words[:, :, 1])


def test_png16_encoder_is_read_by_pillow(tmp_path: Path) -> None:
    values = (photo(19, 33) * 65535).astype(np.uint16)
    sio._write_png16(tmp_path / "x.png", values, b"not-a-real-icc")
    with Image.open(tmp_path / "x.png") as im:
        im.load()  # Pillow checks CRCs and filters; it keeps the high byte of each sample
        assert np.array_equal(np.asarray(im), (values >> 8).astype(np.uint8))
        assert im.info.get("icc_profile") == b"not-a-real-icc"


def test_png16_interlaced_is_decoded(tmp_path: Path) -> None:
    values = (photo(13, 11) * 65535).astype(np.uint16)
    raw = values.astype(">u2").view(np.uint8).reshape(13, 11, 6)
    stream = b""
    for x0, y0, dx, dy in sio._ADAM7:  # Adam7 passes, filter type 0
        sub = raw[y0::dy, x0::dx]
        if sub.size:
            stream += b"".join(b"\0" + row.tobytes() for row in sub)
    header = struct.pack(">IIBBBBB", 11, 13, 16, 2, 0, 0, 1)
    png = sio._PNG_SIGNATURE + sio._png_chunk(b"IHDR", header)
    png += sio._png_chunk(b"IDAT", zlib.compress(stream)) + sio._png_chunk(b"IEND", b"")
    (tmp_path / "i.png").write_bytes(png)
    assert np.array_equal(np.rint(sio.read_image(tmp_path / "i.png").rgb * 65535), values)


@pytest.mark.parametrize("problem", ["missing", "text", "truncated", "folder"])
def test_bad_files_raise_one_line_image_error(problem: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    if problem == "text":
        path.write_text("this is not an image\n")
    elif problem == "truncated":
        Image.fromarray(u8(photo(64, 64))).save(path)
        path.write_bytes(path.read_bytes()[:300])
    elif problem == "folder":
        path.mkdir()
    with pytest.raises(sio.ImageError) as info:
        sio.read_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


# ---------------------------------------------------------------------------------------------
# Tiling


def test_plan_axis_invariants() -> None:
    for size in (16, 17, 100, 150, 257, 1000):
        for tile, overlap in ((64, 8), (96, 32), (128, 48), (100, 16)):
            spans = plan_axis(size, tile, overlap, 16)
            assert spans[0].core_start == 0 and spans[-1].core_stop == size
            for a, b in zip(spans[:-1], spans[1:], strict=True):
                assert a.core_stop == b.core_start  # cores partition the axis
                assert a.stop - a.core_stop >= overlap and b.core_start - b.start >= overlap
            for s in spans:
                assert s.start % 16 == 0  # on the calibrate grid
                assert s.stop - s.start <= max(tile // 16 * 16 + 15, size if len(spans) == 1 else 0)
                assert s.stop - s.start >= min(size, 16)


def test_small_images_are_padded_and_cropped(random_model: nn.Module) -> None:
    for h, w in ((1, 1), (5, 9), (15, 40)):
        out = upscale_tensor(random_model, torch.rand(1, 3, h, w), tile=None)
        assert out.shape == (1, 3, 2 * h, 2 * w) and torch.isfinite(out).all()


@pytest.fixture(scope="module")
def deep_model() -> nn.Module:
    return tiny_model(layers=2, scale=2, seed=1)


@pytest.mark.parametrize(
    ("size", "width"),
    [((32, 160), 36), ((130, 150), 16)],
    ids=["aligned-1x4-windows", "not-multiple-of-16-2x3-windows"],
)
def test_tiled_global_routing_equals_whole_image(size: tuple[int, int], width: int) -> None:
    # Width 16 instead of 36 only to keep the 2-D case fast; tiling does not depend on it.
    torch.manual_seed(1)
    model = create_model("seemore_t", 2, num_layers=2, embedding_dim=width).eval()
    lr = as_tensor(photo(*size))
    assert len(plan_tiles(*size, 112, 48, 16)) in (4, 6)
    with torch.inference_mode():
        whole = model(lr)
    # Windows of 112 px with >= 48 px of context: the error is float32 rounding (~7e-7).
    tiled = upscale_tensor(model, lr, tile=112, overlap=48, routing="global")
    assert (tiled - whole).abs().max().item() < TIGHT


def _router_inputs(model: nn.Module, lr: torch.Tensor, **tiling) -> list[torch.Tensor]:
    """Pooled input of the first router at every call (whole image, or one per window)."""
    gate = next(m for m in model.modules() if isinstance(m, MoELayer)).gate
    seen: list[torch.Tensor] = []
    handle = gate.register_forward_pre_hook(lambda mod, args: seen.append(args[0].mean((2, 3))[0].clone()))
    try:
        if tiling:
            upscale_tensor(model, lr, **tiling)
        else:
            with torch.inference_mode():
                model(lr)
    finally:
        handle.remove()
    return seen


def _first_router_choices(model: nn.Module, lr: torch.Tensor, **tiling) -> list[int]:
    gate = next(m for m in model.modules() if isinstance(m, MoELayer)).gate
    picks: list[int] = []
    handle = gate.register_forward_hook(lambda mod, args, out: picks.append(int(out.argmax(1))))
    try:
        upscale_tensor(model, lr, **tiling) if tiling else model(lr)
    finally:
        handle.remove()
    return picks


def test_tile_routing_can_differ_and_global_routing_fixes_it() -> None:
    model = tiny_model(layers=2, scale=2, seed=2)
    # Left: smooth gradients; right: strong texture. Windows [0, 128) and [32, 160) (cores split at 80).
    image = photo(32, 160)
    image[:, 80:] = RNG.random((32, 80, 3), dtype=np.float32)
    lr = as_tensor(image)
    tiling = dict(tile=128, overlap=48)
    assert [(s.start, s.stop, s.core_start) for s in plan_axis(160, 128, 48, 16)] == [
        (0, 128, 0),
        (32, 160, 80),
    ]
    whole_vec = _router_inputs(model, lr)[0]
    right_vec = _router_inputs(model, lr, routing="tile", **tiling)[1]
    # Router weights that depend on image statistics: logit(e0) = 10 w.p, logit(e2) = -10 w.p with
    # w.p = +1 for the whole image's pooled features and -1 for the right window's.
    w = torch.linalg.pinv(torch.stack([whole_vec, right_vec])) @ torch.tensor([1.0, -1.0])
    gate = next(m for m in model.modules() if isinstance(m, MoELayer)).gate
    with torch.no_grad():
        gate.body[2].weight.copy_(torch.stack([10 * w, torch.zeros_like(w), -10 * w]))
    with torch.inference_mode():
        assert _first_router_choices(model, lr) == [0]
        assert _first_router_choices(model, lr, routing="tile", **tiling)[1] == 2  # right window: expert 2
        whole = model(lr)
        per_tile = upscale_tensor(model, lr, routing="tile", **tiling)
        exact = upscale_tensor(model, lr, routing="global", **tiling)
    right = (slice(None), slice(None), slice(None), slice(2 * 100, None))
    assert (per_tile - whole)[right].abs().max().item() > 1e-3
    assert (exact - whole).abs().max().item() < TIGHT


def test_tile_routing_cross_fade_is_a_partition_of_unity() -> None:
    # With every router's logits equal (zero weights), every window routes like the whole image,
    # so the cross-faded tile-routing output must equal whole-image inference.
    torch.manual_seed(3)
    model = create_model("seemore_t", 2, num_layers=2, embedding_dim=16).eval()
    with torch.no_grad():
        for layer in (m for m in model.modules() if isinstance(m, MoELayer)):
            layer.gate.body[2].weight.zero_()
    lr = as_tensor(photo(130, 150))
    assert len(plan_tiles(130, 150, 112, 48, 16)) == 6  # 2 x 3 windows: fades along both axes
    with torch.inference_mode():
        whole = model(lr)
    tiled = upscale_tensor(model, lr, tile=112, overlap=48, routing="tile")
    assert (tiled - whole).abs().max().item() < TIGHT


def test_progress_counts_every_pass(deep_model: nn.Module) -> None:
    calls: list[tuple[int, int]] = []
    upscale_tensor(
        deep_model,
        torch.rand(1, 3, 32, 100),
        tile=64,
        overlap=16,
        routing="global",
        progress=lambda done, total: calls.append((done, total)),
    )
    windows = len(plan_axis(100, 64, 16, 16))
    assert calls[-1] == ((2 + 1) * windows,) * 2  # 2 routing passes + the final pass


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(tiny_model(layers=1, scale=2), path)
    return path


def test_cli_reports_bad_files_and_processes_the_others(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good1 = make_input("RGBA", tmp_path)
    good2 = make_input("L", tmp_path)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good1.read_bytes()[:200])
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    code = up.main(
        [str(p) for p in (good1, text, corrupt, missing, good2)]
        + ["-o", str(out), "--model", str(model_file)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["L_x2.png", "RGBA_x2.png"]
    lines = [line for line in err.splitlines() if line.startswith("seemore-upscale: error:")]
    assert len(lines) == 3 and "Traceback" not in err
    for bad in (text, corrupt, missing):
        assert sum(str(bad) in line for line in lines) == 1


def test_cli_folders_suffix_format_and_recursion(tmp_path: Path, model_file: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(u8(photo(16, 20))).save(folder / "a.jpg")
    Image.fromarray(u8(photo(16, 20))).save(folder / "sub" / "b.png")
    (folder / "readme.txt").write_text("not picked up: not an image extension")
    out = tmp_path / "out"
    assert (
        up.main(
            [str(folder), "-o", str(out), "--model", str(model_file), "--format", "webp", "--suffix", "_big"]
        )
        == 0
    )
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["a_big.webp"]
    assert up.main([str(folder), "-o", str(out), "--model", str(model_file), "--recursive"]) == 0
    assert (out / "sub" / "b_x2.png").is_file() and (out / "a_x2.png").is_file()
    with Image.open(out / "a_big.webp") as im:
        assert im.format == "WEBP" and im.size == (40, 32)


def test_cli_single_file_output_follows_extension(tmp_path: Path, model_file: Path) -> None:
    src = make_input("RGB", tmp_path)
    out = tmp_path / "result.jpg"
    assert (
        up.main([str(src), "-o", str(out), "--model", str(model_file), "--tile", "16", "--overlap", "0"]) == 0
    )
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == (56, 40)


def test_cli_without_model_or_shipped_weights_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(up, "list_shipped", lambda: {})
    code = up.main([str(make_input("RGB", tmp_path)), "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "seemore_t_x4" in err
    assert err.startswith("seemore-upscale: error:")


def test_cli_writes_json(tmp_path: Path, model_file: Path) -> None:
    src = make_input("RGB", tmp_path)
    out, js = tmp_path / "out", tmp_path / "report" / "upscale.json"
    argv = [str(src), "-o", str(out), "--model", str(model_file), "--threads", "1", "--no-progress"]
    assert up.main([*argv, "--json", str(js)]) == 0
    doc = json.loads(js.read_text())
    assert doc["scale"] == 2 and doc["threads"] == 1 and doc["failed"] == []
    (item,) = doc["done"]
    assert item["target"] == str(out / "RGB_x2.png")
    assert item["out_size"] == {"height": 2 * item["in_size"]["height"], "width": 2 * item["in_size"]["width"]}


@pytest.mark.parametrize(
    "argv",
    [
        ["--threads", "0"],
        ["--tile", "-1"],
        ["--overlap", "x"],
        ["--format", "nope"],
        ["--device", "nonsense"],
        ["--json", "FOLDER"],
        ["--model", "seemore_q_x4"],  # not a shipped name
        ["--model", "FOLDER"],  # a folder is not a checkpoint
    ],
)
def test_cli_bad_input_is_one_line(
    tmp_path: Path, model_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    argv = [str(tmp_path) if a == "FOLDER" else a for a in argv]
    if "--model" not in argv:
        argv += ["--model", str(model_file)]
    out = tmp_path / "out"
    try:
        code = up.main([str(make_input("RGB", tmp_path)), "-o", str(out), "--no-progress", *argv])
    except SystemExit as exc:  # argparse rejects the flag
        code = exc.code
    assert code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("seemore-upscale: error:"), err
    assert not out.exists()  # nothing was written


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_failed_write_leaves_no_partial_file(
    fmt: str, tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = make_input("RGB", tmp_path), make_input("L", tmp_path)
    if fmt == "png":  # PNG is streamed by the project's encoder
        real_close = sio._PngEncoder.close

        def failing_close(self: sio._PngEncoder) -> None:
            if self.channels == 3:  # fail the colour image after its rows hit the disk
                self.f.write(b"\0" * 100)
                raise OSError("disk full")
            real_close(self)

        monkeypatch.setattr(sio._PngEncoder, "close", failing_close)
    else:
        real_save = Image.Image.save

        def failing_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
            if self.mode == "RGB":  # fail the colour image after half of its bytes hit the disk
                real_save(self, fp, *args, **kwargs)
                Path(str(fp)).write_bytes(Path(str(fp)).read_bytes()[:100])
                raise OSError("disk full")
            real_save(self, fp, *args, **kwargs)

        monkeypatch.setattr(Image.Image, "save", failing_save)
    out = tmp_path / "out"
    code = up.main([str(first), str(second), "-o", str(out), "--model", str(model_file), "--format", fmt])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == [f"L_x2.{fmt}"]  # no RGB_x2, no temp file
    err = capsys.readouterr().err
    assert "disk full" in err and str(out / f"RGB_x2.{fmt}") in err
