"""Image transforms: deterministic Pillow and numpy functions of an RGB image.

Each takes the decoded original (upright 8-bit RGB, as `medbench.data.images.load_image` makes it)
and returns a new RGB image; the random ones draw from a numpy Generator seeded by the
variant's seed and the original's content hash, so that each image gets its own noise and the
same noise in every process. The medical perturbations (bias field, motion, exposure,
illumination, stain) live in `medbench.data.variants.medical`.

`apply_transform` does the same on a grey (`L`) image when the original is grey, which is
three times less work: every transform but the noises, `illumination` and `stain` acts on each
channel alike (Pillow's contrast reads the grey mean either way), so its result is the RGB
result's grey; the noises draw per channel, so they make RGB from the grey image; a grey image
has no colour to cast or stain, so `illumination` gives it the fall-off alone and `stain` the
grey of its stained RGB.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from medbench.data.variants import medical
from medbench.spec import (
    BiasFieldVariant,
    BlankVariant,
    BlurVariant,
    BrightnessVariant,
    ContrastVariant,
    CropVariant,
    ExposureVariant,
    FlipVariant,
    GammaVariant,
    GaussianNoiseVariant,
    IlluminationVariant,
    ImageVariantSpec,
    JpegVariant,
    MotionVariant,
    NoiseVariant,
    ResizeVariant,
    RotateVariant,
    StainVariant,
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
        return decoded.convert(image.mode)


def _resize(spec: ResizeVariant, image: Image.Image) -> Image.Image:
    width, height = image.size
    small = (max(1, round(width * spec.scale)), max(1, round(height * spec.scale)))
    resample = _RESAMPLE[spec.resample]
    return image.resize(small, resample).resize((width, height), resample)


def _rotate(spec: RotateVariant, image: Image.Image) -> Image.Image:
    black = 0 if image.mode == "L" else (0, 0, 0)
    return image.rotate(spec.degrees, resample=Image.Resampling.BICUBIC, fillcolor=black)


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
    return image.point(table * len(image.getbands()))


def _blur(spec: BlurVariant, image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(spec.radius))


def _gaussian_noise(
    spec: GaussianNoiseVariant, image: Image.Image, rng: np.random.Generator
) -> Image.Image:
    # The result is rounded to whole grey levels, so the noise is drawn as whole levels: the
    # rounded Gaussian, by a table of its quantiles at 2^16 uniform levels (a tenth of the
    # time of float draws on a full-size image).
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    levels = rng.integers(0, _LEVELS, size=pixels.shape, dtype=np.uint16)
    noisy = pixels + _rounded_gaussian(spec.sigma)[levels]
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


_LEVELS = 1 << 16


@functools.lru_cache(maxsize=8)
def _rounded_gaussian(sigma: float) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Noise level of each of `_LEVELS` equally likely uniform draws: rint of the Gaussian
    quantile at the draw's midpoint (clipped to +-300: no pixel moves further)."""
    from statistics import NormalDist

    middle = (np.arange(_LEVELS, dtype=np.float64) + 0.5) / _LEVELS
    quantile = np.vectorize(NormalDist(0.0, sigma).inv_cdf, otypes=[np.float64])
    table: np.ndarray[Any, np.dtype[np.int16]] = np.clip(
        np.rint(quantile(middle)), -300, 300
    ).astype(np.int16)
    return table


def _bias_field(
    spec: BiasFieldVariant, image: Image.Image, rng: np.random.Generator
) -> Image.Image:
    return medical.add_bias_field(image, medical.BIAS_FIELD_LOG_GAIN[spec.severity], rng)


def _motion(spec: MotionVariant, image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return medical.add_motion(image, medical.MOTION_LINES[spec.severity], rng)


def _exposure(spec: ExposureVariant, image: Image.Image) -> Image.Image:
    shift = medical.EXPOSURE_SHIFT[spec.direction][spec.severity]
    return medical.shift_exposure(image, shift, spec.direction)


def _illumination(spec: IlluminationVariant, image: Image.Image) -> Image.Image:
    falloff = medical.ILLUMINATION_FALLOFF[spec.cast][spec.severity]
    return medical.light_unevenly(image, falloff, spec.cast)


def _stain(spec: StainVariant, image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return medical.vary_stain(image, medical.STAIN_SPREAD[spec.severity], rng)


def _blank(spec: BlankVariant, image: Image.Image) -> Image.Image:
    pixels = np.asarray(image)
    bands = 1 if pixels.ndim == 2 else pixels.shape[2]
    # exact integer sums: the mean of every channel, rounded half to even as before
    sums = pixels.reshape(-1, bands).sum(axis=0, dtype=np.int64)
    mean = [int(v) for v in np.clip(np.rint(sums / max(1, pixels.size // bands)), 0, 255)]
    return Image.new(image.mode, image.size, mean[0] if bands == 1 else tuple(mean))


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
    "exposure": _exposure,
    "illumination": _illumination,
    "blank": _blank,
}
_SEEDED: dict[str, Callable[[Any, Image.Image, np.random.Generator], Image.Image]] = {
    "gaussian_noise": _gaussian_noise,
    "bias_field": _bias_field,
    "motion": _motion,
    "stain": _stain,
    "noise": _noise,
}
DERIVED = frozenset(_PLAIN) | frozenset(_SEEDED)
"""Image variants made by computing a new image from the original's pixels."""


def transform_image(
    spec: ImageVariantSpec, image: Image.Image, *, seed: int, content_sha256: str
) -> Image.Image:
    """The variant `spec` of `image` (RGB); `seed` is the variant's (or the suite's) seed,
    `content_sha256` the original's hash (it seeds the noise of this image)."""
    return apply_transform(spec, image, seed=seed, content_sha256=content_sha256).convert("RGB")


def apply_transform(
    spec: ImageVariantSpec, image: Image.Image, *, seed: int, content_sha256: str
) -> Image.Image:
    """`transform_image` of an RGB or grey (`L`) image: a grey image gives a grey result,
    but for the noises (see the module, and for `illumination` and `stain`)."""
    if spec.transform in _SEEDED:
        return _SEEDED[spec.transform](spec, image, generator(seed, content_sha256))
    if spec.transform in _PLAIN:
        return _PLAIN[spec.transform](spec, image)
    raise ValueError(f"{spec.transform} does not make an image from the original")


def as_grey_if_grey(image: Image.Image) -> Image.Image:
    """`image` (RGB) as one grey channel when its three channels are equal, else itself."""
    pixels = np.asarray(image)
    red = pixels[..., 0]
    if np.array_equal(red, pixels[..., 1]) and np.array_equal(red, pixels[..., 2]):
        return Image.fromarray(np.ascontiguousarray(red), "L")
    return image
