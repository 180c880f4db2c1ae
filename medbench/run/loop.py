"""Run a plan: find the cache misses, execute them batch by batch, store every answer at once."""

from __future__ import annotations

import importlib
import signal
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from rich.console import Console

from medbench.data import canonical_json
from medbench.errors import UnknownIdError
from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.cache import Cache
from medbench.run.executors import (
    EXECUTORS,
    MODEL_FAILED,
    Executor,
    ModelWork,
    automatic_batch,
    preferred_batch,
)
from medbench.run.imagejobs import carry_over_answers, derive_for
from medbench.run.jobs import Job
from medbench.run.layout import cut_batches, prompt_length
from medbench.run.plan import Plan
from medbench.run.progress import step
from medbench.run.served import Change, stale_diagnoses
from medbench.spec.loading import SpecSet

STALE_SHOWN = 10
"""How many stale diagnoses a run names (then it counts the rest)."""


@dataclass
class RunSummary:
    """What a run did."""

    planned: int
    cached: int = 0
    ran: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    interrupted: bool = False
    failed_models: dict[str, str] = field(default_factory=dict)
    """Models that could not be resolved, built or loaded (or stopped answering): the reason."""
    truncated: Counter[str] = field(default_factory=Counter)
    """Prompt family -> answers of this run cut at their token budget (finish reason `length`)."""

    @property
    def complete(self) -> bool:
        return not self.interrupted and self.failed == 0 and not self.failed_models

    def lines(self) -> list[str]:
        """A human summary: ran, cached, failed with the most frequent reasons."""
        out = [
            f"{self.planned} jobs planned: {self.cached} cached, {self.ran} ran, "
            f"{self.failed} failed ({self.seconds:.1f} s)."
        ]
        for reason, count in self.failures.most_common(5):
            out.append(f"  {count} x {reason}")
        if self.failed_models:
            out.append(f"{len(self.failed_models)} models failed (the others ran):")
            out.extend(f"  {m}: {why}" for m, why in sorted(self.failed_models.items()))
        for family, count in sorted((+self.truncated).items()):
            out.append(
                f"{count} {family} answers were cut at their token budget (truncated): raise "
                "the family's `max_new_tokens` (or the model's) to let them finish."
            )
        if self.interrupted:
            out.append("Interrupted: finished answers are stored; rerun to resume.")
        return out


def load_executor(name: str) -> Executor:
    """The executor named `name` (imported lazily: Ray is optional)."""
    target = EXECUTORS.get(name)
    if target is None:
        raise UnknownIdError("executor", name, list(EXECUTORS))
    module_name, class_name = target.split(":")
    executor: Executor = getattr(importlib.import_module(module_name), class_name)()
    return executor


def pending_work(
    plan: Plan,
    specs: SpecSet,
    cache: Cache,
    jobs: Sequence[Job] | None = None,
    batch_size: int | None = None,
) -> tuple[list[ModelWork], list[Job], int]:
    """Cache misses of `jobs` (default: the whole plan) grouped by model, one request per
    distinct key, in the batches of `cut_batches` (at `batch_size`, else the backend's
    preferred one); the first job of each key; and how many jobs were cached. The derived
    images of the misses are made here, in parallel (planning only names them).

    A backend that finds its own batch size (HF with `--batch-size auto`) gets the requests
    in the same order but no planned batches: its batches then follow the memory it finds,
    and only a fixed batch size makes them independent of what is cached."""
    done = cache.finished_keys()
    chosen = plan.jobs if jobs is None else jobs
    cached = sum(job.key in done for job in chosen)
    by_model: dict[str, list[Job]] = {}
    for job in chosen:
        by_model.setdefault(job.model, []).append(job)
    groups: list[ModelWork] = []
    first_jobs: list[Job] = []
    for model, mine in by_model.items():
        if all(job.key in done for job in mine):
            continue  # nothing to run: leave the backend (and torch) unimported
        spec = specs.models[model]
        requests: list[Request] = []
        sizes: list[int] = []
        planned = batch_size is not None or not automatic_batch(spec)
        size = (batch_size or preferred_batch(spec)) if planned else len(mine)
        layout = cut_batches(mine, size, prompt_length(plan, spec))
        cut = [[job for job in batch if job.key not in done] for batch in layout]
        if spec.backend != "baseline":  # a baseline never looks at an image
            derive_for(plan, [job for batch in cut for job in batch])
        for missing in cut:
            first_jobs.extend(missing)
            # an unreadable image fails without a model
            readable = [job for job in missing if job.key not in plan.unreadable]
            if readable:
                requests.extend(plan.request(job) for job in readable)
                sizes.append(len(readable))
        if requests:
            batches = tuple(sizes) if planned else ()
            groups.append(ModelWork(spec, plan.identities[model], requests, batches))
    return groups, first_jobs, cached


class _StopFlag:
    """First Ctrl-C: finish the batch in flight, then stop. Second Ctrl-C: stop now."""

    def __init__(self, console: Console) -> None:
        self.stop = False
        self._console = console

    def __call__(self) -> bool:
        return self.stop

    @contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: Any) -> None:
            if self.stop:
                raise KeyboardInterrupt
            self.stop = True
            self._console.print(
                "[yellow]Stopping after the batch in flight (Ctrl-C again to abort)."
            )

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


def run_suite(
    plan: Plan,
    specs: SpecSet,
    cache: Cache,
    *,
    context: BackendContext | None = None,
    executor: str = "local",
    console: Console | None = None,
    progress: bool = True,
    snapshot_changes: Sequence[Change] = (),
) -> RunSummary:
    """Run a plan; with a describe stage, then run the diagnoses of the new descriptions.

    `snapshot_changes`: hosted models now served as another snapshot than the cache recorded;
    the diagnoses answered under the old one are named before they are answered again."""
    options: dict[str, Any] = {
        "context": context,
        "executor": executor,
        "console": console,
        "progress": progress,
    }
    summary = run_plan(plan, specs, cache, **options)
    if plan.suite.describe is None or summary.interrupted:
        return summary
    from medbench.run.diagnose import attach_diagnoses

    before = len(plan.jobs)
    attach_diagnoses(plan, specs, cache)
    say_stale_diagnoses(plan, specs, cache, snapshot_changes, console or Console(stderr=True))
    second = run_plan(plan, specs, cache, jobs=plan.jobs[before:], **options)
    summary.planned = len(plan.jobs)
    summary.cached += second.cached
    summary.ran += second.ran
    summary.failed += second.failed
    summary.failures.update(second.failures)
    summary.failed_models.update(second.failed_models)
    summary.seconds += second.seconds
    summary.interrupted = second.interrupted
    return summary


def say_stale_diagnoses(
    plan: Plan, specs: SpecSet, cache: Cache, changes: Sequence[Change], console: Console
) -> None:
    """Name the cached diagnoses that no longer match because the served snapshot changed."""
    for change in changes:
        stale = stale_diagnoses(plan, cache, change, specs.models[change.model])
        if not stale:
            continue
        console.print(
            f"[yellow]{change.model}: the endpoint now serves {change.now!r}, the cache recorded "
            f"{change.before!r}: {len(stale)} cached diagnoses were answered by {change.before!r} "
            "and no longer match; they stay in the cache and are answered again now:",
            highlight=False,
        )
        for line in stale[:STALE_SHOWN]:
            console.print(f"  {line}", highlight=False)
        if len(stale) > STALE_SHOWN:
            console.print(f"  ... and {len(stale) - STALE_SHOWN} more", highlight=False)


BAD_TEXT = "the answer is not valid Unicode"
"""The error of an answer whose text holds a lone surrogate (SQLite cannot store it as is)."""


def storable(output: Output) -> Output:
    """`output` as the cache can store it: a text holding a lone surrogate is kept with it
    escaped (`\\udc80`) and marked failed, so that one bad answer never loses its batch."""
    text = output.text
    if text is None or output.error is not None:
        return output
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        escaped = text.encode("utf-8", "backslashreplace").decode("utf-8")
        error = f"{BAD_TEXT}: a lone surrogate at character {e.start}; its text is kept escaped"
        return replace(output, text=escaped, error=error)
    return output


def run_plan(
    plan: Plan,
    specs: SpecSet,
    cache: Cache,
    *,
    context: BackendContext | None = None,
    executor: str = "local",
    console: Console | None = None,
    progress: bool = True,
    jobs: Sequence[Job] | None = None,
) -> RunSummary:
    """Answer every job of the plan (or of `jobs`) that the cache lacks; store each batch
    as it finishes."""
    console = console or Console(stderr=True)
    context = context or BackendContext()
    started = time.perf_counter()
    chosen = plan.jobs if jobs is None else jobs
    carried = carry_over_answers(plan, cache, chosen)
    if carried:
        console.print(f"{carried} image-variant answers carried over to their recipe keys")
    work, first_jobs, cached = pending_work(plan, specs, cache, chosen, context.batch_size)
    job_of = {job.key: job for job in first_jobs}
    summary = RunSummary(planned=len(chosen), cached=cached)
    summary.failed_models.update(plan.unavailable)
    broken = [job for job in first_jobs if job.key in plan.unreadable]
    todo = sum(len(w.requests) for w in work) + len(broken)
    stop = _StopFlag(console)
    running = step(
        f"suite {plan.suite.id}",
        total=todo,
        console=console,
        enabled=progress,
        details=f"{cached} cached, 0 failed",
    )
    with running as bar, stop.installed():

        def sink(requests: Sequence[Request], outputs: Sequence[Output]) -> None:
            rows = []
            for request, raw in zip(requests, outputs, strict=True):
                job = job_of[request.key]
                output = storable(raw)
                stored: dict[str, Any] = {
                    **request.messages.key_payload(),
                    "paths": [i.path for i in request.messages.images],
                }
                if output.image_processor is not None:
                    stored["image_processor"] = output.image_processor
                prompt = canonical_json(stored)
                rows.append(
                    (
                        job.key,
                        job.model,
                        job.task,
                        job.family,
                        job.variant,
                        job.sample,
                        prompt,
                        output.text,
                        output.error,
                        output.seconds,
                        output.batch_size or len(requests),
                        output.precision,
                        output.finish_reason,
                    )
                )
                if output.error is not None:
                    summary.failed += 1
                    summary.failures[output.error.split(":")[0][:120]] += 1
                    if output.error.startswith(f"{MODEL_FAILED}: "):
                        summary.failed_models.setdefault(
                            job.model, output.error[len(MODEL_FAILED) + 2 :]
                        )
                else:
                    summary.ran += 1
                    summary.truncated[job.family] += output.finish_reason == "length"
            cache.put_many(rows)
            elapsed = time.perf_counter() - started
            rate = f"{(summary.ran + summary.failed) / elapsed:.1f} jobs/s" if elapsed > 0 else ""
            details = f"{cached} cached, {summary.failed} failed"
            bar.advance(len(rows), details=details, rate=rate)

        if broken:
            failed = [Output(text=None, error=plan.unreadable[job.key]) for job in broken]
            sink([plan.request(job) for job in broken], failed)
        if work:
            load_executor(executor).execute(work, context, sink, stop)
    summary.interrupted = stop.stop
    summary.seconds = time.perf_counter() - started
    return summary
