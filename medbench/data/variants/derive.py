"""A suite's image variants for its samples: which image (if any) each job shows instead."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from medbench.data.images import ImageError
from medbench.data.samples import Sample
from medbench.data.variants.ablations import mismatched_partners
from medbench.data.variants.store import ImageStore, StoreFullError, transform_payload
from medbench.data.variants.transforms import DERIVED, transform_image
from medbench.errors import MedbenchError
from medbench.home import HOME_ENV
from medbench.spec import ORIGINAL_IMAGE, ImageRef, ImageVariantSpec, SuiteSpec

Slot = tuple[str, str, str]
"""(task, sample id, image variant id)."""


def variant_seed(spec: ImageVariantSpec, suite: SuiteSpec) -> int:
    """The seed a variant draws with: its own, else the suite's."""
    own = getattr(spec, "seed", None)
    return own if isinstance(own, int) else suite.seed


def image_variant_kinds(suite: SuiteSpec) -> dict[str, str]:
    """Image variant id -> the name of its transform (`jpeg`, ..., `no_image`, `mismatched`)."""
    return {spec.id: spec.transform for spec in suite.image_variants}


def image_transforms(suite: SuiteSpec) -> dict[str, str | None]:
    """Image variant id -> its transform and parameters as JSON text (sorted keys, the seed
    resolved), as recorded with each answer; None for the original image."""
    found: dict[str, str | None] = {ORIGINAL_IMAGE: None}
    for spec in suite.image_variants:
        payload = transform_payload(spec, variant_seed(spec, suite))
        found[spec.id] = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return found


def variant_images(
    suite: SuiteSpec, samples: Mapping[str, Sequence[Sample]], store: ImageStore
) -> tuple[dict[Slot, tuple[ImageRef, ...]], dict[Slot, str]]:
    """The images each (task, sample, variant) shows (none for `no_image`), deriving and
    storing the transformed ones; and why a slot's image could not be made.

    A slot that failed shows the unreadable original under a marker hash unique to the slot
    (its job then fails in the backend, as the original's does). A `mismatched` slot without
    an image of another class to show (a task whose readable images are all of one class) is
    left out: it has no job."""
    images: dict[Slot, tuple[ImageRef, ...]] = {}
    errors: dict[Slot, str] = {}
    derived = sum(spec.transform in DERIVED for spec in suite.image_variants)
    left = derived * sum(len(s) for s in samples.values())
    for task in sorted(samples):
        for spec in suite.image_variants:
            seed = variant_seed(spec, suite)
            partners = (
                mismatched_partners(samples[task], seed, task)
                if spec.transform == "mismatched"
                else {}
            )
            for sample in samples[task]:
                slot = (task, sample.id, spec.id)
                try:
                    if sample.error is not None:
                        raise ImageError(sample.path, sample.error)
                    if spec.transform == "no_image":
                        images[slot] = ()
                    elif spec.transform == "mismatched":
                        partner = partners.get(sample.id)
                        if partner is not None:
                            images[slot] = (ImageRef(str(partner.path), partner.sha256),)
                    else:
                        assert spec.transform in DERIVED
                        images[slot] = (_derive_or_say(store, spec, sample, seed, left),)
                        left -= 1
                except ImageError as e:
                    errors[slot] = e.reason if sample.error is not None else str(e)
                    marker = f"{spec.id}:{sample.sha256}"
                    images[slot] = (ImageRef(str(sample.path), marker),)
    return images, errors


def _derive_or_say(
    store: ImageStore, spec: ImageVariantSpec, sample: Sample, seed: int, left: int
) -> ImageRef:
    """`_derive`, or, when the disk is full, an error naming the folder and about how much
    room the `left` images still to derive need (each about the size of the one that failed)."""
    try:
        return _derive(store, spec, sample, seed)
    except StoreFullError as e:
        need = _megabytes(e.size * left)
        raise MedbenchError(
            f"the disk holding {e.folder} is full: planning derives the suite's image variants "
            f"there, and the {left} still to derive need about {need} more. Free that much "
            f"space there, or set {HOME_ENV} to a folder on a disk with room."
        ) from e


def _megabytes(size: int) -> str:
    return f"{max(size, 1) / 1e6:.1f} MB"


def _derive(store: ImageStore, spec: ImageVariantSpec, sample: Sample, seed: int) -> ImageRef:
    original = ImageRef(str(sample.path), sample.sha256)
    return store.derive(
        original,
        transform_payload(spec, seed),
        lambda image: transform_image(spec, image, seed=seed, content_sha256=sample.sha256),
    )
