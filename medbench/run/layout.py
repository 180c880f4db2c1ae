"""The batch layout of a model's jobs: one image's prompts side by side in one batch (so that
the hf backend computes their shared prefix once), batches bucketed by prompt length."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from medbench.run.cost.images import ImageTokens
from medbench.run.cost.tokens import FAMILY_RULES
from medbench.run.jobs import Job
from medbench.run.plan import Plan
from medbench.spec import ORIGINAL_IMAGE, ModelSpec


def _batch_order(job: Job) -> tuple[object, ...]:
    """Where a job stands in its model's batch layout: one image's prompts side by side, the
    original images' jobs before the image variants' (so that adding image variants to a
    suite leaves the original jobs' batches as they were)."""
    return (
        job.image_variant != ORIGINAL_IMAGE,
        job.task,
        job.sample,
        job.subject,
        job.image_variant,
        job.pipeline,
        job.family,
        job.variant,
    )


def _image_of(job: Job) -> tuple[object, ...]:
    """The image a job shows (jobs with one show it after the same opening, up to the system
    text: the hf backend finds which share)."""
    return _batch_order(job)[:5]


def cut_batches(
    jobs: Sequence[Job], size: int, length: Callable[[Job], int] | None = None
) -> list[list[Job]]:
    """The batches of one model's jobs, cut from all of them, cached or not.

    Jobs are laid out by (task, sample, subject, image variant, pipeline, family, variant) -
    every prompt of one image side by side - one job per distinct key (the first). Each task's
    run is packed into batches of at most `size` keys, an image's jobs never split between
    two batches unless they alone pass `size` (then they fill batches of their own); with
    `length` (a job's image tokens), a task's images go by length first, so that a batch pads
    its prompts little. The jobs of image variants come after the original images' (laid out
    and cut the same way), never in their batches. A job's batch thus depends only on the
    planned jobs of its model and task and on the batch size, never on what is cached: the
    runner sends a batch's missing jobs together and never with another batch's. A cold run and
    a resumed one (the cache stores whole batches) then answer every job in the same batch with
    the same batch-mates; a job retried after a failure runs with its batch's other missing
    jobs only.

    Noise-floor replicates come after, in batches of their own: ordered by key (a fixed
    shuffle), so that each meets batch-mates of other images and tasks, not the ones its
    first answer had.
    """
    runs: dict[tuple[bool, str], dict[tuple[object, ...], list[Job]]] = {}
    seen: set[str] = set()
    for job in sorted((j for j in jobs if not j.replicate), key=_batch_order):
        if job.key in seen:
            continue
        seen.add(job.key)
        run = runs.setdefault((job.image_variant != ORIGINAL_IMAGE, job.task), {})
        run.setdefault(_image_of(job), []).append(job)
    batches: list[list[Job]] = []
    for images in runs.values():
        groups = list(images.values())
        if length is not None:
            groups.sort(key=lambda group: length(group[0]))  # stable: ties keep their order
        batches.extend(_pack(groups, size))
    replicates = sorted({j.key: j for j in jobs if j.replicate and j.key not in seen}.items())
    for start in range(0, len(replicates), size):
        batches.append([job for _, job in replicates[start : start + size]])
    return batches


def _pack(groups: list[list[Job]], size: int) -> list[list[Job]]:
    """Whole groups into batches of at most `size`; a group larger than `size` alone in its own."""
    batches: list[list[Job]] = []
    for group in groups:
        if batches and len(batches[-1]) + len(group) <= size:
            batches[-1].extend(group)
            continue
        batches.extend(group[start : start + size] for start in range(0, len(group), size))
    return batches


def prompt_length(plan: Plan, spec: ModelSpec) -> Callable[[Job], int] | None:
    """A job's image tokens for the model, where they differ between images (LLaVA-NeXT's tiles),
    by its family's documented rule: never by files that may be on this machine later but not
    now, so that the batches do not change once a checkpoint is downloaded. None: one length."""
    rule = None if spec.text_only else FAMILY_RULES.get(spec.family)
    if rule is None or not rule.needs_size:
        return None
    return ImageTokens(plan, rule).of
