"""Structural similarity (SSIM) of two images, as scikit-image computes it."""

from __future__ import annotations

import numpy as np
from PIL import Image


def ssim(a: Image.Image, b: Image.Image) -> float:
    """SSIM of two same-size 8-bit images (Wang et al.'s Gaussian-window form)."""
    from skimage.metrics import structural_similarity

    mode = "L" if a.mode == b.mode == "L" else "RGB"
    x, y = np.asarray(a.convert(mode)), np.asarray(b.convert(mode))
    side = min(x.shape[0], x.shape[1])
    win = min(7, side if side % 2 else side - 1)
    return float(
        structural_similarity(  # type: ignore[no-untyped-call]
            x,
            y,
            win_size=max(win, 3),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1 if mode == "RGB" else None,
        )
    )
