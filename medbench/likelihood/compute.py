"""Compute the likelihood jobs the answer cache lacks: each model loaded once, batches stored
as they finish. One model failing to load is reported and the others go on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from medbench.backends.base import BackendContext, Request
from medbench.cache import Cache, canonical_json
from medbench.likelihood.jobs import LikelihoodAnswer, likelihood_jobs, likelihood_request
from medbench.plan import Job, Plan

if TYPE_CHECKING:
    from medbench.loading import SpecSet

CHUNK = 64
"""Requests scored, then stored, at a time: the unit a crash loses."""


@dataclass
class LikelihoodRun:
    """What computing a plan's likelihoods did."""

    planned: int = 0
    cached: int = 0
    ran: int = 0
    failed: int = 0
    forward_passes: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    """Model -> why its options are not scored."""
    failures: dict[str, str] = field(default_factory=dict)
    """Model -> the first error."""
    unshared: dict[str, dict[str, int]] = field(default_factory=dict)
    """Model -> why some requests were scored as full sequences, not from a shared prefix
    -> how many (the scores are the same; only the cost differs)."""

    def lines(self) -> list[str]:
        out = [
            f"likelihood: {self.planned} jobs planned: {self.cached} cached, {self.ran} ran, "
            f"{self.failed} failed, {self.forward_passes} forward passes."
        ]
        out += [f"  {m}: not scored: {why}." for m, why in sorted(self.skipped.items())]
        out += [f"  {m}: {why}" for m, why in sorted(self.failures.items())]
        out += [
            f"  {m}: {n} requests scored without a shared prefix: {why}."
            for m, reasons in sorted(self.unshared.items())
            for why, n in sorted(reasons.items())
        ]
        return out


def compute_likelihoods(
    plan: Plan, specs: SpecSet, cache: Cache, context: BackendContext | None
) -> LikelihoodRun:
    """Score the options of every likelihood job missing from the cache (none without a
    `context`: then only what is cached counts)."""
    jobs, skipped = likelihood_jobs(plan, specs)
    done = cache.finished_keys()
    run = LikelihoodRun(planned=len(jobs), skipped=skipped)
    todo: dict[str, dict[str, Job]] = {}
    for job in jobs:
        if job.key in done:
            run.cached += 1
        else:
            todo.setdefault(job.model, {}).setdefault(job.key, job)
    if context is None:
        return run
    for model, by_key in sorted(todo.items()):
        _score_model(plan, specs, cache, context, model, list(by_key.values()), run)
    return run


def _score_model(
    plan: Plan,
    specs: SpecSet,
    cache: Cache,
    context: BackendContext,
    model: str,
    jobs: Sequence[Job],
    run: LikelihoodRun,
) -> None:
    from medbench.backends import load_backend
    from medbench.backends.hf import HFBackend
    from medbench.backends.hf.likelihood import OptionScorer
    from medbench.executors import ModelWork
    from medbench.executors.local import prepare_checkpoint

    spec, identity = specs.models[model], plan.identities[model]
    try:
        prepare_checkpoint(ModelWork(spec, identity, []))
        backend = load_backend(spec, replace(context, checkpoint_dir=identity.checkpoint_dir))
    except Exception as e:  # one model failing never stops the suite
        run.failed += len(jobs)
        run.failures[model] = f"could not load: {type(e).__name__}: {e}"
        return
    try:
        if not isinstance(backend, HFBackend):
            run.skipped[model] = "only the hf backend scores options"
            return
        scorer = OptionScorer(backend)
        for start in range(0, len(jobs), CHUNK):
            chunk = jobs[start : start + CHUNK]
            requests = [likelihood_request(plan, job) for job in chunk]
            scores = scorer.score(requests)
            rows = []
            for job, request, score in zip(chunk, requests, scores, strict=True):
                output = None
                if score.error is None:
                    answer = LikelihoodAnswer(
                        score.options, score.total, score.n_tokens, score.merged
                    )
                    output = answer.to_json()
                    run.ran += 1
                else:
                    run.failed += 1
                    run.failures.setdefault(model, score.error)
                rows.append(_row(job, request, output, score.error, score.seconds))
            cache.put_many(rows)
        run.forward_passes += scorer.forward_passes
        if scorer.unshared:
            run.unshared[model] = dict(scorer.unshared)
    finally:
        backend.close()


def _row(
    job: Job, request: Request, output: str | None, error: str | None, seconds: float
) -> tuple[object, ...]:
    prompt = canonical_json(
        {
            **request.messages.key_payload(),
            "paths": [i.path for i in request.messages.images],
            "options": list(request.options),
        }
    )
    return (
        job.key,
        job.model,
        job.task,
        job.family,
        job.variant,
        job.sample,
        prompt,
        output,
        error,
        seconds,
    )


__all__ = ["CHUNK", "LikelihoodRun", "compute_likelihoods"]
