"""MATLAB-style imresize and the SR metrics (Y channel, PSNR, SSIM, the whole protocol)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from seemore.imresize import _round_uint8, cubic, imresize, output_size, resize_matrix
from seemore.metrics import gaussian_window, psnr, rgb_to_gray, rgb_to_y, sr_metrics, ssim
from seemore.paths import resolve_data_root

DATA = resolve_data_root()
BENCH = DATA / "benchmark" if DATA is not None else None
needs_benchmark = pytest.mark.skipif(
    BENCH is None or not (BENCH / "Set5").is_dir() or not (BENCH / "Set14").is_dir(),
    reason="benchmark data (Set5/Set14) not found",
)


# ----------------------------------------------------------------------------- imresize


def test_cubic_kernel_values() -> None:
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5, -1.5])
    # Keys a = -0.5: 1.5|x|^3 - 2.5|x|^2 + 1 on [0, 1], -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 on (1, 2].
    np.testing.assert_allclose(cubic(x), [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625, -0.0625])


def test_output_size_is_ceil_and_robust_to_thirds() -> None:
    assert output_size(510, 1 / 3) == 170  # 510 * (1/3) is not exactly 170 in binary
    assert output_size(511, 1 / 3) == 171
    assert output_size(5, 0.5) == 3
    assert output_size(57, 4) == 228


def test_upscale_x2_weights_by_hand() -> None:
    # x2: output pixel 1 samples u = 1/2 + 0.25 = 0.75 (1-based). Taps at input positions
    # -1, 0, 1, 2 are 1.75, 0.75, 0.25, 1.25 away: cubic = -0.0234375, 0.2265625, 0.8671875,
    # -0.0703125 (sum 1). Symmetric padding maps position 0 -> 1 and -1 -> 2, so
    # pixel 1 gets 0.2265625 + 0.8671875 and pixel 2 gets -0.0234375 - 0.0703125.
    w = resize_matrix(8, 16, 2.0).toarray()
    np.testing.assert_allclose(w[0], [1.09375, -0.09375, 0, 0, 0, 0, 0, 0], atol=1e-15)
    # Interior output pixel 6 (u = 3.25): taps 2..5 at 1.25, 0.25, 0.75, 1.75.
    np.testing.assert_allclose(w[5, 1:5], [-0.0703125, 0.8671875, 0.2265625, -0.0234375], atol=1e-15)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_downscale_is_antialiased_and_normalised() -> None:
    w = resize_matrix(32, 8, 0.25).toarray()
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    # Kernel widened by 1/scale: an interior output pixel reads 4 * 4 + ... = about 16 inputs.
    assert (np.abs(w[4]) > 0).sum() >= 15
    # Without antialiasing only the 4-tap cubic remains.
    assert (np.abs(resize_matrix(32, 8, 0.25, antialias=False).toarray()[4]) > 0).sum() <= 4


def test_constant_and_linear_images_are_preserved() -> None:
    const = np.full((12, 10, 3), 77, dtype=np.uint8)
    assert np.array_equal(imresize(const, 3), np.full((36, 30, 3), 77, dtype=np.uint8))
    assert np.array_equal(imresize(const, 1 / 2), np.full((6, 5, 3), 77, dtype=np.uint8))
    # Cubic convolution reproduces linear ramps exactly away from the borders.
    ramp = np.tile(np.arange(20, dtype=np.float64), (20, 1))
    up = imresize(ramp, 2)
    u = (np.arange(1, 41) / 2 + 0.25) - 1  # 0-based sample positions
    np.testing.assert_allclose(up[10, 6:-6], u[6:-6], atol=1e-12)


def test_round_half_away_from_zero_and_saturate() -> None:
    x = np.array([0.5, 1.5, 2.5, 2.4999, -3.0, -0.5, 254.5, 255.6, 300.0])
    assert _round_uint8(x).tolist() == [1, 2, 3, 2, 0, 0, 255, 255, 255]


def test_dtypes_and_shapes() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    out = imresize(img, 4)
    assert out.dtype == np.uint8 and out.shape == (68, 92, 3)
    f32 = imresize(img.astype(np.float32), 4)
    assert f32.dtype == np.float32 and f32.shape == (68, 92, 3)
    assert f32.min() < 0 or f32.max() > 255  # overshoot is kept for float input (no clipping)
    f64 = imresize(img.astype(np.float64) / 255, 1 / 2)
    assert f64.dtype == np.float64 and f64.shape == (9, 12, 3)
    # Gray H x W equals each channel resized alone.
    assert np.array_equal(imresize(img[:, :, 1], 3), imresize(img, 3)[:, :, 1])
    # Explicit output size.
    assert imresize(img, output_shape=(10, 40)).shape == (10, 40, 3)
    with pytest.raises(ValueError):
        imresize(img)
    with pytest.raises(ValueError):
        imresize(img.astype(np.int32), 2)


@needs_benchmark
@pytest.mark.parametrize("set_name", ["Set5", "Set14"])
def test_imresize_reproduces_benchmark_lr_files(set_name: str) -> None:
    """HR cropped to a multiple of s, then imresize(., 1/s) gives the distributed LR files."""
    assert BENCH is not None
    equal = total = 0
    max_diff = 0
    for hr_path in sorted((BENCH / set_name / "HR").glob("*.png")):
        hr = np.asarray(Image.open(hr_path))
        for s in (2, 3, 4):
            lr = np.asarray(Image.open(BENCH / set_name / "LR_bicubic" / f"X{s}" / f"{hr_path.stem}x{s}.png"))
            h, w = hr.shape[:2]
            ours = imresize(hr[: h - h % s, : w - w % s], 1 / s)
            assert ours.shape == lr.shape, hr_path.name
            equal += int((ours == lr).sum())
            total += lr.size
            max_diff = max(max_diff, int(np.abs(ours.astype(int) - lr).max()))
    # Measured: every pixel equal (share 1.0, max |diff| 0) on Set5 and Set14 at x2, x3, x4.
    assert max_diff == 0, f"{set_name}: max |diff| {max_diff}, {equal / total:.5f} equal"


# ----------------------------------------------------------------------------- metrics


def test_rgb_to_y_by_hand() -> None:
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(img)[0], [16.0, 235.0, 16.0 + 65.481, 16.0 + 24.966])
    assert rgb_to_y(img).dtype == np.float64
    gray = np.full((2, 2, 3), 100, dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_gray(gray), 100.0)


def test_psnr_by_hand() -> None:
    a = np.zeros((8, 8))
    b = np.full((8, 8), 10.0)  # MSE 100
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-12)
    assert psnr(a, b) == pytest.approx(28.130803608679102, abs=1e-12)
    c = a.copy()
    c[0, :] = 255  # one row in eight: MSE = 255^2 / 8 -> 10 log10(8)
    assert psnr(a, c) == pytest.approx(10 * math.log10(8), abs=1e-12)
    assert psnr(a, c, crop_border=1) == math.inf  # the differing row is cropped away
    with pytest.raises(ValueError):
        psnr(a, np.zeros((8, 9)))


def test_ssim_by_hand() -> None:
    a = np.full((20, 20), 100.0)
    b = np.full((20, 20), 110.0)
    # Constant images: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = (0.01 * 255)^2 = 6.5025.
    assert ssim(a, b) == pytest.approx((22000 + 6.5025) / (22100 + 6.5025), abs=1e-12)
    rng = np.random.default_rng(1)
    noise = rng.uniform(0, 255, (32, 32))
    assert ssim(noise, noise) == pytest.approx(1.0, abs=1e-12)
    assert ssim(noise, 255 - noise) < 0  # anticorrelated
    np.testing.assert_allclose(gaussian_window().sum(), 1.0)
    with pytest.raises(ValueError):
        ssim(np.zeros((10, 10)), np.zeros((10, 10)))  # smaller than the window


def test_ssim_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(2)
    a = rng.uniform(0, 255, (48, 40))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    ref = structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-9)


def test_sr_metrics_protocol() -> None:
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, (50, 43, 3), dtype=np.uint8)  # not a multiple of 4
    sr = hr[:48, :40].copy()
    assert sr_metrics(sr, hr, 4) == (math.inf, pytest.approx(1.0))  # GT cropped top-left
    # A difference only inside the 4-px border does not count.
    sr[:4] = 0
    assert sr_metrics(sr, hr, 4)[0] == math.inf
    # Inside: PSNR on Y equals PSNR of the Y planes.
    sr[20, 20] = 255 - sr[20, 20]
    p, s = sr_metrics(sr, hr, 4)
    y_sr, y_hr = rgb_to_y(sr)[4:-4, 4:-4], rgb_to_y(hr[:48, :40])[4:-4, 4:-4]
    assert p == pytest.approx(psnr(y_sr, y_hr), abs=1e-12)
    assert s == pytest.approx(ssim(y_sr, y_hr), abs=1e-12)
    with pytest.raises(ValueError):
        sr_metrics(hr[:44, :40], hr, 4)  # HR larger by a whole scale step: wrong pair


def test_sr_metrics_gray() -> None:
    rng = np.random.default_rng(4)
    hr = rng.integers(0, 256, (40, 40), dtype=np.uint8)
    sr = hr.copy()
    sr[20, 20] ^= 0xFF
    p_gray, _ = sr_metrics(sr, hr, 2)
    # Compared on the gray channel itself, not on Y of three equal channels.
    assert p_gray == pytest.approx(psnr(sr.astype(float), hr.astype(float), 2))
    # An RGB output of a gray input with equal channels scores exactly like the gray output.
    rgb = np.repeat(sr[:, :, None], 3, axis=2)
    assert sr_metrics(rgb, hr, 2)[0] == pytest.approx(p_gray, abs=1e-9)
    with pytest.raises(ValueError):
        sr_metrics(sr, np.repeat(hr[:, :, None], 3, axis=2), 2)  # gray SR of an RGB GT
