"""A suite's image variants for its samples: which image (if any) each job shows instead."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from PIL import Image

from medbench.data.images import ImageError, load_image
from medbench.data.samples import Sample
from medbench.data.variants.ablations import mismatched_partners
from medbench.data.variants.similarity import ssim
from medbench.data.variants.store import (
    ImageStore,
    StoreFullError,
    encode_pnm,
    recipe_keys,
    transform_payload,
)
from medbench.data.variants.transforms import DERIVED, apply_transform, as_grey_if_grey
from medbench.data.variants.views import InputView
from medbench.errors import MedbenchError
from medbench.home import HOME_ENV
from medbench.spec import ORIGINAL_IMAGE, ImageRef, ImageVariantSpec, SuiteSpec

SCIKIT_IMAGE_TRANSFORMS = frozenset({"stain"})
"""Transforms whose pixels come from scikit-image (its version joins their recipes)."""

Slot = tuple[str, str, str, str]
"""(task, sample id, image variant id, view): the view is an `InputView.token` (the model's
input the variant is applied at), empty for the file itself."""


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


def image_variant_samples(suite: SuiteSpec, task: str, samples: Sequence[Sample]) -> list[Sample]:
    """The samples of `task` that the suite's image variants are asked about: all of them, or
    with `image_variants_subset` a seeded draw of `per_class` per class (the same for every
    model and variant), in the samples' order."""
    subset = suite.image_variants_subset
    if subset is None:
        return list(samples)
    by_label: dict[str, list[Sample]] = {}
    for sample in samples:
        by_label.setdefault(sample.label, []).append(sample)
    rng = random.Random(f"{suite.seed}:image_variants:{task}")
    chosen: set[str] = set()
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda s: s.id)
        chosen.update(s.id for s in rng.sample(group, min(subset.per_class, len(group))))
    return [s for s in samples if s.id in chosen]


@dataclass(frozen=True)
class Recipe:
    """How to make one derived image: a transform of a source image."""

    key: str
    """The recipe's hash (`recipe_key`): the derived image's name and its part of a job key."""
    source: ImageRef
    spec: ImageVariantSpec
    seed: int
    view: InputView | None = None
    """The model input the transform is applied at (None: the file as it is)."""

    @property
    def transform(self) -> dict[str, object]:
        return transform_payload(self.spec, self.seed)


def variant_images(
    suite: SuiteSpec,
    samples: Mapping[str, Sequence[Sample]],
    store: ImageStore,
    views: Sequence[InputView | None] = (None,),
) -> tuple[dict[Slot, tuple[ImageRef, ...]], dict[Slot, str], dict[str, Recipe]]:
    """The images each (task, sample, variant, view) shows (none for `no_image`; only the
    samples of `image_variant_samples`, and of the variant's `tasks`), a transformed one
    by its recipe (derived later, by `derive_images`, never here); why a slot's image cannot be
    made (an unreadable original); and each recipe by its key. Each of `views` (the models'
    inputs; None: the file) gets its own derived images.

    A slot that failed shows the unreadable original under a marker hash unique to the slot
    (its job then fails in the backend, as the original's does). A `mismatched` slot without
    an image of another class to show (a task whose readable images are all of one class) is
    left out: it has no job."""
    images: dict[Slot, tuple[ImageRef, ...]] = {}
    errors: dict[Slot, str] = {}
    recipes: dict[str, Recipe] = {}
    keyers: dict[tuple[str, str], Callable[[str], str]] = {}

    @functools.cache
    def partners_of(task: str, seed: int) -> dict[str, Sample]:  # the same for every view
        return mismatched_partners(samples[task], seed, task)

    for task, spec, view in (
        (t, s, v) for t in sorted(samples) for s in suite.image_variants for v in views
    ):
        if spec.tasks and task not in spec.tasks:
            continue
        seed = variant_seed(spec, suite)
        token = view.token if view is not None else ""
        keyed = None
        if spec.transform in DERIVED:
            keyed = keyers.get((spec.id, token))
            if keyed is None:
                payload = transform_payload(spec, seed)
                if token:
                    payload["at"] = token
                if spec.transform in SCIKIT_IMAGE_TRANSFORMS:
                    payload["scikit-image"] = _scikit_image_version()
                keyed = recipe_keys(payload)
                keyers[(spec.id, token)] = keyed
        partners = partners_of(task, seed) if spec.transform == "mismatched" else {}
        for sample in image_variant_samples(suite, task, samples[task]):
            slot = (task, sample.id, spec.id, token)
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
                    assert keyed is not None
                    key = keyed(sample.sha256)
                    source = ImageRef(str(sample.path), sample.sha256)
                    recipes[key] = Recipe(key, source, spec, seed, view)
                    images[slot] = (ImageRef(store.recipe_file(key), key),)
            except ImageError as e:
                errors[slot] = e.reason if sample.error is not None else str(e)
                marker = f"{spec.id}:{sample.sha256}"
                images[slot] = (ImageRef(str(sample.path), marker),)
    return images, errors, recipes


def _scikit_image_version() -> str:
    from importlib.metadata import version

    return version("scikit-image")


def derive_bytes(recipe: Recipe, source: Image.Image | None = None) -> bytes:
    """The derived image of `recipe`, as the store keeps it (netpbm bytes); `source` is its
    source image already decoded (and made grey if it is grey: `as_grey_if_grey`)."""
    return encode_pnm(derive_image(recipe, source)[1])


def derive_image(
    recipe: Recipe, source: Image.Image | None = None
) -> tuple[Image.Image, Image.Image]:
    """(the source as the recipe's view receives it, the derived image) of `recipe`."""
    if source is None:
        source = as_grey_if_grey(load_image(recipe.source.path))
    seen = recipe.view.apply(source) if recipe.view is not None else source
    made = apply_transform(recipe.spec, seen, seed=recipe.seed, content_sha256=recipe.source.sha256)
    return seen, made


def received_ssim(recipe: Recipe, seen: Image.Image, made: Image.Image) -> float:
    """The SSIM between the source and the derived image as the model receives them: a derived
    image of another size (a crop) is first brought to the view (or to the source's size)."""
    if made.size != seen.size and recipe.view is not None:
        made = recipe.view.apply(made)
    if made.size != seen.size:
        made = made.resize(seen.size, Image.Resampling.BICUBIC)
    return ssim(seen, made)


def derive_from_one_source(store: ImageStore, recipes: Sequence[Recipe]) -> dict[str, str]:
    """Derive the missing recipes of one source image, decoding it once; why any failed."""
    todo = [r for r in recipes if not store.is_derived(r.key) or store.ssim(r.key) is None]
    if not todo:
        return {}
    try:
        source = as_grey_if_grey(load_image(todo[0].source.path))
    except ImageError as e:
        return dict.fromkeys((r.key for r in todo), str(e))
    failed: dict[str, str] = {}
    for recipe in todo:
        try:
            seen, made = derive_image(recipe, source)
            store.put_derived(recipe.key, encode_pnm(made), recipe.source.path)
            store.put_ssim(recipe.key, received_ssim(recipe, seen, made))
        except ImageError as e:
            failed[recipe.key] = str(e)
        except StoreFullError as e:
            # a plain MedbenchError: it crosses the process pool whole, message and all
            raise MedbenchError(
                f"the disk holding {e.folder} is full: the run derives the images its image "
                f"variants show there (this one needed {_megabytes(e.size)}). Free space there, "
                f"or set {HOME_ENV} to a folder on a disk with room; the answers stored so far "
                "are kept."
            ) from None
    return failed


def _megabytes(size: int) -> str:
    return f"{max(size, 1) / 1e6:.1f} MB"


def _derive_group(job: tuple[ImageStore, list[Recipe]]) -> dict[str, str]:
    return derive_from_one_source(*job)


PARALLEL_FROM = 4
"""Fewer source images than this are derived in this process (a pool costs a second to start)."""


def derive_images(
    recipes: Sequence[Recipe], store: ImageStore, workers: int | None = None
) -> dict[str, str]:
    """Derive into `store` every recipe whose image it lacks, each source image decoded once,
    the sources spread over `workers` processes (default: every core); returns why a recipe
    could not be derived (an unreadable source, bytes that differ from those recorded), by
    key. Each worker holds one source and one derived image at a time, and writes each
    derived image as it is made."""
    by_source: dict[str, list[Recipe]] = {}
    for recipe in recipes:
        by_source.setdefault(recipe.source.path, []).append(recipe)
    groups = [(store, group) for _, group in sorted(by_source.items())]
    workers = min(workers or os.cpu_count() or 1, len(groups))
    failed: dict[str, str] = {}
    if workers <= 1 or len(groups) < PARALLEL_FROM:
        for group in groups:
            failed.update(_derive_group(group))
        return failed
    context = multiprocessing.get_context("spawn")  # never fork a process that holds torch
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        for found in pool.map(_derive_group, groups, chunksize=4):
            failed.update(found)
    return failed
