"""Reading images for the network and writing its results back.

Every Pillow-readable image becomes a :class:`Picture`: float32 RGB in [0, 1] (what the
network eats), an optional separate alpha plane, and what is needed to write the result in
the same kind of file it came from (gray or colour, 8 or 16 bits, ICC profile).

* EXIF orientation is applied on reading, so outputs are upright and carry no orientation tag.
* Gray (``1``, ``L``, ``LA``, ``I;16``): the network sees three equal channels; the result is
  averaged back to one channel (the mean is the least-squares inverse of the replication).
* Palette images (``P``, ``PA``, with or without transparency) are expanded to RGB(A) and
  written as RGB(A): the upscaled picture has new colours, so re-quantising would only add error.
* CMYK is converted to sRGB through its ICC profile when it has one (LittleCMS), else with
  Pillow's plain formula.
* 16-bit PNG and TIFF keep 16 bits in and out. Pillow reduces 16-bit *colour* PNGs to 8 bits
  on reading and cannot write them, so a small PNG codec for bit depth 16 lives here; 16-bit
  colour TIFFs go through ``tifffile`` (a scikit-image dependency) when it is installed.
* Alpha is resized with Pillow's bicubic filter on float data, not by the network: SR networks
  are trained on natural RGB photographs and have never seen mask statistics, while masks are
  mostly flat with hard edges, where a plain high-quality resize is the standard answer and is
  exact on flat regions. Colour is upscaled straight (not premultiplied), as stored.

Output format follows the output file's extension (PNG when it has none). Formats that cannot
store alpha (JPEG, ...) get the picture composited onto white; 16 bits are kept for PNG and
TIFF only. Anything that goes wrong raises :class:`ImageError` with a one-line message that
names the file.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from seemore.checkpoint import atomic_write

# Formats whose Pillow writer keeps an alpha channel.
ALPHA_FORMATS = frozenset({"PNG", "WEBP", "TIFF", "GIF", "TGA", "JPEG2000", "AVIF", "QOI"})
# Formats where an 8-bit gray + alpha image can be written as such (others get RGBA).
GRAY_ALPHA_FORMATS = frozenset({"PNG", "TIFF"})
# Formats that can carry an ICC profile through Pillow's ``icc_profile`` option.
ICC_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "TIFF", "AVIF", "JPEG2000"})
# High quality for lossy formats: these are the final product, and 4:4:4 chroma keeps the
# detail the network just created.
SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"quality": 95},
    "AVIF": {"quality": 95},
}

_ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type by channel count, and channel count by colour type.
_PNG_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
# Adam7 passes: (x0, y0, dx, dy).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


class ImageError(ValueError):
    """An image that cannot be read or written; the message is one line and names the file."""


@dataclass
class Picture:
    """An image ready for the network, plus what is needed to write its result back."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]; gray sources repeat one channel three times
    alpha: np.ndarray | None = None  # (H, W) float32 in [0, 1]
    gray: bool = False  # one colour channel in the source: written back as L / LA / 16-bit gray
    bits: int = 8  # 8 or 16: the precision the source had and the result is written with
    icc_profile: bytes | None = None  # colour profile of the source's colour space, if any

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.rgb.shape[1])

    @property
    def mode(self) -> str:
        """Pillow-style description: L, LA, RGB or RGBA, with ``;16`` for 16-bit pictures."""
        base = ("L" if self.gray else "RGB") + ("A" if self.alpha is not None else "")
        return base + (";16" if self.bits == 16 else "")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with dot) that Pillow can open: what folder scans pick up."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def output_format(path: str | Path) -> str:
    """Pillow format name for an output path's extension (``PNG`` when there is none)."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "PNG"
    Image.init()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(f"{path}: cannot write '{suffix}' files (use .png, .jpg, .webp, .tif, ...)")
    return fmt


# ----------------------------------------------------------------------------------------------
# Reading


def read_image(path: str | Path) -> Picture:
    """Read any Pillow-readable image (16-bit PNG/TIFF at full precision) as a :class:`Picture`.

    EXIF orientation is applied. Raises :class:`ImageError` (one line, naming the file) for
    missing, unreadable, truncated or unsupported files.
    """
    path = Path(path)
    try:
        if not path.exists():
            raise ImageError(f"{path}: no such file")
        if path.is_dir():
            raise ImageError(f"{path}: is a folder, not an image")
        header = _png_header(path)
        if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
            return _read_png16(path)
        with Image.open(path) as im:
            if im.format == "TIFF" and _tiff_is_16bit_colour(im):
                picture = _read_tiff16(path)
                if picture is not None:
                    return picture
            im.load()
            return _from_pillow(im, path)
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path}: too large ({_one_line(exc)})") from None
    except MemoryError:
        raise ImageError(f"{path}: not enough memory to decode") from None
    except Exception as exc:  # decoders raise OSError, ValueError, SyntaxError, zlib.error, ...
        raise ImageError(f"{path}: cannot read image ({_one_line(exc)})") from None


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _from_pillow(im: Image.Image, path: Path) -> Picture:
    """Normalise a loaded Pillow image: orientation, mode, range."""
    im = ImageOps.exif_transpose(im)
    icc = im.info.get("icc_profile") or None
    mode = im.mode
    if mode == "F":
        raise ImageError(f"{path}: 32-bit float images are not supported")
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageError(f"{path}: 32-bit integer image with values outside 0..65535")
        alpha = None
        key = im.info.get("transparency")
        if isinstance(key, int):  # tRNS of a 16-bit gray PNG: one transparent gray value
            alpha = (values != key).astype(np.float32)
        gray = values.astype(np.float32) / 65535.0
        return Picture(_gray_to_rgb(gray), alpha, gray=True, bits=16, icc_profile=icc)
    if mode == "CMYK":
        im = _cmyk_to_rgb(im, icc)
        icc = None  # now sRGB
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if im.has_transparency_data else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert({"L": "LA", "RGB": "RGBA"}[mode])  # tRNS colour key -> real alpha
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "RGBX":
        im = im.convert("RGB")
    elif mode in ("YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
        icc = None
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageError(f"{path}: unsupported image mode {im.mode}")
    data = np.asarray(im, dtype=np.float32) / 255.0
    if im.mode in ("L", "LA"):
        gray = data if im.mode == "L" else data[:, :, 0]
        alpha = data[:, :, 1].copy() if im.mode == "LA" else None
        return Picture(_gray_to_rgb(gray), alpha, gray=True, bits=8, icc_profile=icc)
    alpha = data[:, :, 3].copy() if im.mode == "RGBA" else None
    return Picture(np.ascontiguousarray(data[:, :, :3]), alpha, gray=False, bits=8, icc_profile=icc)


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """CMYK to sRGB: through the embedded profile when there is one, else Pillow's formula."""
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                im, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if converted is not None:
                return converted
        except Exception:  # a broken or non-CMYK profile: the plain formula is still a usable answer
            pass
    return im.convert("RGB")


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an (H, W, ...) array, as ImageOps.exif_transpose does."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return array.swapaxes(0, 1)[:, ::-1]
    if orientation == 7:
        return array.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return array.swapaxes(0, 1)[::-1]
    return array


def _picture_from_uint16(values: np.ndarray, icc: bytes | None, orientation: int = 1) -> Picture:
    """(H, W, C) uint16 with C in 1..4 (gray, gray+alpha, RGB, RGBA) to a 16-bit Picture."""
    values = np.ascontiguousarray(_orient(values, orientation))
    data = values.astype(np.float32) / 65535.0
    channels = data.shape[2]
    gray = channels <= 2
    colour = _gray_to_rgb(data[:, :, 0]) if gray else np.ascontiguousarray(data[:, :, :3])
    alpha = data[:, :, channels - 1].copy() if channels in (2, 4) else None
    return Picture(colour, alpha, gray=gray, bits=16, icc_profile=icc)


def _tiff_is_16bit_colour(im: Image.Image) -> bool:
    bits = getattr(im, "tag_v2", {}).get(258)  # BitsPerSample
    bits = bits if isinstance(bits, tuple) else (bits,)
    return len(bits) >= 2 and all(b == 16 for b in bits)


def _read_tiff16(path: Path) -> Picture | None:
    """16-bit colour TIFF through tifffile (Pillow keeps only 8 bits); None if unavailable."""
    try:
        import tifffile
    except ImportError:
        return None
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        values = page.asarray()
        orientation = int(page.tags["Orientation"].value) if "Orientation" in page.tags else 1
        icc_tag = page.tags.get("InterColorProfile")
        icc = bytes(icc_tag.value) if icc_tag is not None else None
    if values.dtype != np.uint16 or values.ndim != 3 or values.shape[2] not in (3, 4):
        return None  # planar or exotic layouts: let Pillow's 8-bit reading handle them
    return _picture_from_uint16(values, icc, orientation)


# ----------------------------------------------------------------------------------------------
# 16-bit PNG codec (Pillow reads 16-bit colour PNGs as 8-bit and cannot write them)


def _png_header(path: Path) -> tuple[int, int, int] | None:
    """(bit depth, colour type, interlace) of a PNG file, or None if it is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) < 33 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25], head[28]


def _png_chunks(data: bytes, path: Path) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of every chunk, with CRCs checked, up to IEND."""
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise ImageError(f"{path}: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise ImageError(f"{path}: truncated PNG ({kind.decode('latin-1')} chunk cut off)")
        payload = data[pos + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(kind + payload) != crc:
            raise ImageError(f"{path}: corrupt PNG (bad CRC in {kind.decode('latin-1')} chunk)")
        yield kind, payload
        if kind == b"IEND":
            return
        pos = end + 4


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """PNG Paeth predictor on int16 arrays."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter(rows: np.ndarray, width: int, bpp: int) -> np.ndarray:
    """Undo PNG row filters: (H, 1 + W*bpp) filtered bytes -> (H, W, bpp) raw bytes.

    Every filter predicts a pixel from its left, upper and upper-left neighbours, so all the
    pixels of one anti-diagonal (x + y = d) depend only on earlier diagonals: decoding one
    diagonal per numpy step takes H + W - 1 vectorised steps instead of H * W Python steps.
    """
    height = rows.shape[0]
    kinds = rows[:, 0].astype(np.int16)
    if kinds.size and kinds.max() > 4:
        raise ValueError("invalid PNG filter type")
    raw = rows[:, 1:].reshape(height, width, bpp)
    if not kinds.any():
        return raw.copy()
    # One zero row above and one zero column on the left stand for PNG's "outside is 0".
    out = np.zeros((height + 1, width + 1, bpp), np.uint8)
    for d in range(height + width - 1):
        y = np.arange(max(0, d - width + 1), min(height, d + 1))
        x = d - y
        left = out[y + 1, x].astype(np.int16)
        up = out[y, x + 1].astype(np.int16)
        up_left = out[y, x].astype(np.int16)
        kind = kinds[y, None]
        pred = np.select(
            [kind == 1, kind == 2, kind == 3, kind == 4],
            [left, up, (left + up) >> 1, _paeth(left, up, up_left)],
            0,
        )
        out[y + 1, x + 1] = (raw[y, x] + pred).astype(np.uint8)  # wraps modulo 256 as PNG wants
    return out[1:, 1:]


def _read_png16(path: Path) -> Picture:
    """Decode a 16-bit colour / gray+alpha PNG at full precision (interlaced or not)."""
    data = path.read_bytes()
    width = height = ctype = interlace = 0
    idat: list[bytes] = []
    icc: bytes | None = None
    exif: bytes | None = None
    trns: bytes | None = None
    for kind, payload in _png_chunks(data, path):
        if kind == b"IHDR":
            width, height, _, ctype, _, _, interlace = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat.append(payload)
        elif kind == b"iCCP":
            name_end = payload.index(b"\0")
            icc = zlib.decompress(payload[name_end + 2 :])
        elif kind == b"eXIf":
            exif = payload
        elif kind == b"tRNS":
            trns = payload
    if width == 0 or height == 0:
        raise ImageError(f"{path}: PNG with zero size")
    channels = _PNG_CHANNELS[ctype]
    bpp = 2 * channels
    stream = zlib.decompress(b"".join(idat))
    raw = np.empty((height, width, bpp), np.uint8)
    pos = 0
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    for x0, y0, dx, dy in passes:
        pw, ph = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if pw <= 0 or ph <= 0:
            continue
        size = ph * (1 + pw * bpp)
        if pos + size > len(stream):
            raise ImageError(f"{path}: truncated PNG image data")
        rows = np.frombuffer(stream, np.uint8, count=size, offset=pos).reshape(ph, 1 + pw * bpp)
        raw[y0::dy, x0::dx] = _unfilter(rows, pw, bpp)
        pos += size
    values = raw.view(">u2").reshape(height, width, channels).astype(np.uint16)
    if ctype == 2 and trns is not None and len(trns) == 6:
        # tRNS on a 16-bit RGB PNG: one colour is fully transparent.
        key = np.array(struct.unpack(">HHH", trns), np.uint16)
        alpha = np.where((values == key).all(axis=2), 0, 65535).astype(np.uint16)
        values = np.concatenate([values, alpha[:, :, None]], axis=2)
    orientation = _exif_orientation(exif) if exif else 1
    return _picture_from_uint16(values, icc, orientation)


def _exif_orientation(exif: bytes) -> int:
    """The orientation tag of raw EXIF (TIFF) data, 1 if absent or unreadable."""
    try:
        tags = Image.Exif()
        tags.load(exif)
        value = int(tags.get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not make the image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _filter_rows(raw: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """PNG-filter a block of rows (H, S) uint8, choosing per row the filter with the smallest
    sum of absolute signed residuals (libpng's heuristic). Returns (H, 1 + S) bytes."""
    cur = raw.astype(np.int16)
    up = np.concatenate([previous[None].astype(np.int16), cur[:-1]], axis=0)
    left = np.zeros_like(cur)
    left[:, bpp:] = cur[:, :-bpp]
    up_left = np.zeros_like(cur)
    up_left[:, bpp:] = up[:, :-bpp]
    candidates = np.stack(
        [cur, cur - left, cur - up, cur - ((left + up) >> 1), cur - _paeth(left, up, up_left)]
    ).astype(np.uint8)  # wraps modulo 256
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)
    best = cost.argmin(axis=0)
    chosen = candidates[best, np.arange(len(best))]
    return np.concatenate([best[:, None].astype(np.uint8), chosen], axis=1)


def _write_png16(path: str | Path, values: np.ndarray, icc: bytes | None) -> None:
    """Write (H, W, C) uint16, C in 1..4, as a 16-bit PNG (gray, gray+alpha, RGB, RGBA)."""
    height, width, channels = values.shape
    bpp = 2 * channels
    raw = np.ascontiguousarray(values.astype(">u2")).view(np.uint8).reshape(height, width * bpp)
    header = struct.pack(">IIBBBBB", width, height, 16, _PNG_COLOUR_TYPE[channels], 0, 0, 0)
    compressor = zlib.compressobj(6)
    rows_per_block = max(1, (1 << 21) // max(1, raw.shape[1]))  # bounds the 5 filtered copies
    with open(path, "wb") as f:
        f.write(_PNG_SIGNATURE + _png_chunk(b"IHDR", header))
        if icc:
            f.write(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc)))
        previous = np.zeros(raw.shape[1], np.uint8)
        for start in range(0, height, rows_per_block):
            block = raw[start : start + rows_per_block]
            piece = compressor.compress(_filter_rows(block, previous, bpp).tobytes())
            previous = block[-1]
            if piece:
                f.write(_png_chunk(b"IDAT", piece))
        f.write(_png_chunk(b"IDAT", compressor.flush()))
        f.write(_png_chunk(b"IEND", b""))


# ----------------------------------------------------------------------------------------------
# Tensors and alpha


def to_tensor(picture: Picture) -> torch.Tensor:
    """The network input: (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(picture.rgb)).permute(2, 0, 1)[None].contiguous()


def from_tensor(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor to (H, W, 3) float32, not clipped."""
    if image.dim() == 4:
        image = image[0]
    return image.detach().to("cpu", torch.float32).permute(1, 2, 0).contiguous().numpy()


def resize_alpha(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of an (H, W) float alpha plane in [0, 1] to (height, width), clipped.

    Float data keeps 16-bit alpha exact enough; the clip removes bicubic overshoot at edges.
    """
    plane = Image.fromarray(np.ascontiguousarray(alpha, dtype=np.float32))
    resized = plane.resize((width, height), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Writing


def _quantise(values: np.ndarray, bits: int) -> np.ndarray:
    top = 65535.0 if bits == 16 else 255.0
    scaled = np.rint(np.clip(values, 0.0, 1.0) * top)
    return scaled.astype(np.uint16 if bits == 16 else np.uint8)


def write_image(picture: Picture, path: str | Path, fmt: str | None = None) -> None:
    """Write ``picture`` atomically; the format follows ``path``'s extension unless ``fmt`` is given.

    Gray pictures are written as one channel, 16-bit ones at 16 bits where the format allows
    (PNG, TIFF), alpha where the format stores it (else composited onto white). Raises
    :class:`ImageError` (one line) on failure; the target is never left half-written.
    """
    path = Path(path)
    fmt = (fmt or output_format(path)).upper()
    colour = picture.rgb.mean(axis=2, keepdims=True) if picture.gray else picture.rgb
    alpha = picture.alpha
    if alpha is not None and fmt not in ALPHA_FORMATS:
        colour = colour * alpha[:, :, None] + (1.0 - alpha[:, :, None])  # onto white
        alpha = None
    planes = colour if alpha is None else np.concatenate([colour, alpha[:, :, None]], axis=2)
    icc = picture.icc_profile if fmt in ICC_FORMATS else None
    try:
        if picture.bits == 16 and fmt == "PNG":
            values = _quantise(planes, 16)
            atomic_write(path, lambda tmp: _write_png16(tmp, values, icc))
            return
        if picture.bits == 16 and fmt == "TIFF" and _write_tiff16(path, planes, icc):
            return
        values = _quantise(planes, 8)
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[values.shape[2]]
        im = Image.fromarray(values[:, :, 0] if mode == "L" else values, mode)
        if mode == "LA" and fmt not in GRAY_ALPHA_FORMATS:
            im, icc = im.convert("RGBA"), None  # a gray ICC profile does not fit RGB data
        options: dict[str, object] = dict(SAVE_OPTIONS.get(fmt, {}))
        if icc:
            options["icc_profile"] = icc
        atomic_write(path, lambda tmp: im.save(tmp, format=fmt, **options))
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: cannot write {fmt} ({_one_line(exc)})") from None


def _write_tiff16(path: Path, planes: np.ndarray, icc: bytes | None) -> bool:
    """16-bit TIFF: gray through Pillow, colour through tifffile; False if neither can."""
    values = _quantise(planes, 16)
    if values.shape[2] == 1:
        im = Image.fromarray(values[:, :, 0])  # uint16 2-D -> I;16
        options: dict[str, object] = {"icc_profile": icc} if icc else {}
        atomic_write(path, lambda tmp: im.save(tmp, format="TIFF", **options))
        return True
    try:
        import tifffile
    except ImportError:
        return False
    extra = [("InterColorProfile", 7, len(icc), icc, True)] if icc else []
    photometric = "minisblack" if values.shape[2] == 2 else "rgb"
    extrasamples = (2,) if values.shape[2] in (2, 4) else None  # unassociated alpha

    def write(tmp: str) -> None:
        tifffile.imwrite(
            tmp,
            values,
            photometric=photometric,
            extrasamples=extrasamples,
            extratags=extra,
            compression="zlib",
        )

    atomic_write(path, write)
    return True
