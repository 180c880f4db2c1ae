"""Image variant specs: the transforms and ablations a suite applies to each image."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    StrictFloat,
    StrictInt,
)

from medbench.spec.common import Id, Seed, _absent, _Spec

ORIGINAL_IMAGE = "original"
"""The image-variant id of the untouched image (never an `image_variants` id)."""


def _not_original(value: str) -> str:
    if value == ORIGINAL_IMAGE:
        raise ValueError(f"`{ORIGINAL_IMAGE}` names the untouched image; choose another id")
    return value


ImageVariantId = Annotated[Id, AfterValidator(_not_original)]


class _ImageVariant(_Spec):
    id: ImageVariantId
    """Names the variant in answers and tables; unique in the suite, never `original`."""
    tasks: tuple[Id, ...] = Field(default=(), exclude_if=_absent)
    """The suite's tasks this variant is applied to (absent: all of them), e.g. an MRI
    artefact on the MRI task only."""


class JpegVariant(_ImageVariant):
    """Re-encode as JPEG at a quality (compression artefacts)."""

    transform: Literal["jpeg"]
    quality: StrictInt = Field(ge=1, le=95)
    """JPEG quality, 1 (worst) to 95."""


class ResizeVariant(_ImageVariant):
    """Scale down, then back up to the original size (lost resolution)."""

    transform: Literal["resize"]
    scale: StrictFloat = Field(ge=0.05, lt=1.0)
    """Size of the intermediate image as a fraction of each side."""
    resample: Literal["nearest", "bilinear", "bicubic", "lanczos"] = "bicubic"
    """Resampling filter, both ways."""


class RotateVariant(_ImageVariant):
    """Rotate about the centre, keeping the size; the uncovered corners are black."""

    transform: Literal["rotate"]
    degrees: StrictFloat = Field(ge=-180.0, le=180.0)
    """Angle, counter-clockwise."""


class FlipVariant(_ImageVariant):
    """Mirror the image."""

    transform: Literal["flip"]
    axis: Literal["horizontal", "vertical"] = "horizontal"
    """`horizontal`: left and right swap; `vertical`: top and bottom swap."""


class CropVariant(_ImageVariant):
    """Keep a centred part of the image (at its own size: the model's processor resizes)."""

    transform: Literal["crop"]
    fraction: StrictFloat = Field(ge=0.1, lt=1.0)
    """Fraction of the width and of the height kept."""


class ContrastVariant(_ImageVariant):
    """Scale the contrast about the mean grey (Pillow's `ImageEnhance.Contrast`)."""

    transform: Literal["contrast"]
    factor: StrictFloat = Field(ge=0.0, le=4.0)
    """1 keeps the image; below 1 flattens it, above 1 stretches it."""


class BrightnessVariant(_ImageVariant):
    """Scale the brightness (Pillow's `ImageEnhance.Brightness`)."""

    transform: Literal["brightness"]
    factor: StrictFloat = Field(ge=0.0, le=4.0)
    """1 keeps the image; below 1 darkens it, above 1 brightens it."""


class GammaVariant(_ImageVariant):
    """Apply a gamma curve: `255 * (v / 255) ** gamma` per channel."""

    transform: Literal["gamma"]
    gamma: StrictFloat = Field(ge=0.1, le=10.0)
    """Below 1 brightens the shadows, above 1 darkens them."""


class GaussianNoiseVariant(_ImageVariant):
    """Add seeded Gaussian noise to every pixel."""

    transform: Literal["gaussian_noise"]
    sigma: StrictFloat = Field(gt=0.0, le=128.0)
    """Standard deviation, in grey levels of 0 to 255."""
    seed: Seed | None = None
    """Noise seed (mixed with each image's hash); left out, the suite's `seed`."""


class BlurVariant(_ImageVariant):
    """Gaussian blur."""

    transform: Literal["blur"]
    radius: StrictFloat = Field(gt=0.0, le=50.0)
    """Blur radius in pixels."""


class _SeverityVariant(_ImageVariant):
    severity: StrictInt = Field(ge=1, le=5)
    """1 (slight) to 5 (strong); each level's strength is a fixed physical parameter,
    calibrated to a band of SSIM on the sample images (`medbench.data.variants.medical`)."""


class BiasFieldVariant(_SeverityVariant):
    """MRI intensity inhomogeneity: the image times a smooth seeded gain field."""

    transform: Literal["bias_field"]
    seed: Seed | None = None
    """Field seed (mixed with each image's hash); left out, the suite's `seed`."""


class MotionVariant(_SeverityVariant):
    """MRI motion ghosting: seeded k-space lines acquired with the object displaced along the
    phase-encoding (vertical) direction."""

    transform: Literal["motion"]
    seed: Seed | None = None
    """Seed of the corrupted lines (mixed with each image's hash); left out, the suite's
    `seed`."""


class ExposureVariant(_SeverityVariant):
    """X-ray exposure error: a shifted display window level, narrowed, with clipping."""

    transform: Literal["exposure"]
    direction: Literal["under", "over"] = "over"
    """`over` brightens the image and clips its whites, `under` darkens it and clips its
    blacks."""


class IlluminationVariant(_SeverityVariant):
    """Dermoscope lighting: a colour cast and a radial fall-off of light toward the corners."""

    transform: Literal["illumination"]
    cast: Literal["warm", "cool"] = "warm"
    """`warm` takes light from blue (and half as much from green), `cool` from red (and
    green); a grey image gets the fall-off only."""


class StainVariant(_SeverityVariant):
    """Histology stain variation: seeded scale and shift of the haematoxylin, eosin and DAB
    amounts (colour deconvolution); the unstained background is kept."""

    transform: Literal["stain"]
    seed: Seed | None = None
    """Seed of the stain changes (mixed with each image's hash); left out, the suite's
    `seed`."""


class NoImageVariant(_ImageVariant):
    """Ablation: the same prompt with no image at all."""

    transform: Literal["no_image"]


class BlankVariant(_ImageVariant):
    """Ablation: a uniform image of the original's size and mean colour."""

    transform: Literal["blank"]


class MismatchedVariant(_ImageVariant):
    """Ablation: the image of another sample of the same task, of another class (a seeded
    pairing; never an image of the sample's own class)."""

    transform: Literal["mismatched"]
    seed: Seed | None = None
    """Pairing seed; left out, the suite's `seed`."""


class NoiseVariant(_ImageVariant):
    """Ablation: pure uniform noise of the original's size, seeded per image."""

    transform: Literal["noise"]
    seed: Seed | None = None
    """Noise seed (mixed with each image's hash); left out, the suite's `seed`."""


ImageVariantSpec = Annotated[
    JpegVariant
    | ResizeVariant
    | RotateVariant
    | FlipVariant
    | CropVariant
    | ContrastVariant
    | BrightnessVariant
    | GammaVariant
    | GaussianNoiseVariant
    | BlurVariant
    | BiasFieldVariant
    | MotionVariant
    | ExposureVariant
    | IlluminationVariant
    | StainVariant
    | NoImageVariant
    | BlankVariant
    | MismatchedVariant
    | NoiseVariant,
    Field(discriminator="transform"),
]
"""One image variant of a suite: a transform of the image, or an ablation, by `transform`."""
IMAGE_TRANSFORMS = (
    *("jpeg", "resize", "rotate", "flip", "crop", "contrast", "brightness", "gamma"),
    *("gaussian_noise", "blur"),
    *("bias_field", "motion", "exposure", "illumination", "stain"),
)
"""Image variants that change the image's pixels."""
IMAGE_ABLATIONS = ("no_image", "blank", "mismatched", "noise")
"""Image variants that take the image's content away."""
