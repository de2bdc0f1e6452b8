"""The standard SR metrics: Y-channel PSNR and SSIM with a cropped border.

This is the protocol of every SR paper's tables (and of BasicSR's ``calculate_psnr`` /
``calculate_ssim`` with ``test_y_channel=True``):

* RGB images are compared on the BT.601 luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``
  on a [0, 255] scale, in float64 and not rounded;
* single-channel images (Set14 "bridge") are compared on their own channel. Passing a gray
  image through YCbCr would rescale it by 219/255 and add about 1.3 dB on that image; the
  papers' bicubic rows only come out with the channel compared as it is;
* the ground truth is cropped top-left to the SR size (LR_h * s, LR_w * s), then ``scale``
  pixels are removed at every border of both images;
* SSIM uses an 11 x 11 Gaussian window (sigma 1.5), K = (0.01, 0.03), L = 255, 'valid'
  filtering, and the mean of the SSIM map.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

__all__ = [
    "gaussian_window",
    "psnr",
    "rgb_to_gray",
    "rgb_to_y",
    "sr_metrics",
    "ssim",
    "to_eval_channel",
]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)
_SSIM_SIZE = 11
_SSIM_SIGMA = 1.5
_SSIM_K = (0.01, 0.03)
_PEAK = 255.0


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 Y (studio range, [16, 235]) of an H x W x 3 RGB image on a [0, 255] scale, float64."""
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {img.shape}")
    return 16.0 + img.astype(np.float64) @ _Y_WEIGHTS / 255.0


def rgb_to_gray(img: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma (0.299 R + 0.587 G + 0.114 B), float64.

    This is ``(Y - 16) * 255 / 219``: for an image with three equal channels it returns that
    channel exactly, so it is the right way to bring a model's RGB output for a grayscale
    input back to the gray scale of the ground truth.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {img.shape}")
    return img.astype(np.float64) @ (_Y_WEIGHTS / 219.0)


def _as_2d_gray(img: np.ndarray) -> bool:
    return img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1)


def to_eval_channel(img: np.ndarray, reference_is_gray: bool | None = None) -> np.ndarray:
    """The float64 H x W channel the protocol compares.

    RGB -> Y; single-channel -> that channel. When ``reference_is_gray`` is true, an RGB image
    (a model's output for a gray input) is mapped to full-range luma instead, to match the
    gray ground truth's scale.
    """
    if _as_2d_gray(img):
        return img.reshape(img.shape[0], img.shape[1]).astype(np.float64)
    if img.ndim == 3 and img.shape[2] == 3:
        return rgb_to_gray(img) if reference_is_gray else rgb_to_y(img)
    raise ValueError(f"expected an H x W, H x W x 1 or H x W x 3 image, got shape {img.shape}")


def _crop(img: np.ndarray, border: int) -> np.ndarray:
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return img
    if img.shape[0] <= 2 * border or img.shape[1] <= 2 * border:
        raise ValueError(f"image {img.shape[:2]} is too small for crop_border {border}")
    return img[border:-border, border:-border]


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int = 0) -> float:
    """PSNR in dB of two same-shape images on a [0, 255] scale, after cropping ``crop_border``.

    Computed on the arrays as given (float64); convert to Y first for the SR protocol
    (see :func:`sr_metrics`). Identical images give ``inf``.
    """
    _check_pair(a, b)
    diff = _crop(a, crop_border).astype(np.float64) - _crop(b, crop_border).astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(_PEAK * _PEAK / mse)


def gaussian_window(size: int = _SSIM_SIZE, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian taps; the SSIM window is their outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """2-D 'valid' correlation with the separable window ``outer(taps, taps)``."""
    half = len(taps) // 2
    out = correlate1d(img, taps, axis=0, mode="nearest")
    out = correlate1d(out, taps, axis=1, mode="nearest")
    # Dropping the border makes the padding mode irrelevant: only 'valid' positions remain.
    return out[half:-half, half:-half]


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    taps = gaussian_window()
    if min(a.shape) < len(taps):
        raise ValueError(f"image {a.shape} is smaller than the {len(taps)}x{len(taps)} SSIM window")
    c1 = (_SSIM_K[0] * _PEAK) ** 2
    c2 = (_SSIM_K[1] * _PEAK) ** 2
    mu_a = _filter_valid(a, taps)
    mu_b = _filter_valid(b, taps)
    var_a = _filter_valid(a * a, taps) - mu_a * mu_a
    var_b = _filter_valid(b * b, taps) - mu_b * mu_b
    cov = _filter_valid(a * b, taps) - mu_a * mu_b
    num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int = 0) -> float:
    """Mean SSIM of two same-shape images on a [0, 255] scale, after cropping ``crop_border``.

    H x W arrays are compared directly; H x W x C arrays give the mean over channels
    (convert to Y first for the SR protocol, see :func:`sr_metrics`).
    """
    _check_pair(a, b)
    a64 = _crop(a, crop_border).astype(np.float64)
    b64 = _crop(b, crop_border).astype(np.float64)
    if a64.ndim == 2:
        return _ssim_2d(a64, b64)
    return float(np.mean([_ssim_2d(a64[..., c], b64[..., c]) for c in range(a64.shape[2])]))


def sr_metrics(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """(PSNR, SSIM) of a super-resolved uint8 image against its ground truth, by the protocol.

    ``sr`` is (LR_h * s) x (LR_w * s); ``hr`` may be larger by less than ``scale`` pixels per
    side (benchmark HR files are not cropped to a multiple of the scale) and is cropped
    top-left to ``sr``'s size. RGB pairs are compared on Y, gray pairs on their channel, and
    an RGB ``sr`` of a gray ``hr`` on full-range luma (see :func:`rgb_to_gray`). ``scale``
    pixels are cropped at every border.
    """
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    h, w = sr.shape[:2]
    if not (h <= hr.shape[0] < h + scale and w <= hr.shape[1] < w + scale):
        raise ValueError(f"SR size {sr.shape[:2]} does not fit HR {hr.shape[:2]} at x{scale}")
    hr_is_gray = _as_2d_gray(hr)
    if not hr_is_gray and _as_2d_gray(sr):
        raise ValueError("SR image is single-channel but the ground truth is RGB")
    y_sr = to_eval_channel(sr, reference_is_gray=hr_is_gray)
    y_hr = to_eval_channel(hr[:h, :w])
    return psnr(y_sr, y_hr, scale), ssim(y_sr, y_hr, scale)
