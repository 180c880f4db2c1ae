"""`verify --rerun N`: ask the model again for N of a record's answers and compare the texts.

A record cannot prove that its answers came from its model: a sidecar whose texts and parses
are rewritten together re-derives consistently. Where the model is available here (a baseline,
always; a local checkpoint or a cached hub model at the record's revision), re-asking a few
random jobs catches that: the prompts are planned from today's specs exactly as `run` plans
them, and each new answer must be the recorded text. A baseline answers deterministically, so
any difference is a forgery; a real model on other hardware may differ in a rare answer
(batching in bf16 changes greedy outputs), so read a difference before calling it one.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from medbench.errors import MedbenchError
from medbench.publish.files import read_sidecar
from medbench.publish.record import keys_digest
from medbench.publish.rederive import Findings

if TYPE_CHECKING:
    from medbench.publish.record import Record
    from medbench.run import Job
    from medbench.spec.loading import SpecSet

ROW_KEY = ("task", "family", "variant", "sample", "replicate", "image_variant")
"""The sidecar columns that name one direct answer, as a job of the plan names it."""


def answered(answers: pd.DataFrame, model: str) -> dict[tuple[str, ...], str]:
    """A model's direct, answered rows of a sidecar: their job's names -> the text."""
    rows = answers[
        (answers["model"] == model) & (answers["pipeline"] == "direct") & answers["error"].isna()
    ]
    return {
        tuple(str(row[c]) for c in ROW_KEY): "" if row["text"] is None else str(row["text"])
        for row in rows.to_dict("records")
    }


def planned_keys(jobs: Iterable[Job], model: str, answers: pd.DataFrame) -> list[str]:
    """The cache keys, as the plan's `jobs` key them, of `model`'s direct answers in
    `answers`: what a record names its run's answers by (`RunInfo.answer_keys`)."""
    names = answered(answers, model)
    return [j.key for j in jobs if j.pipeline == "direct" and j.model == model and _key(j) in names]


def reask(
    display: str, path: Path, record: Record, specs: SpecSet, n: int, label: str = "rerun"
) -> Findings:
    """Re-ask `n` random direct jobs of the record (seeded by its sidecar's hash) of its model,
    where the model is available here at the record's revision; each differing text is a
    problem, what could not be re-asked a note (each message names the check by `label`)."""
    from medbench.home import models_dir
    from medbench.run import make_plan, resolve_identity
    from medbench.run.backends import BackendContext, load_backend

    out = Findings()
    spec = specs.models.get(record.model_id)
    if spec is None or record.suite not in specs.suites:
        out.notes.append(f"{display}: {label}: no spec of its model or suite today: not re-asked")
        return out
    try:
        identity = resolve_identity(spec, specs.root, models_dir(), specs=specs)
        if identity.revision != record.revision:
            out.notes.append(
                f"{display}: {label}: the model here is at revision {identity.revision}, the "
                f"record's at {record.revision}: not re-asked"
            )
            return out
        plan = make_plan(
            specs,
            record.suite,
            models_dir=models_dir(),
            models=[record.model_id],
            dataset_revisions=record.dataset.revisions,
        )
        answers = read_sidecar(path.parent, record.sidecar.path, record.sidecar.sha256)
        recorded = answered(answers, record.model_id)
        jobs = [
            j
            for j in plan.jobs
            if j.pipeline == "direct" and _key(j) in recorded and j.model == record.model_id
        ]
        chosen = random.Random(record.sidecar.sha256).sample(jobs, min(n, len(jobs)))
        # the run asks a key once, with its first job, and every job of the key reads that
        # answer (a baseline's image-variant jobs keep their original job's key)
        asked = {j.key: j for j in reversed(plan.jobs) if j.model == record.model_id}
        unique = sorted({j.key for j in chosen})
        backend = load_backend(spec, identity.context(BackendContext()))
        try:
            given = backend.generate([plan.request(asked[k]) for k in unique])
        finally:
            backend.close()
        by_key = dict(zip(unique, given, strict=True))
        outputs = [by_key[j.key] for j in chosen]
    except (MedbenchError, OSError, ValueError) as e:
        out.notes.append(f"{display}: {label}: the model cannot be asked here: {e}")
        return out
    keys = planned_keys(plan.jobs, record.model_id, answers)
    if record.run is not None and keys_digest(keys) != record.run.answer_keys:
        out.problems.append(
            f"{display}: run.answer_keys: the answers' cache keys are not those today's plan "
            f"gives them ({len(keys)} planned, {record.run.n_answers} recorded): the record was "
            "made with other prompts, images or weights than today's specs ask"
        )
    differ = [
        (j, o.text) for j, o in zip(chosen, outputs, strict=True) if o.text != recorded[_key(j)]
    ]
    if differ:
        job, text = differ[0]
        out.problems.append(
            f"{display}: {label}: {len(differ)} of {len(chosen)} re-asked answers differ from the "
            f"sidecar (first: {job.task}/{job.family}/{job.variant}/{job.sample}: recorded "
            f"{recorded[_key(job)]!r}, the model answers {text!r}); these answers did not come "
            "from this model as the specs ask it"
        )
    else:
        out.notes.append(f"{display}: {label}: {len(chosen)} answers re-asked, all as recorded")
    return out


def _key(job: Any) -> tuple[str, ...]:
    return tuple(str(getattr(job, c)) for c in ROW_KEY)
