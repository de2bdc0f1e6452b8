"""MATLAB-compatible bicubic ``imresize``.

Every SR benchmark's LR images were made with MATLAB's ``imresize(img, 1/s, 'bicubic')``,
and the "Bicubic" rows of SR papers upsample with the same function, so training data and
evaluation must use its exact behaviour rather than PIL's or OpenCV's bicubic:

* cubic convolution kernel with a = -0.5 (Keys), support 4;
* on downscale (scale < 1) the kernel is stretched by 1/scale and scaled by scale, which
  low-pass filters the input (MATLAB's default ``'Antialiasing', true``);
* output pixel ``x`` (1-based) samples the input at ``u = x / scale + 0.5 * (1 - 1 / scale)``;
* taps that fall outside the image are mirrored back symmetrically (``... 2 1 1 2 ...``);
* the weights of each output pixel are normalised to sum to one;
* output length ``ceil(in * scale)``;
* separable: the dimension with the smaller scale goes first (rows first on ties), and for
  uint8 images the intermediate result is rounded back to uint8 as MATLAB's mex does;
* uint8 results round half away from zero and saturate to [0, 255].

Each 1-D pass is a product with a sparse (out x in) weight matrix, so resizing costs
O(pixels * taps) and the matrices are cached per (in, out, scale).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

__all__ = ["cubic", "imresize", "output_size", "resize_matrix"]

# MATLAB's bicubic kernel support (in input pixels at scale 1).
_KERNEL_WIDTH = 4.0


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def output_size(in_size: int, scale: float) -> int:
    """MATLAB's output length ``ceil(in_size * scale)``.

    The product is rounded to 9 decimals first: ``1/3`` is not exact in binary, and
    ``510 * (1/3)`` must give 170 as in MATLAB, not 171.
    """
    return int(math.ceil(round(in_size * scale, 9)))


@lru_cache(maxsize=256)
def resize_matrix(in_size: int, out_size: int, scale: float, antialias: bool = True) -> sp.csr_matrix:
    """Sparse (out_size x in_size) float64 matrix of one 1-D MATLAB bicubic resize."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got in={in_size}, out={out_size}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    shrink = scale < 1 and antialias
    width = _KERNEL_WIDTH / scale if shrink else _KERNEL_WIDTH
    x = np.arange(1, out_size + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # input position, 1-based
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based taps
    dist = u[:, None] - idx
    weights = scale * cubic(scale * dist) if shrink else cubic(dist)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding: index i maps into the sequence 1..n, n..1 repeated.
    period = 2 * in_size
    m = np.mod(idx.astype(np.int64) - 1, period)
    cols = np.where(m < in_size, m, period - 1 - m)
    rows = np.repeat(np.arange(out_size), taps)
    # Duplicate (row, col) pairs from mirrored taps are summed by the CSR conversion.
    mat = sp.coo_matrix((weights.ravel(), (rows, cols.ravel())), shape=(out_size, in_size)).tocsr()
    mat.sum_duplicates()
    return mat


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's double -> uint8 conversion: round half away from zero, saturate."""
    # Values are clipped at 0 first, so floor(x + 0.5) is round-half-away-from-zero.
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def _resize_axis(img: np.ndarray, axis: int, mat: sp.csr_matrix) -> np.ndarray:
    """Apply ``mat`` along ``axis`` (0 = rows, 1 = columns) of a float H x W x C array."""
    moved = np.moveaxis(img, axis, 0)
    flat = np.ascontiguousarray(moved).reshape(moved.shape[0], -1)
    out = np.asarray(mat.astype(flat.dtype, copy=False) @ flat)
    out = out.reshape((mat.shape[0],) + moved.shape[1:])
    return np.moveaxis(out, 0, axis)


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """Resize an H x W or H x W x C image like MATLAB's ``imresize(img, scale, 'bicubic')``.

    Give ``scale`` (both axes), ``output_shape`` ``(out_h, out_w)``, or both (then the
    scale drives the kernel and the shape only fixes the length, as in MATLAB). With only a
    shape, each axis uses ``out / in`` as its scale. uint8 in -> uint8 out (MATLAB rounding);
    float in -> same float dtype out, unclipped (float16 is computed in float32).
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C array, got shape {img.shape}")
    if scale is None and output_shape is None:
        raise ValueError("give scale, output_shape or both")
    in_hw = img.shape[:2]
    if output_shape is not None:
        out_hw = (int(output_shape[0]), int(output_shape[1]))
        if scale is not None:
            scales = (float(scale), float(scale))
        else:
            scales = (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])
    else:
        assert scale is not None
        scales = (float(scale), float(scale))
        out_hw = (output_size(in_hw[0], scales[0]), output_size(in_hw[1], scales[1]))
    if min(out_hw) < 1 or min(scales) <= 0:
        raise ValueError(f"cannot resize {in_hw} to {out_hw} (scale {scale})")

    is_uint8 = img.dtype == np.uint8
    if is_uint8:
        work = img.astype(np.float64)
    elif np.issubdtype(img.dtype, np.floating):
        work = img.astype(np.float32) if img.dtype == np.float16 else img
    else:
        raise ValueError(f"unsupported dtype {img.dtype}; use uint8 or a float type")

    squeeze = work.ndim == 2
    if squeeze:
        work = work[:, :, None]
    # MATLAB resizes the axis with the smallest scale first (fewer pixels for the second
    # pass when shrinking); a stable sort keeps rows first on ties.
    order = sorted((0, 1), key=lambda a: scales[a])
    for axis in order:
        if out_hw[axis] == in_hw[axis] and scales[axis] == 1.0:
            continue  # MATLAB skips axes whose scale is exactly one
        mat = resize_matrix(in_hw[axis], out_hw[axis], scales[axis], antialias)
        work = _resize_axis(work, axis, mat)
        if is_uint8:
            # MATLAB's mex returns the input class after each pass.
            work = _round_uint8(work).astype(np.float64)
    if squeeze:
        work = work[:, :, 0]
    if is_uint8:
        return work.astype(np.uint8)
    return np.ascontiguousarray(work).astype(img.dtype, copy=False)
