"""Answers cut at their token budget (finish reason `length`): a truncated description is
passed to the text diagnoser as if whole, so the ladder's described rung says how many were."""

from __future__ import annotations

from collections.abc import Iterable

from medbench.run import Cache, Job

TRUNCATED = "length"
"""The finish reason of an answer cut at its token budget."""

Counts = dict[tuple[str, str], tuple[int, int]]
"""(model, task) -> (truncated descriptions, stored descriptions)."""


def truncated_descriptions(jobs: Iterable[Job], cache: Cache) -> Counts:
    """Per (model, task) with stored descriptions: how many were cut at their token budget,
    and how many there are (answers stored before the finish reason was recorded count as
    whole)."""
    describe = [job for job in jobs if job.pipeline == "describe"]
    stored = cache.get_many(job.key for job in describe)
    counts: Counts = {}
    for job in describe:
        answer = stored.get(job.key)
        if answer is None or answer.error is not None:
            continue
        cut, total = counts.get((job.model, job.task), (0, 0))
        counts[(job.model, job.task)] = (cut + (answer.finish_reason == TRUNCATED), total + 1)
    return counts


__all__ = ["TRUNCATED", "Counts", "truncated_descriptions"]
