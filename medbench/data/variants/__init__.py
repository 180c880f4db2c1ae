"""Image variants of a suite: deterministic transforms and ablations of the evaluated images."""

from medbench.data.variants.ablations import mismatched_partners
from medbench.data.variants.derive import (
    Recipe,
    Slot,
    derive_bytes,
    derive_images,
    image_transforms,
    image_variant_kinds,
    image_variant_samples,
    variant_images,
    variant_seed,
)
from medbench.data.variants.similarity import ssim
from medbench.data.variants.store import (
    DERIVE_VERSION,
    DerivedBytesError,
    ImageStore,
    encode_png,
    encode_pnm,
    images_dir,
    recipe_key,
    transform_payload,
)
from medbench.data.variants.transforms import DERIVED, transform_image
from medbench.data.variants.views import InputView

__all__ = [
    "DERIVED",
    "DERIVE_VERSION",
    "DerivedBytesError",
    "ImageStore",
    "InputView",
    "Recipe",
    "Slot",
    "derive_images",
    "derive_bytes",
    "recipe_key",
    "encode_png",
    "encode_pnm",
    "image_transforms",
    "image_variant_kinds",
    "image_variant_samples",
    "images_dir",
    "mismatched_partners",
    "ssim",
    "transform_image",
    "transform_payload",
    "variant_images",
    "variant_seed",
]
