"""Image variants of a suite: deterministic transforms and ablations of the evaluated images."""

from medbench.data.variants.ablations import mismatched_partners
from medbench.data.variants.derive import (
    Slot,
    image_transforms,
    image_variant_kinds,
    variant_images,
    variant_seed,
)
from medbench.data.variants.store import ImageStore, encode_png, images_dir, transform_payload
from medbench.data.variants.transforms import DERIVED, transform_image

__all__ = [
    "DERIVED",
    "ImageStore",
    "Slot",
    "encode_png",
    "image_transforms",
    "image_variant_kinds",
    "images_dir",
    "mismatched_partners",
    "transform_image",
    "transform_payload",
    "variant_images",
    "variant_seed",
]
