"""The derived images of a plan's image-variant jobs, at run time: derive those the missing
answers need, and carry a warm cache's answers over from the keys images had before recipes.

Planning names each derived image by its recipe and never makes it (see
`medbench.data.variants.store`); the run derives the images of the jobs it is about to send,
checking each against the bytes recorded for its recipe. Answers stored before recipes were
keyed by the derived bytes' hash, which the old store's index still records: those answers are
copied under the recipe key once, so that a warm cache stays warm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from medbench.run.jobs import Job, key_parts
from medbench.run.plan import Plan
from medbench.run.progress import step
from medbench.spec import ORIGINAL_IMAGE

if TYPE_CHECKING:
    from medbench.data.variants import ImageStore, Recipe
    from medbench.run.cache import Cache


def _store(plan: Plan) -> ImageStore:
    from medbench.data.variants import ImageStore, images_dir

    return ImageStore(plan.images_dir if plan.images_dir is not None else images_dir())


def recipes_of(plan: Plan, job: Job) -> list[Recipe]:
    """The recipes of the derived images `job` shows (none for an original image)."""
    if job.image_variant == ORIGINAL_IMAGE:
        return []
    shown = plan.images.get(plan.image_slot(job), ())
    return [plan.recipes[ref.sha256] for ref in shown if ref.sha256 in plan.recipes]


def derive_for(plan: Plan, jobs: Sequence[Job], workers: int | None = None) -> int:
    """Derive the images `jobs` show that the store lacks; a job whose image cannot be made
    joins `plan.unreadable` with the reason (it then fails without a model). Returns how many
    recipes were needed."""
    from medbench.data.variants import derive_images

    needed: dict[str, Recipe] = {}
    users: dict[str, list[Job]] = {}
    for job in jobs:
        for recipe in recipes_of(plan, job):
            needed.setdefault(recipe.key, recipe)
            users.setdefault(recipe.key, []).append(job)
    if not needed:
        return 0
    with step(f"deriving {len(needed)} image variants"):
        failed = derive_images(list(needed.values()), _store(plan), workers=workers)
    for key, why in failed.items():
        for job in users[key]:
            plan.unreadable.setdefault(job.key, why)
    return len(needed)


def previous_keys(plan: Plan, jobs: Sequence[Job]) -> dict[str, tuple[str, str, str]]:
    """For jobs showing a derived image that the pre-recipe store derived: job key -> (the key
    its answer had then, the bytes' hash it was keyed by, the recipe key)."""
    store = _store(plan)
    found: dict[str, tuple[str, str, str]] = {}
    for job in jobs:
        recipes = recipes_of(plan, job)
        if len(recipes) != 1 or job.replicate:
            continue
        [recipe] = recipes
        if recipe.view is not None:  # the store before recipes derived at the file only
            continue
        old = store.derived_before(recipe.source.sha256, recipe.transform)
        if old is None:
            continue
        prompt = plan.prompt_of(job)
        budget = plan.budgets.get((job.model, job.family))
        head, tail = key_parts(plan.identities[job.model], prompt, False, 0, budget)
        then = hashlib.sha256(head + b'"' + old.encode() + b'"' + tail).hexdigest()
        found[job.key] = (then, old, recipe.key)
    return found


def carry_over_answers(plan: Plan, cache: Cache, jobs: Sequence[Job] | None = None) -> int:
    """Copy the answers a cache holds under pre-recipe keys to the recipe keys of the jobs
    that lack them; returns how many were copied."""
    if not plan.recipes:
        return 0
    done = cache.finished_keys()
    chosen = plan.jobs if jobs is None else jobs
    missing = [j for j in chosen if j.key not in done and j.image_variant != ORIGINAL_IMAGE]
    previous = previous_keys(plan, missing)
    stored = cache.get_many({then for then, _, _ in previous.values()})
    rows = []
    for key, (then, old, recipe) in sorted(previous.items()):
        answer = stored.get(then)
        if answer is None or answer.error is not None:
            continue
        rows.append(
            (
                key,
                answer.model,
                answer.task,
                answer.family,
                answer.variant,
                answer.sample,
                answer.prompt.replace(old, recipe),
                answer.output,
                answer.error,
                answer.seconds,
                answer.batch_size,
                answer.precision,
            )
        )
    if rows:
        cache.put_many(rows)
    return len(rows)


__all__ = ["carry_over_answers", "derive_for", "previous_keys", "recipes_of"]
