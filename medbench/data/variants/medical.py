"""Medical-imaging perturbations: each modality's harmless acquisition fault, by severity.

Five faults that leave the diagnosis alone, each named by its physics: an MRI's bias field
and motion ghosts, an X-ray's exposure error, a dermoscope's uneven light and a slide's stain
variation. Each takes an 8-bit image (grey `L` or `RGB`) and returns one of the same size and
mode, the same bytes for the same input (and generator, for the seeded ones).

Every spatial parameter is relative to the image, never in pixels (coordinates run over
[-1, 1] across each side, shifts are fractions of the side, frequencies are cycles per image),
so that a perturbation does the same to an image at any size the model receives it.

A severity (1 to 5) is a fixed physical parameter per fault (the tables below, as ImageNet-C
and MedMNIST-C fix theirs), calibrated so that the mean SSIM of the perturbed sample images of
the fault's modality (`data/sample/<task>`: brain MRI for the bias field and motion, chest
X-rays for exposure, skin lesions for illumination, lung histology for stain; seed 0), each
resized to 336 x 336 and to 896 x 896, falls in the severity's band of `SEVERITY_SSIM`
(`scripts/calibrate_severities.py` bisects for each parameter and prints the tables; the
tests check the bands at both sizes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from PIL import Image

Pixels = np.ndarray[Any, np.dtype[np.float64]]

SEVERITY_SSIM: dict[int, tuple[float, float]] = {
    1: (0.96, 0.98),
    2: (0.925, 0.96),
    3: (0.865, 0.925),
    4: (0.77, 0.865),
    5: (0.60, 0.77),
}
"""Band of the mean SSIM (perturbed against original) each severity is calibrated into, at
336 and at 896 px alike. The bands are geometric in the deficit (1 - SSIM: 0.02, 0.04, 0.075,
0.135, 0.23, 0.40 at their edges, each 1.7 to 2 times the last) rather than the even steps
first planned (0.93-0.98, ..., 0.60-0.72), because SSIM reads a change at 896 px as smaller:
its window is 11 px at any size, so on an image upsampled further it sees less local
contrast. Stain on 224 px histology patches loses 0.63 to 0.73 times the 336 px deficit at
896 px, and no band narrower than that ratio could hold a severity at both sizes."""

BIAS_FIELD_LOG_GAIN = {1: 0.3867, 2: 0.5449, 3: 0.7617, 4: 1.086, 5: 1.672}
"""Largest |log gain| of the bias field over the image, before re-windowing (1.672: the
field's extremes 28 times apart, an uncorrected surface coil's)."""
MOTION_SHIFT = 0.1
"""How far the object is displaced along the phase-encoding direction, as a fraction of the
image's height."""
MOTION_LINES = {1: 0.008301, 2: 0.0199, 3: 0.0459, 4: 0.1045, 5: 0.2578}
"""Fraction of the k-space lines acquired with the object displaced."""
EXPOSURE_SHIFT = {
    "over": {1: 0.02672, 2: 0.06592, 3: 0.1292, 4: 0.2021, 5: 0.3094},
    "under": {1: 0.02494, 2: 0.04614, 3: 0.08042, 4: 0.1248, 5: 0.1846},
}
"""Shift of the window's level, as a fraction of the grey range (the window narrows by as
much), by direction."""
ILLUMINATION_FALLOFF = {
    "warm": {1: 0.2078, 2: 0.2857, 3: 0.3785, 4: 0.4936, 5: 0.6346},
    "cool": {1: 0.2097, 2: 0.2876, 3: 0.3822, 4: 0.4954, 5: 0.642},
}
"""Fraction of the light lost in the corners, and of blue (`warm`) or red (`cool`) lost
everywhere (green loses half as much), by cast."""
STAIN_SPREAD = {1: 0.01917, 2: 0.02954, 3: 0.04614, 4: 0.07666, 5: 0.1445}
"""Spread of each stain's scale (1 +- spread) and shift (+- spread, in `rgb2hed`'s units)."""


def _coordinates(n: int) -> Pixels:
    """The centres of a side's `n` pixels on [-1, 1]: the same field at any resolution."""
    coordinates: Pixels = (np.arange(n, dtype=np.float64) + 0.5) * (2.0 / n) - 1.0
    return coordinates


def _to_image(pixels: Pixels, mode: str) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode)


def _times(image: Image.Image, gain: Pixels) -> Image.Image:
    """`image` times a gain per pixel (the same on every channel)."""
    pixels = np.asarray(image, dtype=np.float64)
    return _to_image(pixels * (gain if pixels.ndim == 2 else gain[..., None]), image.mode)


# MRI: bias field

_LEGENDRE: tuple[Callable[[Pixels], Pixels], ...] = (
    lambda x: np.ones_like(x),
    lambda x: x,
    lambda x: (3 * x**2 - 1) / 2,
    lambda x: (5 * x**3 - 3 * x) / 2,
)
_FIELD_TERMS = tuple((i, d - i) for d in (1, 2, 3) for i in range(d + 1))
"""Degrees (in x, in y) of the field's Legendre products: 1 to 3 in all; no constant term, so
the field shades the image rather than scaling it whole."""


def add_bias_field(image: Image.Image, log_gain: float, rng: np.random.Generator) -> Image.Image:
    """`image` times `exp(field)`, re-windowed to keep its brightest level (as a scanner scales
    the magnitude image it exports): the field a seeded sum of products of Legendre
    polynomials of total degree 1 to 3 over the image's [-1, 1] square (each term's weight
    falling as 1 / degree, so the field is smooth), scaled to span [-`log_gain`, `log_gain`]
    at most. Re-windowing clips nothing: no bright tissue saturates."""
    width, height = image.size
    x, y = _coordinates(width), _coordinates(height)
    weights = rng.standard_normal(len(_FIELD_TERMS))
    field = np.zeros((height, width))
    for weight, (i, j) in zip(weights, _FIELD_TERMS, strict=True):
        field += (weight / (i + j)) * np.outer(_LEGENDRE[j](y), _LEGENDRE[i](x))
    field *= log_gain / max(float(np.abs(field).max()), 1e-12)
    pixels = np.asarray(image, dtype=np.float64)
    gained = pixels * np.exp(field if pixels.ndim == 2 else field[..., None])
    brightest = float(gained.max())
    if brightest > 0:
        gained *= float(pixels.max()) / brightest
    return _to_image(gained, image.mode)


# MRI: motion


def add_motion(
    image: Image.Image, lines: float, rng: np.random.Generator, shift: float = MOTION_SHIFT
) -> Image.Image:
    """`image` as if the object moved by `shift` of the height along the phase-encoding
    (vertical) direction while a seeded fraction `lines` of the k-space lines (rows) were
    acquired: those lines take the displacement's phase ramp, and the magnitude of the
    inverse transform is the image (ghosts smeared along the vertical, each channel alike).

    A vertical displacement changes each line by a factor of its vertical frequency alone, so
    the transform along the columns is enough (the horizontal one cancels). Each line is
    chosen by a uniform draw taken in the order of its frequency in cycles per image (0, 1,
    -1, 2, -2, ...): the lines holding an image's content are the same at any resolution."""
    height = image.size[1]
    frequency = np.fft.fftfreq(height, 1.0 / height)
    order = np.where(frequency > 0, 2 * frequency - 1, -2 * frequency).astype(np.intp)
    moved = rng.random(height + 1)[order] < lines
    ramp = np.where(moved, np.exp(-2j * np.pi * frequency * shift), 1.0)[:, None]
    pixels = np.asarray(image, dtype=np.float64)
    planes = [pixels] if pixels.ndim == 2 else [pixels[..., c] for c in range(pixels.shape[2])]
    ghosted = [
        np.abs(np.fft.ifft(ramp * np.fft.fft(np.ascontiguousarray(p), axis=0), axis=0))
        for p in planes
    ]
    return _to_image(ghosted[0] if pixels.ndim == 2 else np.stack(ghosted, axis=-1), image.mode)


# X-ray: exposure


def shift_exposure(
    image: Image.Image, shift: float, direction: Literal["under", "over"]
) -> Image.Image:
    """`image` seen through a mis-set display window: its level moves by `shift` of the grey
    range (down for `over`, so the image brightens; up for `under`) and its width narrows by
    as much, clipping the whites (`over`) or the blacks (`under`). A grey level's order is
    kept (a monotone table per channel)."""
    level = np.arange(256, dtype=np.float64) / 255
    if direction == "over":
        shown = (level + shift / 2) / (1 - shift)
    else:
        shown = (level - 3 * shift / 2) / (1 - shift)
    table = [int(v) for v in np.clip(np.rint(shown * 255), 0, 255)]
    return image.point(table * len(image.getbands()))


# Dermoscopy: illumination

_CAST = {"warm": (0.0, 0.5, 1.0), "cool": (1.0, 0.5, 0.0)}
"""Share of the cast's loss taken from red, green and blue."""


def light_unevenly(
    image: Image.Image, falloff: float, cast: Literal["warm", "cool"]
) -> Image.Image:
    """`image` under a dermoscope's uneven light: a radial cos^4 fall-off losing `falloff` of
    the light in the corners, and (on a colour image) a cast taking `falloff` of blue and half
    as much of green (`warm`), or of red and green (`cool`). A grey image gets the fall-off
    alone and stays grey."""
    width, height = image.size
    x, y = _coordinates(width), _coordinates(height)
    radius2 = (x[None, :] ** 2 + y[:, None] ** 2) / 2  # 1 in the corners
    # cos^4 of the angle off the axis, with tan^2 of the corner's angle set by the fall-off
    tan2 = (1 - falloff) ** -0.5 - 1
    light = (1 + tan2 * radius2) ** -2
    if image.mode == "L":
        return _times(image, light)
    gains = 1 - falloff * np.asarray(_CAST[cast])
    pixels = np.asarray(image, dtype=np.float64)
    return _to_image(pixels * light[..., None] * gains, "RGB")


# Histology: stain

_BACKGROUND = 225
"""A pixel whose every channel is at least this bright is unstained glass: left unchanged."""
_TISSUE = 190
"""A pixel with a channel at most this bright is fully stained tissue: changed in full (in
between, in proportion to its optical density)."""


def vary_stain(image: Image.Image, spread: float, rng: np.random.Generator) -> Image.Image:
    """`image` stained otherwise: the haematoxylin, eosin and DAB amounts of each pixel
    (scikit-image's `rgb2hed`, Ruifrok and Johnston's colour deconvolution) scaled by a seeded
    `alpha` in 1 +- `spread` and shifted by a seeded `beta` in +- `spread`, each stain its own
    (Tellez et al. 2018's HED augmentation).

    The change is added to the pixel's optical density through `hed2rgb`'s linear map (not by
    a round trip: `rgb2hed` clips negative amounts, so `hed2rgb(rgb2hed(x))` is not `x`), and
    only on tissue: weighted by the pixel's optical density between `_BACKGROUND` (none) and
    `_TISSUE` (all), so the glass stays white. A grey image is stained as RGB and returned as
    its grey (`L`): the same structure, its grey levels moved."""
    from skimage.color import rgb2hed, rgb_from_hed

    alpha = rng.uniform(1 - spread, 1 + spread, 3)
    beta = rng.uniform(-spread, spread, 3)
    rgb = np.asarray(image.convert("RGB"))
    change = (alpha - 1) * rgb2hed(rgb) + beta
    density = -math.log(1e-6) * (change @ rgb_from_hed)  # hed2rgb's scale and map
    darkest = np.maximum(rgb.min(axis=-1), 1).astype(np.float64)
    tissue = np.clip(np.log(_BACKGROUND / darkest) / math.log(_BACKGROUND / _TISSUE), 0, 1)
    stained = _to_image(rgb * np.exp(-tissue[..., None] * density), "RGB")
    return stained.convert("L") if image.mode == "L" else stained
