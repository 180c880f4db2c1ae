"""Looking after the answer cache: which rows today's specs still produce, and an export
`medbench parse` reads.

A row is in use when some suite's plan (its describe stage's diagnoses and its likelihood stage's
option scores included) asks for its key. Answers of an `audit-parse` judge come from no spec:
they count as unused. Suites that cannot be planned here (their data is absent, an endpoint
would have to be asked for its snapshot) are skipped, and every row of their models is kept, as
are the rows of a model the plan cannot resolve (a revision offline, a missing checkpoint):
nothing is pruned on a guess.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.data import Sample, read_samples
from medbench.errors import DataError, MedbenchError
from medbench.run.cache import Answer, Cache
from medbench.spec import (
    PromptFamilySpec,
    TaskSpec,
    TemplateError,
    VariantSpec,
    asked_of,
    offered_options,
    options_by_letter,
    render,
)
from medbench.spec.loading import SpecSet


@dataclass
class Usage:
    """The keys today's specs produce, and what could not be planned."""

    keys: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)
    """Suite id -> why it could not be planned here."""
    kept_models: set[str] = field(default_factory=set)
    """Models of the skipped suites: their rows are never pruned."""

    def unused(self, answer: Answer) -> bool:
        """Whether no current spec produces this row (and it is safe to say so)."""
        return answer.key not in self.keys and answer.model not in self.kept_models


def _unpinned_endpoint(specs: SpecSet, models: list[str]) -> str | None:
    for model_id in models:
        spec = specs.models[model_id]
        if spec.openai is not None and spec.openai.snapshot is None:
            return model_id
    return None


def usage(specs: SpecSet, cache: Cache, models_dir: Path) -> Usage:
    """Plan every suite (no model is loaded, no endpoint asked) and collect the keys it uses."""
    from medbench.run.diagnose import attach_diagnoses
    from medbench.run.likelihood.jobs import likelihood_jobs
    from medbench.run.plan import make_plan

    found = Usage()
    for suite_id in sorted(specs.suites):
        suite = specs.suites[suite_id]
        models = [*suite.models, *(suite.describe.diagnosers if suite.describe else ())]
        endpoint = _unpinned_endpoint(specs, models)
        try:
            if endpoint is not None:
                raise MedbenchError(
                    f"model {endpoint} would have to ask its endpoint for its snapshot "
                    "(pin `openai.snapshot` to plan it offline)"
                )
            plan = make_plan(specs, suite_id, models_dir=models_dir, hasher=cache.hash_file)
            attach_diagnoses(plan, specs, cache)
        except MedbenchError as e:
            found.skipped[suite_id] = str(e).splitlines()[0]
            found.kept_models.update(models)
            continue
        found.keys.update(job.key for job in plan.jobs)
        if suite.likelihood is not None:
            found.keys.update(job.key for job in likelihood_jobs(plan, specs)[0])
        # a model the plan could not resolve here (offline, missing checkpoint) keeps its rows
        found.kept_models.update(plan.unavailable)
    cache.flush_hashes()
    return found


def by_model(cache: Cache, used: Usage) -> list[dict[str, Any]]:
    """Per model: stored answers, failures, model time, and the rows no current spec produces."""
    table: dict[str, dict[str, Any]] = {}
    for answer in cache.iter_answers():
        row = table.setdefault(
            answer.model,
            {"model": answer.model, "answers": 0, "failed": 0, "seconds": 0.0, "unused": 0},
        )
        row["failed" if answer.error is not None else "answers"] += 1
        row["seconds"] += answer.seconds
        row["unused"] += used.unused(answer)
    return [table[m] | {"seconds": round(table[m]["seconds"], 3)} for m in sorted(table)]


def export_rows(
    cache: Cache, specs: SpecSet | None, *, failed: bool = False
) -> Iterator[dict[str, Any]]:
    """Every finished answer (with `failed`, failed ones too) as a record `medbench parse`
    reads: `response`, and where the specs know the task and variant `options`, `lettered`,
    `aliases` and `finding`; the row's other fields beside them. A closed-VQA answer's
    `options` are its sample's own, as the plan offered them (none where its sample cannot be
    read here)."""
    asked = _AskedSamples(specs) if specs is not None else None
    for answer in cache.iter_answers():
        if answer.error is not None and not failed:
            continue
        record = dict(answer.__dict__)
        record["response"] = record.pop("output")
        if asked is not None:
            record.update(_parse_fields(answer, asked))
        yield record


def _parse_fields(answer: Answer, asked: _AskedSamples) -> dict[str, Any]:
    specs = asked.specs
    task = specs.tasks.get(answer.task)
    family = specs.families.get(answer.family)
    variant = next((v for v in family.variants if v.id == answer.variant), None) if family else None
    if task is None or family is None or variant is None:
        return {}
    question = None
    if task.per_sample:
        sample = asked.sample_of(task, family, variant, answer)
        if sample is None:
            return {}
        question = asked_of(task, sample)
    fields: dict[str, Any] = {
        "options": list(offered_options(task, variant, family, question)),
        "lettered": variant.lettered,
    }
    # a multiple-choice sample's reply is read against its options alone, as scoring reads it
    if family.answer == "label" and not options_by_letter(question, family.answer):
        fields["aliases"] = {label.name: list(label.aliases) for label in task.labels}
    if family.answer == "yes_no" and task.finding is not None:
        fields["finding"] = task.finding
    return fields


class _AskedSamples:
    """The samples of closed-VQA tasks, read once per (task, data source), to find the one an
    answer is about: a cached row names its task and sample id, not the data source."""

    def __init__(self, specs: SpecSet) -> None:
        self.specs = specs
        self.read: dict[tuple[str, str], dict[str, Sample]] = {}

    def sample_of(
        self, task: TaskSpec, family: PromptFamilySpec, variant: VariantSpec, answer: Answer
    ) -> Sample | None:
        """The sample the answer is about: the one (of those with its id in the task's data
        sources) whose prompt renders to the text the model was sent, or the only one."""
        sent = _sent_text(answer)
        found = []
        for source in task.data:  # a source is read only if the ones before do not match
            sample = self._samples(task, source).get(answer.sample)
            if sample is None:
                continue
            try:
                rendered = render(family, variant, task, (), asked=asked_of(task, sample))
            except TemplateError:
                rendered = None
            if rendered is not None and rendered.messages.text == sent:
                return sample
            found.append(sample)
        return found[0] if len({(s.question, s.options) for s in found}) == 1 else None

    def _samples(self, task: TaskSpec, source: str) -> dict[str, Sample]:
        key = (task.id, source)
        if key not in self.read:
            try:
                samples = read_samples(task, source, self.specs.root)
            except (DataError, OSError):  # data not on this machine: its rows get no options
                samples = []
            self.read[key] = {s.id: s for s in samples}
        return self.read[key]


def _sent_text(answer: Answer) -> str | None:
    """The user text the model was sent, from the row's stored prompt."""
    try:
        stored = json.loads(answer.prompt)
    except ValueError:
        return None
    text = stored.get("text") if isinstance(stored, dict) else None
    return text if isinstance(text, str) else None


__all__ = ["Usage", "by_model", "export_rows", "usage"]
