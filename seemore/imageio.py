"""Reading images for the network and writing its results back.

Every Pillow-readable image becomes a :class:`Picture`: its decoded 8/16-bit samples (1-6
bytes per pixel), converted on demand to float32 RGB in [0, 1] (what the network eats) a
window at a time (:meth:`Picture.crop_tensor`), an optional separate alpha plane, and what is
needed to write the result in the same kind of file it came from (gray or colour, 8 or 16
bits, ICC profile).

* EXIF orientation is applied on reading, so outputs are upright and carry no orientation tag.
* Gray (``1``, ``L``, ``LA``, ``I;16``): the network sees three equal channels; the result is
  averaged back to one channel (the mean is the least-squares inverse of the replication).
* Palette images (``P``, ``PA``, with or without transparency) are expanded to RGB(A) and
  written as RGB(A): the upscaled picture has new colours, so re-quantising would only add error.
* CMYK is converted to sRGB through its ICC profile when it has one (LittleCMS), else with
  Pillow's plain formula.
* 16-bit PNG and TIFF keep 16 bits in and out. Pillow reduces 16-bit *colour* PNGs to 8 bits
  on reading and cannot write them, so a small PNG codec lives here (it reads bit depth 16,
  and writes every PNG, 8 or 16 bits, band by band); 16-bit colour TIFFs go through
  ``tifffile`` (a scikit-image dependency) when it is installed.
* Alpha is resized with Pillow's bicubic filter on float data, not by the network: SR networks
  are trained on natural RGB photographs and have never seen mask statistics, while masks are
  mostly flat with hard edges, where a plain high-quality resize is the standard answer and is
  exact on flat regions. Colour is upscaled straight (not premultiplied), as stored. For a
  streamed output it is resized band by band, bit-identical to the whole-plane resize
  (:class:`AlphaRows`; x3 resizes the whole plane once, 4 bytes per output pixel).
* Multi-frame files (animated GIF/PNG/WebP, multi-page TIFF) are refused with a one-line
  error naming the frame count: upscaling only the first frame would silently drop the rest.
  MPO (JPEG with a preview or depth picture after the main one, as phones write) is read as
  its main picture, the one every viewer shows, and a layered PSD as its merged image.

Output format follows the output file's extension (PNG when it has none). Formats that cannot
store alpha (JPEG, ...) get the picture composited onto white; 16 bits are kept for PNG and
TIFF only. :func:`write_upscaled` writes a result that arrives as row bands: PNG is encoded
band by band (memory bounded by the band, whatever the image size); every other format's
encoder needs the whole image, so the quantised image (uint8/uint16: 3-8 bytes per pixel) is
assembled from the bands first. Anything that goes wrong raises :class:`ImageError` with a
one-line message that names the file; nothing is ever left half-written.
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps

from seemore.common.files import atomic_write, probe_writable

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
# Formats whose extra "frames" are not more pictures but parts of the one read: MPO's previews
# or depth maps after the main picture, PSD's layers (what is read is their merged image).
_FIRST_FRAME_FORMATS = frozenset({"MPO", "PSD"})
# Rows per piece when a band is converted and quantised: bounds the float temporaries to
# about this many bytes whatever the band height (12 bytes per float RGB pixel).
_CHUNK_BYTES = 16 << 20
# Source rows Pillow's bicubic filter reads beyond a band: its support is 2 rows, and it rounds
# the window's ends to whole rows.
_ALPHA_CONTEXT = 3


class ImageError(ValueError):
    """An image that cannot be read or written; the message is one line and names the file."""


@dataclass
class Picture:
    """An image ready for the network, plus what is needed to write its result back.

    ``samples`` are kept as decoded, (H, W, 3) colour or (H, W, 1) gray, uint8 or uint16 (or
    float32 in [0, 1], e.g. a network result; gray float samples may also be (H, W, 3) with
    equal channels). :attr:`rgb` and :meth:`crop_tensor` convert to float32 in [0, 1] on
    demand: keeping the samples compact keeps a large input at 1-6 bytes per pixel instead of 12.
    """

    samples: np.ndarray
    alpha: np.ndarray | None = None  # (H, W) float32 in [0, 1]
    gray: bool = False  # one colour channel in the source: written back as L / LA / 16-bit gray
    bits: int = 8  # 8 or 16: the precision the source had and the result is written with
    icc_profile: bytes | None = None  # colour profile of the source's colour space, if any

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.samples.shape[0])

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.samples.shape[1])

    @property
    def mode(self) -> str:
        """Pillow-style description: L, LA, RGB or RGBA, with ``;16`` for 16-bit pictures."""
        base = ("L" if self.gray else "RGB") + ("A" if self.alpha is not None else "")
        return base + (";16" if self.bits == 16 else "")

    @property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) float32 in [0, 1]; gray pictures repeat one channel three times. Computed
        on every access (a new array unless the samples already are float RGB)."""
        return self.crop_rgb(0, self.height, 0, self.width)

    def crop_rgb(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """Rows [top, bottom) and columns [left, right) as (h, w, 3) float32 in [0, 1]."""
        values = _unit_float(self.samples[top:bottom, left:right])
        return values if values.shape[2] == 3 else np.repeat(values, 3, axis=2)

    def crop_tensor(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        """A window as the network's input, (1, 3, h, w) float32 (what :mod:`seemore.tiling` reads)."""
        window = self.crop_rgb(top, bottom, left, right)
        return torch.from_numpy(window).permute(2, 0, 1)[None].contiguous()


def _unit_float(samples: np.ndarray) -> np.ndarray:
    """8/16-bit samples to float32 in [0, 1] (float samples as they are).

    The same operations as a whole-image conversion, so a crop converts to exactly the values
    the whole image would have.
    """
    if samples.dtype == np.uint8:
        return samples.astype(np.float32) / 255.0
    if samples.dtype == np.uint16:
        return samples.astype(np.float32) / 65535.0
    if samples.dtype != np.float32:
        raise TypeError(f"picture samples must be uint8, uint16 or float32, not {samples.dtype}")
    return samples


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
            if im.format not in _FIRST_FRAME_FORMATS:
                _check_single_frame(int(getattr(im, "n_frames", 1)), path)
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


def _check_single_frame(frames: int, path: Path) -> None:
    """Refuse animations and multi-page files: only their first frame would be upscaled."""
    if frames > 1:
        raise ImageError(
            f"{path}: has {frames} frames (an animation or a multi-page file); seemore-upscale takes "
            f"single images: extract the frames first, e.g. ffmpeg -i {path.name} frame_%04d.png "
            "(or magick, for TIFF pages), then upscale the folder of frames"
        )


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
        gray = values.astype(np.uint16)[:, :, None]
        return Picture(gray, alpha, gray=True, bits=16, icc_profile=icc)
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
    data = np.asarray(im)  # uint8; kept as it is, converted to float a window at a time
    if im.mode == "L":
        return Picture(data[:, :, None], None, gray=True, bits=8, icc_profile=icc)
    if im.mode == "LA":
        gray = np.ascontiguousarray(data[:, :, :1])
        return Picture(gray, _unit_float(data[:, :, 1]), gray=True, bits=8, icc_profile=icc)
    alpha = _unit_float(data[:, :, 3]) if im.mode == "RGBA" else None
    rgb = data if im.mode == "RGB" else np.ascontiguousarray(data[:, :, :3])
    return Picture(rgb, alpha, gray=False, bits=8, icc_profile=icc)


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
    values = _orient(values, orientation)
    channels = values.shape[2]
    gray = channels <= 2
    colour = np.ascontiguousarray(values[:, :, :1] if gray else values[:, :, :3], dtype=np.uint16)
    alpha = None
    if channels in (2, 4):
        alpha = _unit_float(np.ascontiguousarray(values[:, :, channels - 1], dtype=np.uint16))
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
        _check_single_frame(len(tif.pages), path)
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
        elif kind == b"acTL":  # APNG: frame count first
            _check_single_frame(struct.unpack(">I", payload[:4])[0], path)
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
    sum of absolute signed residuals (libpng's heuristic). Returns (H, 1 + S) bytes.

    Residuals are taken in uint8, which wraps modulo 256 as PNG wants; only the Paeth choice
    and the average need wider integers. (Every PNG output goes through here, so it is kept
    lean: about half the time of an all-int16 version.)
    """
    up = np.concatenate([previous[None], raw[:-1]], axis=0)
    left = np.zeros_like(raw)
    left[:, bpp:] = raw[:, :-bpp]
    up_left = np.zeros_like(raw)
    up_left[:, bpp:] = up[:, :-bpp]
    a, b, c = left.astype(np.int16), up.astype(np.int16), up_left.astype(np.int16)
    # Paeth: p = a + b - c, so p - a = b - c, p - b = a - c and p - c = (b - c) + (a - c).
    pa, pb = b - c, a - c
    pc = np.abs(pa + pb)
    pa, pb = np.abs(pa), np.abs(pb)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    average = ((a + b) >> 1).astype(np.uint8)
    candidates = np.stack([raw, raw - left, raw - up, raw - average, raw - paeth])
    # |signed byte| as uint8: abs(-128) stays -128 in int8, which reads back as 128.
    cost = np.abs(candidates.view(np.int8)).view(np.uint8).sum(axis=2, dtype=np.uint32)
    best = cost.argmin(axis=0)
    chosen = candidates[best, np.arange(len(best))]
    return np.concatenate([best[:, None].astype(np.uint8), chosen], axis=1)


class _PngEncoder:
    """A PNG written band by band: signature, IHDR (+ iCCP), IDAT chunks of one zlib stream, IEND.

    8- or 16-bit gray, gray + alpha, RGB or RGBA, not interlaced. Every row gets its own filter
    (:func:`_filter_rows`); the row above a band is carried over, so how the rows are split
    into bands changes nothing in the pixels. Memory is the band being encoded.
    """

    def __init__(
        self, f: BinaryIO, height: int, width: int, channels: int, bits: int, icc: bytes | None
    ) -> None:
        if bits not in (8, 16) or channels not in _PNG_COLOUR_TYPE:
            raise ValueError(f"cannot encode {channels} channels of {bits} bits as PNG")
        self.f, self.height, self.width, self.channels, self.bits = f, height, width, channels, bits
        self.bpp = channels * bits // 8
        self.rows = 0
        self.previous = np.zeros(width * self.bpp, np.uint8)  # PNG's "row above the first": zeros
        self.compressor = zlib.compressobj(6)
        header = struct.pack(">IIBBBBB", width, height, bits, _PNG_COLOUR_TYPE[channels], 0, 0, 0)
        f.write(_PNG_SIGNATURE + _png_chunk(b"IHDR", header))
        if icc:
            f.write(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc)))

    def write(self, values: np.ndarray) -> None:
        """Append rows: (rows, width, channels) uint8 for 8 bits, uint16 for 16 bits."""
        dtype = np.uint16 if self.bits == 16 else np.uint8
        if values.ndim != 3 or values.shape[1:] != (self.width, self.channels) or values.dtype != dtype:
            raise ValueError(
                f"PNG rows must be (n, {self.width}, {self.channels}) {np.dtype(dtype)}, "
                f"got {values.shape} {values.dtype}"
            )
        if self.rows + values.shape[0] > self.height:
            raise ValueError(f"more than the {self.height} rows of the PNG header")
        samples = values.astype(">u2") if self.bits == 16 else values  # PNG is big-endian
        raw = np.ascontiguousarray(samples).view(np.uint8).reshape(values.shape[0], self.width * self.bpp)
        rows_per_block = max(1, (1 << 21) // max(1, raw.shape[1]))  # bounds the 5 filtered copies
        for start in range(0, raw.shape[0], rows_per_block):
            block = raw[start : start + rows_per_block]
            piece = self.compressor.compress(_filter_rows(block, self.previous, self.bpp).tobytes())
            self.previous = block[-1].copy()
            if piece:
                self.f.write(_png_chunk(b"IDAT", piece))
        self.rows += values.shape[0]

    def close(self) -> None:
        """End the stream; every row of the header must have been written."""
        if self.rows != self.height:
            raise ValueError(f"got {self.rows} of the {self.height} rows of the PNG header")
        self.f.write(_png_chunk(b"IDAT", self.compressor.flush()))
        self.f.write(_png_chunk(b"IEND", b""))


def _write_png(path: str | Path, height: int, width: int, channels: int, bits: int,
               icc: bytes | None, rows: Iterable[np.ndarray]) -> None:
    """Write ``rows`` (bands of (n, width, channels) samples, top to bottom) as a PNG at ``path``."""
    with open(path, "wb") as f:
        encoder = _PngEncoder(f, height, width, channels, bits, icc)
        for band in rows:
            encoder.write(band)
        encoder.close()


def _write_png16(path: str | Path, values: np.ndarray, icc: bytes | None) -> None:
    """Write (H, W, C) uint16, C in 1..4, as a 16-bit PNG (gray, gray+alpha, RGB, RGBA)."""
    height, width, channels = values.shape
    _write_png(path, height, width, channels, 16, icc, [values.astype(np.uint16, copy=False)])


# ----------------------------------------------------------------------------------------------
# Tensors and alpha


def to_tensor(picture: Picture) -> torch.Tensor:
    """The network input: (1, 3, H, W) float32 in [0, 1]."""
    return picture.crop_tensor(0, picture.height, 0, picture.width)


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


class AlphaRows:
    """Rows of ``resize_alpha(alpha, height, width)`` on request, without resizing the whole plane.

    Rows [top, bottom) come from resizing only the source rows they depend on (plus Pillow's
    filter reach, :data:`_ALPHA_CONTEXT`) to that many rows times the scale. For a power-of-two
    scale this is bit-identical to the whole-plane resize: Pillow's filter centres (y + 0.5) / s
    are then exact binary fractions, so shifting the origin by whole source rows changes no
    weight. For other scales (x3) the centres round differently after the shift (float32 ulps),
    so the whole plane is resized once instead, on the first request: 4 bytes per output pixel.
    """

    def __init__(self, alpha: np.ndarray, height: int, width: int) -> None:
        self.alpha = np.ascontiguousarray(alpha, dtype=np.float32)
        self.height, self.width = height, width
        src_h, src_w = self.alpha.shape
        scale = height // src_h if src_h else 0
        exact = scale >= 1 and scale * src_h == height and scale * src_w == width and scale & (scale - 1) == 0
        self.scale: int | None = scale if exact else None
        self._whole: np.ndarray | None = None

    @property
    def streamed(self) -> bool:
        """True when rows are resized band by band (a power-of-two integer scale)."""
        return self.scale is not None

    def rows(self, top: int, bottom: int) -> np.ndarray:
        """Output rows [top, bottom) of the resized plane, (bottom - top, width) float32, clipped."""
        if self.scale is None:
            if self._whole is None:
                self._whole = resize_alpha(self.alpha, self.height, self.width)
            return self._whole[top:bottom]
        s = self.scale
        first = max(0, top // s - _ALPHA_CONTEXT)
        stop = min(self.alpha.shape[0], -(-bottom // s) + _ALPHA_CONTEXT)
        part = resize_alpha(self.alpha[first:stop], (stop - first) * s, self.width)
        return part[top - first * s : bottom - first * s]


# ----------------------------------------------------------------------------------------------
# Writing


def _quantise(values: np.ndarray, bits: int) -> np.ndarray:
    top = 65535.0 if bits == 16 else 255.0
    scaled = np.rint(np.clip(values, 0.0, 1.0) * top)
    return scaled.astype(np.uint16 if bits == 16 else np.uint8)


def check_writable(path: str | Path) -> None:
    """Make sure ``path`` can be written before any work is spent on it; creates its folder.

    Raises :class:`ImageError` (one line) when the folder cannot be created (a file is in the
    way, no permission), ``path`` is a folder, or no file can be created in the folder (tried
    with a temporary of :func:`seemore.common.files.atomic_write`'s naming, removed at once).
    """
    path = Path(path)
    folder = path.parent
    existing = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), None)
    if existing is not None and not existing.is_dir():
        raise ImageError(f"{path}: cannot create folder {folder}: {existing} is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"{path}: cannot create folder {folder} ({exc.strerror or _one_line(exc)})") from None
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    try:
        probe_writable(path)
    except OSError as exc:
        reason = exc.strerror or _one_line(exc)
        raise ImageError(f"{path}: cannot write in folder {folder} ({reason})") from None


@dataclass(frozen=True)
class _Output:
    """How a picture is stored in its output file."""

    fmt: str  # Pillow format name
    height: int
    width: int
    gray: bool  # one colour channel
    alpha: bool  # an alpha channel is written
    composite: bool  # the source's alpha is flattened onto white (format without alpha)
    bits: int  # 8 or 16 bits per stored sample
    icc: bytes | None

    @property
    def channels(self) -> int:
        """Stored channels: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)."""
        return (1 if self.gray else 3) + (1 if self.alpha else 0)


def _have_tifffile() -> bool:
    return importlib.util.find_spec("tifffile") is not None


def _plan_output(
    fmt: str, height: int, width: int, gray: bool, bits: int, has_alpha: bool, icc: bytes | None
) -> _Output:
    """Channels and precision of the output file (see the module docstring)."""
    composite = has_alpha and fmt not in ALPHA_FORMATS
    alpha = has_alpha and not composite
    channels = (1 if gray else 3) + (1 if alpha else 0)
    # 16 bits: PNG always; TIFF gray through Pillow, colour only through tifffile.
    wide = bits == 16 and (fmt == "PNG" or (fmt == "TIFF" and (channels == 1 or _have_tifffile())))
    return _Output(fmt, height, width, gray, alpha, composite, 16 if wide else 8,
                   icc if fmt in ICC_FORMATS else None)


def _stored(rgb: np.ndarray, alpha: np.ndarray | None, out: _Output) -> np.ndarray:
    """Float (rows, W, 3) colour and (rows, W) alpha to the quantised samples of the file."""
    colour = rgb.mean(axis=2, keepdims=True) if out.gray else rgb
    if alpha is not None and out.composite:
        colour = colour * alpha[:, :, None] + (1.0 - alpha[:, :, None])  # onto white
        alpha = None
    planes = colour if alpha is None else np.concatenate([colour, alpha[:, :, None]], axis=2)
    return _quantise(planes, out.bits)


class _BandFailed(Exception):
    """An exception of the code producing the bands (the network), carried past the writer's
    error wrapping so that it is not reported as a write failure."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _producer(bands: Iterable[object]) -> Iterator[object]:
    """``bands``, with their own exceptions wrapped in :class:`_BandFailed` (Ctrl-C passes as is)."""
    iterator = iter(bands)
    while True:
        try:
            band = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise _BandFailed(exc) from exc
        yield band
        del band  # not kept alive while the next band is computed


def _chunk_rows(width: int) -> int:
    """Rows converted at a time: :data:`_CHUNK_BYTES` of float RGB."""
    return max(1, _CHUNK_BYTES // (12 * max(1, width)))


def _band_size(band: torch.Tensor | Picture) -> tuple[int, int]:
    """(rows, columns) of a colour band."""
    if isinstance(band, torch.Tensor):
        return int(band.shape[2]), int(band.shape[3])
    return band.height, band.width


def _stored_chunks(
    bands: Iterable[torch.Tensor | Picture], alpha: AlphaRows | np.ndarray | None, out: _Output
) -> Iterator[np.ndarray]:
    """Quantised samples of the file, a few rows at a time, from colour bands top to bottom.

    ``bands`` are (1, 3, rows, W) tensors or whole pictures (their colour, converted to float
    piece by piece); ``alpha`` is the full alpha plane or an :class:`AlphaRows` that resizes it
    on request. Every piece is converted with the same elementwise operations as a whole image
    would be, so the samples are the same.
    """
    step = _chunk_rows(out.width)
    top = 0
    for band in _producer(bands):
        rows, width = _band_size(band)
        if width != out.width or top + rows > out.height:
            raise ValueError(f"a band of {rows}x{width} does not fit at row {top} of {out.height}x{out.width}")
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            if isinstance(band, torch.Tensor):
                rgb = from_tensor(band[:, :, start:stop])
            else:
                rgb = band.crop_rgb(start, stop, 0, width)
            a: np.ndarray | None = None
            if isinstance(alpha, AlphaRows):
                a = alpha.rows(top + start, top + stop)
            elif alpha is not None:
                a = alpha[top + start : top + stop]
            yield _stored(rgb, a, out)
        top += rows
        del band  # the tiler frees the buffer under it while computing the next band
    if top != out.height:
        raise ValueError(f"the bands cover {top} of {out.height} rows")


def _assemble(chunks: Iterable[np.ndarray], out: _Output) -> np.ndarray:
    """The whole quantised image from its pieces (for encoders that need it all at once)."""
    values = np.empty((out.height, out.width, out.channels), np.uint16 if out.bits == 16 else np.uint8)
    row = 0
    for chunk in chunks:
        values[row : row + chunk.shape[0]] = chunk
        row += chunk.shape[0]
    return values


def _write(path: Path, out: _Output, chunks: Iterator[np.ndarray]) -> None:
    """Encode the quantised pieces into ``path`` atomically; :class:`ImageError` on failure.

    PNG is encoded piece by piece into the temporary file. Other formats need the whole image:
    it is assembled (3-8 bytes per pixel) before the temporary file is even created.
    """
    try:
        if out.fmt == "PNG":
            shape = (out.height, out.width, out.channels, out.bits)
            atomic_write(path, lambda tmp: _write_png(tmp, *shape, out.icc, chunks))
            return
        values = _assemble(chunks, out)
        if out.bits == 16:  # TIFF (see _plan_output)
            _write_tiff16(path, values, out.icc)
            return
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[values.shape[2]]
        im = Image.fromarray(values[:, :, 0] if mode == "L" else values, mode)
        icc = out.icc
        if mode == "LA" and out.fmt not in GRAY_ALPHA_FORMATS:
            im, icc = im.convert("RGBA"), None  # a gray ICC profile does not fit RGB data
        options: dict[str, object] = dict(SAVE_OPTIONS.get(out.fmt, {}))
        if icc:
            options["icc_profile"] = icc
        atomic_write(path, lambda tmp: im.save(tmp, format=out.fmt, **options))
    except _BandFailed as failed:
        raise failed.error from None  # the network's error, not the writer's
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: cannot write {out.fmt} ({_one_line(exc)})") from None


def write_image(picture: Picture, path: str | Path, fmt: str | None = None) -> None:
    """Write ``picture`` atomically; the format follows ``path``'s extension unless ``fmt`` is given.

    Gray pictures are written as one channel, 16-bit ones at 16 bits where the format allows
    (PNG, TIFF), alpha where the format stores it (else composited onto white). Raises
    :class:`ImageError` (one line) on failure; the target is never left half-written.
    """
    path = Path(path)
    fmt = (fmt or output_format(path)).upper()
    out = _plan_output(fmt, picture.height, picture.width, picture.gray, picture.bits,
                       picture.alpha is not None, picture.icc_profile)
    _write(path, out, _stored_chunks([picture], picture.alpha, out))


def write_upscaled(
    path: str | Path,
    bands: Iterable[torch.Tensor],
    source: Picture,
    scale: int,
    fmt: str | None = None,
) -> None:
    """Write the ``scale`` x upscaled ``source`` whose colour arrives as row bands, top to bottom.

    ``bands`` are (1, 3, rows, W * scale) float tensors (e.g. :func:`seemore.tiling.upscale_rows`);
    they are consumed while the file is written, so the computation runs inside this call.
    The alpha plane is resized bicubically band by band (:class:`AlphaRows`). The pixels are
    those :func:`write_image` writes for the whole upscaled picture. PNG is written band by band;
    other formats assemble the quantised image first (3-8 bytes per output pixel). Errors of the
    band producer propagate as they are; writing errors raise :class:`ImageError`; Ctrl-C and
    any other failure remove the temporary file.
    """
    path = Path(path)
    fmt = (fmt or output_format(path)).upper()
    height, width = source.height * scale, source.width * scale
    out = _plan_output(fmt, height, width, source.gray, source.bits, source.alpha is not None,
                       source.icc_profile)
    alpha = None if source.alpha is None else AlphaRows(source.alpha, height, width)
    _write(path, out, _stored_chunks(bands, alpha, out))


def _write_tiff16(path: Path, values: np.ndarray, icc: bytes | None) -> None:
    """16-bit TIFF of (H, W, C) uint16: gray through Pillow, colour (and gray + alpha) through tifffile."""
    if values.shape[2] == 1:
        im = Image.fromarray(values[:, :, 0])  # uint16 2-D -> I;16
        options: dict[str, object] = {"icc_profile": icc} if icc else {}
        atomic_write(path, lambda tmp: im.save(tmp, format="TIFF", **options))
        return
    import tifffile

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
