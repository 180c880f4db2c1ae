"""Suite specs: which tasks, prompt families and models to cross, and the optional stages;
and the union of every spec kind, by `kind`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    StrictInt,
    model_validator,
)

from medbench.spec.common import Id, Seed, Text, _Spec
from medbench.spec.imagevariants import ImageVariantSpec
from medbench.spec.model import ModelSpec
from medbench.spec.prompt import PromptFamilySpec
from medbench.spec.task import TaskSpec


class DescribeStage(_Spec):
    """VLM writes a description; text-only diagnosers answer from the description alone."""

    family: Id
    """A prompt family with `answer: text`."""
    diagnosers: tuple[Id, ...] = Field(min_length=1)
    diagnose_families: tuple[Id, ...] = Field(min_length=1)


class ProbeStage(_Spec):
    """Linear probes on the models' vision-encoder embeddings."""

    embeddings: tuple[Literal["vision", "projected"], ...] = ("vision", "projected")
    folds: int | None = Field(default=None, ge=2, le=20)
    seed: Seed = 0


class TaskSubset(_Spec):
    """A fixed subset of one task's images that a suite evaluates, and why."""

    per_class: StrictInt = Field(ge=1, le=100000)
    """Images per class, drawn with the suite's `seed` (replaces `limit_per_class` here)."""
    reason: Text
    """Why this task is evaluated on a subset (shown by `medbench plan`)."""


class NoiseFloorSpec(_Spec):
    """Measure the numerical noise floor of fragility: each model answers its reference
    variants a second time, for a seeded subset of images, in other batches."""

    images_per_task: StrictInt = Field(ge=1, le=100_000)
    """How many images of each task (a seeded subset, the same for every model) to replicate."""


class ImageVariantsSubset(_Spec):
    """The seeded, stratified subset of each task's images that the image variants are asked
    about (the original images are all asked)."""

    per_class: StrictInt = Field(ge=1, le=100_000)
    """Images per class of each task, drawn with the suite's `seed`; a class with fewer gives
    all of its own."""


class LikelihoodStage(_Spec):
    """Option log-likelihoods: which offered option does the model itself find most likely?"""

    answer: Literal["total", "mean"] = "total"
    """The normalisation whose argmax is the likelihood answer on the ladder: `total` (the sum
    of the option's token log-probabilities) or `mean` (per token). Both are reported."""


class SuiteSpec(_Spec):
    """Which tasks x prompt families x models to run, on which data."""

    schema_version: Literal[1]
    kind: Literal["suite"]
    id: Id
    title: Text
    description: str = ""
    data: Literal["sample", "full"]
    tasks: tuple[Id, ...] = Field(min_length=1)
    prompt_families: tuple[Id, ...] = Field(min_length=1)
    models: tuple[Id, ...] = Field(min_length=1)
    limit_per_class: int | None = Field(default=None, ge=1)
    """Subsample at most this many images per class (seeded)."""
    seed: Seed = 0
    subsets: dict[Id, TaskSubset] = {}
    """Tasks evaluated on a fixed, stated subset of their images, by task id."""
    describe: DescribeStage | None = None
    probe: ProbeStage | None = None
    noise_floor: NoiseFloorSpec | None = None
    """Replicate the reference variants to measure how often answers change with batching alone."""
    likelihood: LikelihoodStage | None = None
    """Score each offered option's log-likelihood (closed families, hf models)."""
    image_variants: tuple[ImageVariantSpec, ...] = Field(default=(), max_length=64)
    """Transformed images and image ablations, each asked with the same prompts as the
    original image (see `image_variant_prompts`)."""
    image_variants_subset: ImageVariantsSubset | None = None
    """Ask the image variants about a seeded, stratified subset of each task's images only
    (absent: every image): image fragility needs fewer images than the prompt-side scores."""
    image_variants_at: Literal["model_input", "file"] = "model_input"
    """Where the image variants are applied: to the image as each model receives it (after
    its processor's resize, crop or padding: the same strength for every model, on a 384-px
    sample as on a 2,000-px scan), or to the file at its own resolution (the earlier behaviour)."""
    image_variant_prompts: Literal["reference", "all"] = "reference"
    """Which variants of each (closed) prompt family the image variants are asked with:
    each family's `reference` variant (the default, to bound the cost) or all of them."""

    @model_validator(mode="after")
    def _no_repeats(self) -> SuiteSpec:
        for name in ("tasks", "prompt_families", "models"):
            items: tuple[str, ...] = getattr(self, name)
            dupes = sorted({i for i in items if items.count(i) > 1})
            if dupes:
                raise ValueError(f"{name} lists {dupes[0]!r} twice")
        ids = [v.id for v in self.image_variants]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"image_variants lists {dupes[0]!r} twice")
        for variant in self.image_variants:
            outside = [t for t in variant.tasks if t not in self.tasks]
            if outside:
                raise ValueError(
                    f"image variant {variant.id!r} names task {outside[0]!r}, which is not "
                    f"among the suite's tasks ({', '.join(self.tasks)})"
                )
        unknown = sorted(set(self.subsets) - set(self.tasks))
        if unknown:
            raise ValueError(
                f"subsets names {unknown[0]!r}, which is not among the suite's tasks "
                f"({', '.join(self.tasks)})"
            )
        return self

    def limit_per_class_of(self, task: str) -> int | None:
        """Images per class evaluated for `task`: its subset's, else the suite's limit."""
        subset = self.subsets.get(task)
        return subset.per_class if subset is not None else self.limit_per_class


Spec = Annotated[TaskSpec | PromptFamilySpec | ModelSpec | SuiteSpec, Field(discriminator="kind")]
SPEC_KINDS: dict[str, type[_Spec]] = {
    "task": TaskSpec,
    "prompt_family": PromptFamilySpec,
    "model": ModelSpec,
    "suite": SuiteSpec,
}
