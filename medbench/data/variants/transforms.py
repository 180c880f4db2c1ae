"""Image transforms: deterministic Pillow and numpy functions of an RGB image.

Each takes the decoded original (upright 8-bit RGB, as `medbench.data.images.load_image` makes it)
and returns a new RGB image; the random ones draw from a numpy Generator seeded by the
variant's seed and the original's content hash, so that each image gets its own noise and the
same noise in every process.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from medbench.spec import (
    BlankVariant,
    BlurVariant,
    BrightnessVariant,
    ContrastVariant,
    CropVariant,
    FlipVariant,
    GammaVariant,
    GaussianNoiseVariant,
    ImageVariantSpec,
    JpegVariant,
    NoiseVariant,
    ResizeVariant,
    RotateVariant,
)

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def generator(seed: int, content_sha256: str) -> np.random.Generator:
    """The noise source of one image: the variant's seed mixed with the image's hash."""
    salt = int.from_bytes(hashlib.sha256(content_sha256.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, salt])


def _jpeg(spec: JpegVariant, image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=spec.quality, optimize=False, progressive=False)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return decoded.convert("RGB")


def _resize(spec: ResizeVariant, image: Image.Image) -> Image.Image:
    width, height = image.size
    small = (max(1, round(width * spec.scale)), max(1, round(height * spec.scale)))
    resample = _RESAMPLE[spec.resample]
    return image.resize(small, resample).resize((width, height), resample)


def _rotate(spec: RotateVariant, image: Image.Image) -> Image.Image:
    return image.rotate(spec.degrees, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))


def _flip(spec: FlipVariant, image: Image.Image) -> Image.Image:
    return ImageOps.mirror(image) if spec.axis == "horizontal" else ImageOps.flip(image)


def _crop(spec: CropVariant, image: Image.Image) -> Image.Image:
    width, height = image.size
    keep_w, keep_h = max(1, round(width * spec.fraction)), max(1, round(height * spec.fraction))
    left, top = (width - keep_w) // 2, (height - keep_h) // 2
    return image.crop((left, top, left + keep_w, top + keep_h))


def _contrast(spec: ContrastVariant, image: Image.Image) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(spec.factor)


def _brightness(spec: BrightnessVariant, image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(spec.factor)


def _gamma(spec: GammaVariant, image: Image.Image) -> Image.Image:
    table = [round(255 * (v / 255) ** spec.gamma) for v in range(256)]
    return image.point(table * 3)


def _blur(spec: BlurVariant, image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(spec.radius))


def _gaussian_noise(
    spec: GaussianNoiseVariant, image: Image.Image, rng: np.random.Generator
) -> Image.Image:
    pixels = np.asarray(image, dtype=np.float64)
    noisy = pixels + rng.normal(0.0, spec.sigma, size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "RGB")


def _blank(spec: BlankVariant, image: Image.Image) -> Image.Image:
    mean = np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    red, green, blue = (int(v) for v in np.clip(np.rint(mean), 0, 255))
    return Image.new("RGB", image.size, (red, green, blue))


def _noise(spec: NoiseVariant, image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8), "RGB")


_PLAIN: dict[str, Callable[[Any, Image.Image], Image.Image]] = {
    "jpeg": _jpeg,
    "resize": _resize,
    "rotate": _rotate,
    "flip": _flip,
    "crop": _crop,
    "contrast": _contrast,
    "brightness": _brightness,
    "gamma": _gamma,
    "blur": _blur,
    "blank": _blank,
}
_SEEDED: dict[str, Callable[[Any, Image.Image, np.random.Generator], Image.Image]] = {
    "gaussian_noise": _gaussian_noise,
    "noise": _noise,
}
DERIVED = frozenset(_PLAIN) | frozenset(_SEEDED)
"""Image variants made by computing a new image from the original's pixels."""


def transform_image(
    spec: ImageVariantSpec, image: Image.Image, *, seed: int, content_sha256: str
) -> Image.Image:
    """The variant `spec` of `image` (RGB); `seed` is the variant's (or the suite's) seed,
    `content_sha256` the original's hash (it seeds the noise of this image)."""
    if spec.transform in _SEEDED:
        return _SEEDED[spec.transform](spec, image, generator(seed, content_sha256))
    if spec.transform in _PLAIN:
        return _PLAIN[spec.transform](spec, image)
    raise ValueError(f"{spec.transform} does not make an image from the original")
