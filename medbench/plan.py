"""Expand a suite into jobs, each with the content key of its answer."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.backends.base import Request
from medbench.cache import CACHE_FORMAT, canonical_json
from medbench.data import Sample, load_samples, sha256_file
from medbench.errors import MedbenchError
from medbench.identity import ModelIdentity, resolve_identity
from medbench.prompts import ImageRef, Messages, Rendered, render
from medbench.specs import PromptFamilySpec, SuiteSpec, TaskSpec

if TYPE_CHECKING:
    from medbench.loading import SpecSet

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


@dataclass(frozen=True)
class Prompt:
    """A variant rendered for a task, with what the baselines need to answer it."""

    rendered: Rendered
    answer: str
    """`label`, `yes_no` or `text`: from the family."""
    positive_options: tuple[str, ...]
    majority_option: str | None


@dataclass
class Plan:
    """The jobs of a suite, deterministically ordered, with what is needed to run them."""

    suite: SuiteSpec
    jobs: list[Job]
    samples: dict[str, list[Sample]]
    identities: dict[str, ModelIdentity]
    prompts: dict[tuple[str, str, str], Prompt] = field(default_factory=dict)
    """(family, variant, task) -> the rendered prompt (images filled in per job)."""

    def request(self, job: Job) -> Request:
        """The backend request of a job: messages with the sample's image."""
        prompt = self.prompts[(job.family, job.variant, job.task)]
        sample = self._sample(job.task, job.sample)
        base = prompt.rendered.messages
        messages = Messages(base.system, base.text, (ImageRef(str(sample.path), sample.sha256),))
        return Request(
            job.key,
            messages,
            prompt.rendered.options,
            prompt.positive_options,
            prompt.majority_option,
        )

    def _sample(self, task: str, sample_id: str) -> Sample:
        index = self.__dict__.setdefault("_index", {})
        if not index:
            for task_id, samples in self.samples.items():
                for s in samples:
                    index[(task_id, s.id)] = s
        found: Sample = index[(task, sample_id)]
        return found


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


def _key_parts(identity: ModelIdentity, prompt: Prompt, baseline: bool) -> tuple[bytes, bytes]:
    """Canonical JSON of a job's payload split around its image hash, so keys cost one hash."""
    messages = prompt.rendered.messages
    payload: dict[str, Any] = {
        "v": CACHE_FORMAT,
        "model": identity.payload,
        "messages": {"system": messages.system, "text": messages.text, "images": [_IMAGE_SLOT]},
    }
    if baseline:
        payload["baseline"] = {
            "options": list(prompt.rendered.options),
            "positive": list(prompt.positive_options),
            "majority": prompt.majority_option,
        }
    text = canonical_json(payload)
    head, tail = text.split(canonical_json(_IMAGE_SLOT))
    return head.encode(), tail.encode()


def make_plan(
    specs: SpecSet,
    suite_id: str,
    *,
    models_dir: Path,
    models: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    hasher: Callable[[Path], str] = sha256_file,
) -> Plan:
    """Expand suite x tasks x families x variants x samples x models into sorted jobs."""
    suite = specs.suite(suite_id)
    model_ids = sorted(_select(suite.models, models, "model", suite.id))
    task_ids = sorted(_select(suite.tasks, tasks, "task", suite.id))
    family_ids = sorted(suite.prompt_families)
    samples = {
        t: limit_samples(
            load_samples(
                specs.tasks[t],
                suite.data,
                specs.root,
                limit_per_class=suite.limit_per_class,
                seed=suite.seed,
                hasher=hasher,
            ),
            limit,
        )
        for t in task_ids
    }
    identities = {
        m: resolve_identity(specs.models[m], specs.root, models_dir, hasher) for m in model_ids
    }
    prompts: dict[tuple[str, str, str], Prompt] = {}
    for f in family_ids:
        family = specs.families[f]
        for variant in family.variants:
            for t in task_ids:
                task = specs.tasks[t]
                rendered = render(family, variant, task, ())
                positive, majority = _baseline_hints(task, family, samples[t])
                prompts[(f, variant.id, t)] = Prompt(rendered, family.answer, positive, majority)
    jobs: list[Job] = []
    sha256 = hashlib.sha256
    for m in model_ids:
        identity = identities[m]
        baseline = specs.models[m].backend == "baseline"
        for t in task_ids:
            for f in family_ids:
                for v in sorted(v.id for v in specs.families[f].variants):
                    head, tail = _key_parts(identity, prompts[(f, v, t)], baseline)
                    for s in samples[t]:
                        key = sha256(head + b'"' + s.sha256.encode() + b'"' + tail).hexdigest()
                        jobs.append(Job(key, m, t, f, v, s.id, s.label))
    return Plan(suite, jobs, samples, identities, prompts)


def _select(
    available: Sequence[str], chosen: Sequence[str] | None, what: str, suite: str
) -> list[str]:
    if not chosen:
        return list(available)
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise MedbenchError(
            f"suite {suite}: {unknown[0]!r} is not a {what} of this suite. "
            f"Choose from: {', '.join(available)}."
        )
    return list(dict.fromkeys(chosen))
