"""A job and its content key: what one model is asked about one image, keyed by everything
that changes the answer (never by a path or a batch size); the noise floor's replicates."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medbench.data import Sample, canonical_json
from medbench.run.cache import CACHE_FORMAT
from medbench.run.identity import ModelIdentity
from medbench.spec import (
    ORIGINAL_IMAGE,
    PromptFamilySpec,
    Rendered,
    SuiteSpec,
    TaskSpec,
    budgeted,
    for_model,
    placed,
)

if TYPE_CHECKING:
    from medbench.spec.loading import SpecSet


_IMAGE_SLOT = "\u0000image\u0000"


@dataclass(frozen=True, slots=True)
class Job:
    """One model answering one rendered prompt about one image."""

    key: str
    model: str
    task: str
    family: str
    variant: str
    sample: str
    label: str
    """The true label id of the sample."""
    pipeline: str = "direct"
    """`direct`, `describe`, or `described/<describe variant>/<diagnoser>` for a diagnosis."""
    subject: str = ""
    """The evaluated model: `model` itself, or for a diagnosis the model that described."""
    replicate: int = 0
    """0 for an answer; 1 for the noise-floor replicate of a reference-variant job (its key
    carries the tag, so it is answered again, in another batch, not served from the cache)."""
    image_variant: str = ORIGINAL_IMAGE
    """`original` for the sample's own image, else the id of one of the suite's
    `image_variants` (a transformed image, another class's image, or none at all)."""

    @property
    def evaluated(self) -> str:
        """The model whose answer this is, for scoring."""
        return self.subject or self.model


@dataclass(frozen=True)
class Prompt:
    """A variant rendered for a task, with what the baselines need to answer it."""

    rendered: Rendered
    answer: str
    """`label`, `yes_no` or `text`: from the family."""
    positive_options: tuple[str, ...]
    majority_option: str | None
    by_option: tuple[tuple[str, str], ...] = ()
    """For a multiple-choice sample: (offered option, label id of its letter); empty: the
    task's label names answer for its labels."""


def _baseline_hints(
    task: TaskSpec, family: PromptFamilySpec, samples: list[Sample]
) -> tuple[tuple[str, ...], str | None]:
    positive_ids = {label.id for label in task.labels if label.positive}
    if family.answer == "yes_no":
        n_pos = sum(s.label in positive_ids for s in samples)
        return ("yes",), "yes" if n_pos > len(samples) - n_pos else "no"
    if family.answer == "text":
        return (), None
    counts = Counter(s.label for s in samples)
    order = {label.id: i for i, label in enumerate(task.labels)}
    majority = min(counts, key=lambda label: (-counts[label], order[label]))
    names = {label.id: label.name for label in task.labels}
    positive = tuple(label.name for label in task.labels if label.positive)
    return positive, names[majority]


def key_parts(
    identity: ModelIdentity,
    prompt: Prompt,
    baseline: bool,
    replicate: int = 0,
    budget: int | None = None,
    system: str | None = None,
) -> tuple[bytes, bytes]:
    """Canonical JSON of a job's payload split around its image hash, so keys cost one hash.
    `budget`: the family's token budget where it changes the model's (see `token_budget`);
    `system`: the model's default system text (only in the messages, where the variant has none)."""
    messages = for_model(prompt.rendered.messages, system)
    payload: dict[str, Any] = {
        "v": CACHE_FORMAT,
        "model": budgeted(identity.payload, budget),
        "messages": placed(
            {"system": messages.system, "text": messages.text, "images": [_IMAGE_SLOT]}, messages
        ),
    }
    if replicate:
        payload["replicate"] = replicate
    if baseline:
        payload["baseline"] = {
            "options": list(prompt.rendered.options),
            "positive": list(prompt.positive_options),
            "majority": prompt.majority_option,
        }
    text = canonical_json(payload)
    head, tail = text.split(canonical_json(_IMAGE_SLOT))
    return head.encode(), tail.encode()


def noise_floor_samples(suite: SuiteSpec, task: str, samples: list[Sample]) -> list[Sample]:
    """The seeded subset of a task's images whose reference answers are replicated."""
    assert suite.noise_floor is not None
    k = min(suite.noise_floor.images_per_task, len(samples))
    chosen = random.Random(f"{suite.seed}:noise_floor:{task}").sample(range(len(samples)), k)
    return [samples[i] for i in sorted(chosen)]


def _replicates(
    specs: SpecSet,
    suite: SuiteSpec,
    model: str,
    identity: ModelIdentity,
    prompts: dict[tuple[str, str, str], Prompt],
    samples: dict[str, list[Sample]],
    own: dict[tuple[str, str, str, str], Prompt],
    budgets: dict[tuple[str, str], int],
) -> list[Job]:
    """The replicate jobs of a model: every scored family's reference variant, a second time,
    for each task's noise-floor subset (direct answers only)."""
    jobs = []
    for t in sorted(samples):
        subset = [s for s in noise_floor_samples(suite, t, samples[t]) if s.error is None]
        for f in sorted(suite.prompt_families):
            family = specs.families[f]
            if family.answer == "text":
                continue
            baseline = specs.models[model].backend == "baseline"
            system, budget = specs.models[model].default_system, budgets.get((model, f))
            reference = prompts[(f, family.reference, t)]
            shared = key_parts(identity, reference, baseline, 1, budget, system)
            for s in subset:
                mine = own.get((f, family.reference, t, s.id))
                head, tail = (
                    shared
                    if mine is None
                    else key_parts(identity, mine, baseline, 1, budget, system)
                )
                key = hashlib.sha256(head + b'"' + s.sha256.encode() + b'"' + tail).hexdigest()
                jobs.append(Job(key, model, t, f, family.reference, s.id, s.label, replicate=1))
    return jobs
