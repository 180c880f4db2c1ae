"""Expand a suite into jobs, each with the content key of its answer.

Direct jobs ask a model about an image. A suite's describe stage adds two chained kinds:
`describe` jobs (a VLM writes a description of the image) and, once those are answered,
`diagnose` jobs (a text-only model answers the closed question from the description alone,
keyed by the description's text, so a changed description reruns only its diagnoses: see
`medbench.run.diagnose`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from medbench.data import Sample, hub_revision, load_samples, sha256_file
from medbench.errors import BackendError, DataError, UnknownIdError
from medbench.run.backends.base import Request
from medbench.run.identity import ModelIdentity, placeholder_identity, resolve_identity
from medbench.spec import (
    OPTION_LETTERS,
    ORIGINAL_IMAGE,
    ImageRef,
    Messages,
    ModelSpec,
    PromptFamilySpec,
    SuiteSpec,
    TaskSpec,
    VariantSpec,
    asked_of,
    for_model,
    options_by_letter,
    render,
    token_budget,
)

if TYPE_CHECKING:
    from medbench.data.variants import InputView, Recipe
    from medbench.spec.loading import SpecSet
from medbench.run.jobs import Job, Prompt, _baseline_hints, _replicates, key_parts


@dataclass
class Plan:
    """The jobs of a suite, deterministically ordered, with what is needed to run them."""

    suite: SuiteSpec
    jobs: list[Job]
    samples: dict[str, list[Sample]]
    identities: dict[str, ModelIdentity]
    prompts: dict[tuple[str, str, str], Prompt] = field(default_factory=dict)
    """(family, variant, task) -> the rendered prompt (images filled in per job)."""
    sample_prompts: dict[tuple[str, str, str, str], Prompt] = field(default_factory=dict)
    """(family, variant, task, sample) -> the prompt of a task whose samples bring their own
    question or options (closed VQA), rendered per sample."""
    models: list[str] = field(default_factory=list)
    """The suite's models in this plan (identities also holds the diagnosers)."""
    diagnoses: dict[str, Messages] = field(default_factory=dict)
    """Content key of a diagnose job -> its text-only messages."""
    unavailable: dict[str, str] = field(default_factory=dict)
    """Models of the suite whose identity could not be resolved (e.g. a hub revision offline),
    with the reason: they have no jobs; the others are planned all the same."""
    unreadable: dict[str, str] = field(default_factory=dict)
    """Content key of a job whose image could not be read -> why (it fails without a model)."""
    images: dict[tuple[str, str, str, str], tuple[ImageRef, ...]] = field(default_factory=dict)
    """(task, sample, image variant, view) -> the images its jobs show instead of the sample's
    own; the view is the model's input the variant is applied at (`views`)."""
    views: dict[str, str] = field(default_factory=dict)
    """model -> the `InputView.token` its image variants are applied at, for each model that
    sees images at a known input (`image_variants_at: model_input`)."""
    blind_view: str = ""
    """The view under which the other models' image-variant jobs find their images: the
    file (`""`), or any view when every model that looks has one (a baseline never looks)."""
    dataset_revisions: dict[str, str] = field(default_factory=dict)
    """task -> the commit sha its Hub dataset was read at (tasks with Hub data only)."""
    systems: dict[str, str] = field(default_factory=dict)
    """model -> its default system text, sent where a variant has none (models with one)."""
    recipes: dict[str, Recipe] = field(default_factory=dict)
    """Recipe key -> how to make a derived image its jobs show (derived by the run, for the
    answers it lacks: `medbench.run.imagejobs.derive_for`)."""
    images_dir: Path | None = None
    """The derived-image store's folder (None: the one in medbench's home folder)."""
    budgets: dict[tuple[str, str], int] = field(default_factory=dict)
    """(model, family) -> the token budget where the family's changes the model's own."""
    _by_id: dict[tuple[str, str], Sample] = field(default_factory=dict, repr=False)

    def prompt(self, family: str, variant: str, task: str, sample: str) -> Prompt:
        """The rendered prompt a sample is asked under a family's variant."""
        own = self.sample_prompts.get((family, variant, task, sample))
        return own if own is not None else self.prompts[(family, variant, task)]

    def prompt_of(self, job: Job) -> Prompt:
        """The rendered prompt of a job."""
        return self.prompt(job.family, job.variant, job.task, job.sample)

    def image_slot(self, job: Job) -> tuple[str, str, str, str]:
        """The key of `plan.images` of an image-variant job."""
        return (
            job.task,
            job.sample,
            job.image_variant,
            self.views.get(job.model, self.blind_view),
        )

    def request(self, job: Job) -> Request:
        """The backend request of a job: messages with the sample's image, or the description."""
        prompt = self.prompt_of(job)
        if job.key in self.diagnoses:
            return Request(
                job.key,
                self.diagnoses[job.key],
                prompt.rendered.options,
                prompt.positive_options,
                prompt.majority_option,
                self.budgets.get((job.model, job.family)),
            )
        sample = self.sample(job.task, job.sample)
        base = prompt.rendered.messages
        images = (
            (ImageRef(str(sample.path), sample.sha256),)
            if job.image_variant == ORIGINAL_IMAGE
            else self.images[self.image_slot(job)]
        )
        messages = for_model(replace(base, images=images), self.systems.get(job.model))
        return Request(
            job.key,
            messages,
            prompt.rendered.options,
            prompt.positive_options,
            prompt.majority_option,
            self.budgets.get((job.model, job.family)),
        )

    def sample(self, task: str, sample_id: str) -> Sample:
        """The sample `sample_id` of task `task`."""
        if not self._by_id:
            self._by_id.update(
                ((task_id, s.id), s) for task_id, samples in self.samples.items() for s in samples
            )
        return self._by_id[(task, sample_id)]


def limit_samples(samples: list[Sample], limit: int | None) -> list[Sample]:
    """At most `limit` samples, taken round-robin over labels so every class stays in."""
    if limit is None or limit >= len(samples):
        return samples
    by_label: dict[str, list[Sample]] = {}
    for s in samples:
        by_label.setdefault(s.label, []).append(s)
    kept: list[Sample] = []
    queues = [by_label[label] for label in sorted(by_label)]
    depth = 0
    while len(kept) < limit:
        for queue in queues:
            if depth < len(queue) and len(kept) < limit:
                kept.append(queue[depth])
        depth += 1
    return sorted(kept, key=lambda s: s.id)


def _render_prompts(
    specs: SpecSet, family_ids: list[str], task_ids: list[str], samples: dict[str, list[Sample]]
) -> tuple[dict[tuple[str, str, str], Prompt], dict[tuple[str, str, str, str], Prompt]]:
    """Every (family, variant, task) prompt the plan's jobs use, rendered once; and for a task
    whose samples bring their own question or options, every (family, variant, task, sample)."""
    prompts: dict[tuple[str, str, str], Prompt] = {}
    own: dict[tuple[str, str, str, str], Prompt] = {}
    for f in family_ids:
        family = specs.families[f]
        for variant in family.variants:
            for t in task_ids:
                task = specs.tasks[t]
                rendered = render(family, variant, task, ())
                positive, majority = _baseline_hints(task, family, samples[t])
                prompts[(f, variant.id, t)] = Prompt(rendered, family.answer, positive, majority)
                if task.per_sample:
                    for s in samples[t]:
                        own[(f, variant.id, t, s.id)] = _sample_prompt(
                            task, family, variant, s, positive, majority, samples[t]
                        )
    return prompts, own


def _sample_prompt(
    task: TaskSpec,
    family: PromptFamilySpec,
    variant: VariantSpec,
    sample: Sample,
    positive: tuple[str, ...],
    majority: str | None,
    samples: list[Sample],
) -> Prompt:
    """A sample's own prompt: its question, and for multiple choice its options, each option
    answering for the label of its letter (`a` for the first in the data's order)."""
    asked = asked_of(task, sample)
    rendered = render(family, variant, task, (), asked=asked)
    by_option = options_by_letter(asked, family.answer)
    if not by_option:
        return Prompt(rendered, family.answer, positive, majority)
    letters = Counter(s.label for s in samples)
    common = min(letters, key=lambda letter: (-letters[letter], letter))
    index = OPTION_LETTERS.index(common)
    shown = sample.options[index] if index < len(sample.options) else sample.options[0]
    return Prompt(rendered, family.answer, (), shown, by_option)


def make_plan(
    specs: SpecSet,
    suite_id: str,
    *,
    models_dir: Path,
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    hasher: Callable[[Path], str] = sha256_file,
    snapshots: Callable[[ModelSpec], str | None] | None = None,
    images_dir: Path | None = None,
    placeholders: bool = False,
    dataset_revisions: Mapping[str, str] | None = None,
) -> Plan:
    """Expand suite x tasks x families x variants x samples x models into sorted jobs.

    `snapshots` gives the served snapshot of `openai` models without a pinned one (see
    `medbench.run.served`); planning itself never contacts an endpoint. A suite's derived images
    are named by their recipes, never made here: the run derives those its missing answers need
    into `images_dir` (default: the one in medbench's home folder). With
    `placeholders`, a model whose identity cannot be resolved (a hub revision offline) is still
    planned, under a placeholder identity, for counting its cost; it stays in `unavailable`.
    `dataset_revisions` (task -> commit sha, as a record names them) reads each task's Hub
    dataset at that commit instead of at its revision resolved today."""
    suite = specs.suite(suite_id)
    model_ids = sorted(_select(suite.models, models, "model", suite.id))
    task_ids = sorted(_select(suite.tasks, tasks, "task", suite.id))
    family_ids = sorted(suite.prompt_families)
    pinned = dataset_revisions or {}
    revisions = {
        t: sha
        for t in task_ids
        if (sha := hub_revision(specs.tasks[t], suite.data, pinned.get(t))) is not None
    }
    samples = {
        t: limit_samples(
            load_samples(
                specs.tasks[t],
                suite.data,
                specs.root,
                limit_per_class=suite.limit_per_class_of(t),
                seed=suite.seed,
                hasher=hasher,
                revision=revisions.get(t),
            ),
            limit,
        )
        for t in task_ids
    }
    stage = suite.describe
    diagnosers = sorted(stage.diagnosers) if stage is not None else []
    identities: dict[str, ModelIdentity] = {}
    unavailable: dict[str, str] = {}
    for m in [*model_ids, *diagnosers]:
        try:
            identities[m] = resolve_identity(
                specs.models[m], specs.root, models_dir, hasher, specs=specs, snapshots=snapshots
            )
        except (BackendError, DataError) as e:  # this model cannot run; the others can
            unavailable[m] = str(e)
            if placeholders:
                identities[m] = placeholder_identity(specs.models[m])
    model_ids = [m for m in model_ids if m in identities]
    scored = list(family_ids)
    if stage is not None:
        scored += [stage.family, *stage.diagnose_families]
    prompts, own = _render_prompts(specs, sorted(set(scored)), task_ids, samples)
    budgets = {
        (m, f): budget
        for m in identities
        for f in sorted(set(scored))
        if (budget := token_budget(specs.models[m], specs.families[f])) is not None
    }
    jobs: list[Job] = []
    unreadable: dict[str, str] = {}
    sha256 = hashlib.sha256
    for m in model_ids:
        identity = identities[m]
        spec = specs.models[m]
        baseline = spec.backend == "baseline"
        system = spec.default_system
        kinds = [(f, "direct") for f in family_ids]
        if stage is not None and not baseline and not spec.text_only:
            kinds.append((stage.family, "describe"))
        for t in task_ids:
            for f, pipeline in sorted(kinds):
                budget = budgets.get((m, f))
                for v in sorted(v.id for v in specs.families[f].variants):
                    budget = budgets.get((m, f))
                    shared = key_parts(identity, prompts[(f, v, t)], baseline, 0, budget, system)
                    for s in samples[t]:
                        mine = own.get((f, v, t, s.id))
                        head, tail = (
                            shared
                            if mine is None
                            else key_parts(identity, mine, baseline, 0, budget, system)
                        )
                        key = sha256(head + b'"' + s.sha256.encode() + b'"' + tail).hexdigest()
                        jobs.append(Job(key, m, t, f, v, s.id, s.label, pipeline))
                        if s.error is not None:
                            unreadable[key] = s.error
        if suite.noise_floor is not None:
            jobs.extend(_replicates(specs, suite, m, identity, prompts, samples, own, budgets))
    plan = Plan(
        suite,
        jobs,
        samples,
        identities,
        prompts,
        own,
        models=model_ids,
        unavailable=unavailable,
        dataset_revisions=revisions,
        systems={m: text for m in identities if (text := specs.models[m].default_system)},
        budgets=budgets,
    )
    plan.unreadable.update(unreadable)
    if suite.image_variants:
        add_image_variant_jobs(plan, specs, images_dir)
    return plan


def add_image_variant_jobs(plan: Plan, specs: SpecSet, images_dir: Path | None = None) -> None:
    """Append the jobs of the suite's image variants: each closed family's reference variant
    (or every variant, with `image_variant_prompts: all`) asked about each variant's image.

    A job's key is the original job's with the variant's image in place of the sample's: a
    derived image by its recipe (its source's hash, the transform, the code and library
    versions: nothing is derived here), an ablation's original image by its hash, no image for
    `no_image`; so the original jobs' keys never change. A baseline's jobs keep
    the original key: baselines never look at the image, and so answer every variant alike."""
    from medbench.data.variants import ImageStore, variant_images
    from medbench.data.variants import images_dir as default_images_dir

    suite = plan.suite
    plan.images_dir = images_dir if images_dir is not None else default_images_dir()
    views = _model_views(plan, specs)
    images, errors, recipes = variant_images(
        suite, plan.samples, ImageStore(plan.images_dir), list(views.values())
    )
    plan.images.update(images)
    plan.recipes.update(recipes)
    asked = []
    for f in sorted(suite.prompt_families):
        family = specs.families[f]
        if family.answer == "text":
            continue
        every = suite.image_variant_prompts == "all"
        variants = [v.id for v in family.variants] if every else [family.reference]
        asked += [(f, v) for v in sorted(variants)]
    sha256 = hashlib.sha256
    # each slot's images as they enter a key, once: (image variant id, inner bytes, slot)
    shown: dict[tuple[str, str, str], list[tuple[str, bytes, tuple[str, str, str, str]]]] = {}
    for task, s, token in (
        (t, s, v) for t in sorted(plan.samples) for s in plan.samples[t] for v in views
    ):
        shown[(task, s.id, token)] = [
            (v.id, b"".join(b'"' + i.sha256.encode() + b'"' for i in images[slot]), slot)
            for v in suite.image_variants
            if (slot := (task, s.id, v.id, token)) in images
        ]
    jobs = plan.jobs
    for m in plan.models:
        token = plan.views.get(m, plan.blind_view)
        baseline = specs.models[m].backend == "baseline"
        system, identity = specs.models[m].default_system, plan.identities[m]
        for t in sorted(plan.samples):
            for f, v in asked:
                identity, budget = plan.identities[m], plan.budgets.get((m, f))
                shared = key_parts(identity, plan.prompts[(f, v, t)], baseline, 0, budget, system)
                for s in plan.samples[t]:
                    slots = shown[(t, s.id, token)]
                    if not slots:  # outside the image variants' subset
                        continue
                    mine = plan.sample_prompts.get((f, v, t, s.id))
                    head, tail = (
                        shared
                        if mine is None
                        else key_parts(identity, mine, baseline, 0, budget, system)
                    )
                    if baseline:  # a baseline never looks at the image: the original's key
                        key = sha256(head + b'"' + s.sha256.encode() + b'"' + tail).hexdigest()
                    for variant, inner, slot in slots:
                        if not baseline:
                            key = sha256(head + inner + tail).hexdigest()
                            if slot in errors:
                                plan.unreadable[key] = errors[slot]
                        jobs.append(Job(key, m, t, f, v, s.id, s.label, image_variant=variant))


def _model_views(plan: Plan, specs: SpecSet) -> dict[str, InputView | None]:
    """Each view the suite's image variants are applied at, by token (`""`: the file, for the
    models that look without a known view); fills `plan.views` and `plan.blind_view`."""
    from medbench.run.views import input_view

    views: dict[str, InputView | None] = {}
    at_file = plan.suite.image_variants_at == "file"
    for m in plan.models:
        view = None if at_file else input_view(specs.models[m])
        if view is not None:
            views[view.token] = view
            plan.views[m] = view.token
        elif specs.models[m].backend != "baseline":
            views[""] = None
    if not views:
        views[""] = None
    plan.blind_view = "" if "" in views else next(iter(views))
    return views


def _select(
    available: Sequence[str], chosen: Sequence[str] | None, what: str, suite: str
) -> list[str]:
    if not chosen:
        return list(available)
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise UnknownIdError(what, unknown[0], list(available), f"of suite {suite}")
    return list(dict.fromkeys(chosen))
