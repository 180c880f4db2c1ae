"""Structural similarity (SSIM) of two images: how far a perturbation moved an image."""

from __future__ import annotations

import numpy as np
from PIL import Image

_WANG_WINDOW = 11
"""Side of Wang et al.'s Gaussian window (sigma 1.5, truncated at 3.5 sigma)."""


def ssim(a: Image.Image, b: Image.Image) -> float:
    """The mean SSIM of two 8-bit images of one size, in Wang et al.'s (2004) form: a Gaussian
    window of sigma 1.5, population covariances, a data range of 255 (scikit-image's
    `structural_similarity`).

    Two grey (`L`) images are compared directly; otherwise both are compared as RGB, the mean
    over the three channels (so a grey image against a colour one counts its grey in each
    channel). The window spans 11 pixels; an image with a side under 11 pixels is compared
    with the largest odd window that fits it (3 at least: a side under 3 pixels is refused),
    which keeps the Gaussian weights but trims the border left out of the mean less."""
    from skimage.metrics import structural_similarity

    if a.size != b.size:
        raise ValueError(f"SSIM compares images of one size, got {a.size} and {b.size}")
    side = min(a.size)
    if side < 3:
        raise ValueError(f"SSIM needs images of 3 pixels a side at least, got {a.size}")
    window = min(_WANG_WINDOW, side if side % 2 else side - 1)
    grey = a.mode == "L" and b.mode == "L"
    mode = "L" if grey else "RGB"
    value = structural_similarity(  # type: ignore[no-untyped-call]
        np.asarray(a.convert(mode)),
        np.asarray(b.convert(mode)),
        win_size=window,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=None if grey else -1,
    )
    return float(value)
