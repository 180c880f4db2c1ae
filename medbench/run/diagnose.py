"""The describe pipeline's second step: a text-only model diagnoses from each answered
description, keyed by the description's text (a changed description reruns only its
diagnoses)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medbench.run.cache import content_key
from medbench.run.jobs import Job, Prompt
from medbench.run.plan import Plan
from medbench.spec import Messages, PromptFamilySpec, TaskSpec, budgeted, for_model, render

if TYPE_CHECKING:
    from medbench.run.cache import Cache
    from medbench.spec.loading import SpecSet

DESCRIBED_FRAME = 'Here is a description of a {modality}: "{description}"\n\n'
"""Put before a diagnose prompt whose template does not place `{{ description }}` itself."""


def diagnose_messages(
    prompt: Prompt, task: TaskSpec, family: PromptFamilySpec, variant: str, description: str
) -> Messages:
    """A diagnose prompt: the variant rendered with the description, as text only."""
    spec = next(v for v in family.variants if v.id == variant)
    rendered = render(family, spec, task, (), description=description)
    text = rendered.messages.text
    if "description" not in spec.template:
        text = DESCRIBED_FRAME.format(modality=task.modality, description=description) + text
    return Messages(rendered.messages.system, text, ())


def add_diagnose_jobs(plan: Plan, specs: SpecSet, descriptions: dict[str, str]) -> int:
    """Append the diagnose jobs of every answered describe job; returns how many were added.

    `descriptions` maps a describe job's key to its stored text (finished answers only).
    """
    stage = plan.suite.describe
    if stage is None:
        return 0
    # A diagnosis is one (pipeline, subject, task, family, variant, sample); its key may be
    # shared with others (two images described alike): the answer is, the job is not.
    known = {
        (j.pipeline, j.subject, j.task, j.family, j.variant, j.sample)
        for j in plan.jobs
        if j.pipeline.startswith("described/")
    }
    added: list[Job] = []
    for job in plan.jobs:
        if job.pipeline != "describe" or job.key not in descriptions:
            continue
        task = specs.tasks[job.task]
        for diagnoser in sorted(d for d in stage.diagnosers if d in plan.identities):
            identity = plan.identities[diagnoser]
            for f in sorted(stage.diagnose_families):
                family = specs.families[f]
                for v in sorted(v.id for v in family.text_variants()):
                    prompt = plan.prompts[(f, v, job.task)]
                    messages = for_model(
                        diagnose_messages(prompt, task, family, v, descriptions[job.key]),
                        specs.models[diagnoser].default_system,
                    )
                    model = budgeted(identity.payload, plan.budgets.get((diagnoser, f)))
                    key = content_key({"model": model, "messages": messages.key_payload()})
                    pipeline = f"described/{job.variant}/{diagnoser}"
                    new = Job(
                        key, diagnoser, job.task, f, v, job.sample, job.label, pipeline, job.model
                    )
                    slot = (pipeline, job.model, job.task, f, v, job.sample)
                    if slot in known:
                        continue
                    known.add(slot)
                    plan.diagnoses[key] = messages
                    added.append(new)
    plan.jobs.extend(added)
    return len(added)


def attach_diagnoses(plan: Plan, specs: SpecSet, cache: Cache) -> int:
    """Add the diagnose jobs of every describe job whose description is in the cache."""
    stored = cache.get_many(job.key for job in plan.jobs if job.pipeline == "describe")
    descriptions = {
        key: answer.output
        for key, answer in stored.items()
        if answer.error is None and answer.output is not None
    }
    return add_diagnose_jobs(plan, specs, descriptions)
