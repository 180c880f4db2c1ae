"""SSIM of two images: Wang et al.'s form, its small-image window and its refusals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from medbench.data.variants.similarity import ssim

RNG = np.random.default_rng(7)
NOISE = RNG.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
"""A random colour image 48 wide and 40 high (not square: each side is its own scale)."""


def pixels(image: Image.Image) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(image, dtype=np.float64)


def grey(level: int, side: int = 64) -> Image.Image:
    return Image.new("L", (side, side), level)


# SSIM


def test_ssim_of_an_image_with_itself_is_one() -> None:
    colour = Image.fromarray(NOISE, "RGB")
    assert ssim(colour, colour) == 1.0
    assert ssim(colour.convert("L"), colour.convert("L")) == 1.0
    assert ssim(grey(0), grey(0)) == 1.0


def test_ssim_falls_with_noise() -> None:
    image = Image.fromarray(NOISE, "RGB")
    rng = np.random.default_rng(0)
    values = []
    for sigma in (2, 8, 32):
        noisy = np.clip(np.rint(pixels(image) + rng.normal(0, sigma, NOISE.shape)), 0, 255)
        values.append(ssim(image, Image.fromarray(noisy.astype(np.uint8), "RGB")))
    assert 1.0 > values[0] > values[1] > values[2]


def test_ssim_compares_a_grey_image_with_a_colour_one_as_rgb() -> None:
    image = Image.fromarray(NOISE, "RGB").convert("L")
    assert ssim(image, image.convert("RGB")) == 1.0
    assert ssim(image, Image.fromarray(NOISE, "RGB")) == ssim(
        image.convert("RGB"), Image.fromarray(NOISE, "RGB")
    )


def test_ssim_of_a_small_image_uses_the_largest_window_that_fits() -> None:
    small = Image.fromarray(NOISE[:5, :8], "RGB")
    assert ssim(small, small) == 1.0
    assert ssim(small, Image.fromarray(NOISE[5:10, :8], "RGB")) < 0.5
    with pytest.raises(ValueError, match=r"^SSIM needs images of 3 pixels a side at least"):
        ssim(Image.new("L", (2, 9)), Image.new("L", (2, 9)))


def test_ssim_refuses_images_of_two_sizes() -> None:
    with pytest.raises(ValueError, match=r"^SSIM compares images of one size, got"):
        ssim(grey(0, 16), grey(0, 17))
