"""Compute the likelihood jobs the answer cache lacks: each model loaded once, batches stored
as they finish. One model failing to load is reported and the others go on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from medbench.data import canonical_json
from medbench.run.backends.base import BackendContext, OptionScores, Request
from medbench.run.cache import Cache
from medbench.run.jobs import Job
from medbench.run.likelihood.jobs import (
    MODES,
    LikelihoodAnswer,
    likelihood_jobs,
    likelihood_request,
)
from medbench.run.plan import Plan
from medbench.run.progress import Step, step

if TYPE_CHECKING:
    from medbench.spec.loading import SpecSet

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
        with step(f"likelihood {model}", total=len(by_key)) as shown:
            _score_model(plan, specs, cache, context, model, list(by_key.values()), run, shown)
    return run


def _score_model(
    plan: Plan,
    specs: SpecSet,
    cache: Cache,
    context: BackendContext,
    model: str,
    jobs: Sequence[Job],
    run: LikelihoodRun,
    shown: Step,
) -> None:
    from medbench.run.backends import load_backend
    from medbench.run.executors import ModelWork
    from medbench.run.executors.local import prepare_checkpoint

    spec, identity = specs.models[model], plan.identities[model]
    try:
        prepare_checkpoint(ModelWork(spec, identity, []))
        # exactly the planned weights (checkpoint folder or commit sha, and any adapter)
        backend = load_backend(spec, identity.context(context))
    except Exception as e:  # one model failing never stops the suite
        run.failed += len(jobs)
        run.failures[model] = f"could not load: {type(e).__name__}: {e}"
        return
    try:
        scorer = _scorer(backend)
        if scorer is None:
            run.skipped[model] = "only the hf and openai backends score options"
            return
        for start in range(0, len(jobs), CHUNK):
            chunk = jobs[start : start + CHUNK]
            requests = [likelihood_request(plan, job) for job in chunk]
            scores = scorer.score(requests)
            no_logprobs = getattr(scorer, "no_logprobs", None)
            if no_logprobs is not None:  # nothing to store: the endpoint cannot score options
                run.skipped[model] = no_logprobs
                break
            cache.put_many(
                [
                    _stored(job, request, score, MODES[spec.backend], run, model)
                    for job, request, score in zip(chunk, requests, scores, strict=True)
                ]
            )
            shown.advance(len(chunk))
        run.forward_passes += scorer.forward_passes
        unshared = getattr(scorer, "unshared", None)
        if unshared:
            run.unshared[model] = dict(unshared)
    finally:
        backend.close()


class _Scorer(Protocol):
    forward_passes: int

    def score(self, requests: Sequence[Request]) -> list[OptionScores]: ...


def _scorer(backend: object) -> _Scorer | None:
    """The option scorer of a loaded backend (None: it cannot score options)."""
    from medbench.run.backends.openai_api import OpenAIBackend

    if isinstance(backend, OpenAIBackend):
        from medbench.run.backends.openai_api.logprobs import LogprobScorer

        return LogprobScorer(backend)
    from medbench.run.backends.hf import HFBackend

    if isinstance(backend, HFBackend):
        from medbench.run.backends.hf.likelihood import OptionScorer

        return OptionScorer(backend)
    return None


def _stored(
    job: Job, request: Request, score: OptionScores, mode: str, run: LikelihoodRun, model: str
) -> tuple[object, ...]:
    """The cache row of one scored job (counted in `run`)."""
    output = None
    if score.error is None:
        answer = LikelihoodAnswer(
            score.options, score.total, score.n_tokens, score.merged, mode, score.unscored
        )
        output = answer.to_json()
        run.ran += 1
    else:
        run.failed += 1
        run.failures.setdefault(model, score.error)
    return _row(job, request, output, score.error, score.seconds)


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
