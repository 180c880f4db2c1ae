"""Batch invariance: answer the same jobs at batch size 1 and N and list the answers that differ."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from medbench.errors import UsageError
from medbench.run import Job, Plan, derive_for
from medbench.run.backends import BackendContext, Request
from medbench.spec.loading import SpecSet


@dataclass(frozen=True)
class Flip:
    """A job answered differently alone and in a batch."""

    job: Job
    prompt: str
    """What the model was asked: system and user text, and the image."""
    alone: str | None
    batched: str | None


@dataclass(frozen=True)
class InvarianceReport:
    """One model's check: how many jobs were compared, and the flips."""

    model: str
    n_jobs: int
    batch_size: int
    flips: list[Flip]


def suite_of(specs: SpecSet, models: Sequence[str]) -> str:
    """The one suite that lists every model of `models` (an error names the candidates)."""
    if not models:
        raise UsageError("name a suite with --suite, or the models to check with --model.")
    wanted = set(models)
    suites = sorted(s.id for s in specs.suites.values() if wanted <= set(s.models))
    if len(suites) == 1:
        return suites[0]
    shown = ", ".join(sorted(wanted))
    if not suites:
        raise UsageError(f"no suite lists {shown}. Name one with --suite.")
    raise UsageError(f"several suites list {shown} ({', '.join(suites)}). Name one with --suite.")


def checked_models(specs: SpecSet, plan: Plan, models: Sequence[str]) -> list[str]:
    """The models to check: those asked for, else every suite model that computes its answers."""
    if models:
        return list(models)
    return [m for m in plan.models if specs.models[m].backend != "baseline"]


def describe_request(request: Request) -> str:
    """A request as one readable block: system, user text, image paths."""
    messages = request.messages
    lines = [f"system: {messages.system}"] if messages.system else []
    lines.append(f"user: {messages.text}")
    lines.extend(f"image: {image.path}" for image in messages.images)
    return "\n".join(lines)


def check_batch_invariance(
    plan: Plan, specs: SpecSet, model: str, *, n: int, batch_size: int, context: BackendContext
) -> InvarianceReport:
    """Answer `n` of the model's jobs (spread over the plan) alone and `batch_size` at a time."""
    from medbench.run.backends import load_backend
    from medbench.run.executors import ModelWork, prepare_checkpoint

    jobs = list({job.key: job for job in plan.jobs if job.model == model}.values())
    step = max(1, len(jobs) // n)
    chosen = jobs[::step][:n]
    derive_for(plan, chosen)  # the derived images of image-variant jobs are made on demand
    chosen = [job for job in chosen if job.key not in plan.unreadable]
    requests = [plan.request(job) for job in chosen]
    work = ModelWork(specs.models[model], plan.identities[model], requests)
    prepare_checkpoint(work)
    context = work.identity.context(context)
    answers: dict[int, list[str | None]] = {}
    for size in (1, batch_size):
        backend = load_backend(work.spec, replace(context, batch_size=size))
        try:
            texts: list[str | None] = []
            for start in range(0, len(requests), size):
                texts.extend(o.text for o in backend.generate(requests[start : start + size]))
            answers[size] = texts
        finally:
            backend.close()
    flips = [
        Flip(job, describe_request(request), alone, batched)
        for job, request, alone, batched in zip(
            chosen, requests, answers[1], answers[batch_size], strict=True
        )
        if alone != batched
    ]
    return InvarianceReport(model, len(requests), batch_size, flips)
