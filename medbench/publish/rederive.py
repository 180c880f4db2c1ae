"""Re-derive what a record takes on trust from its sidecar: the parses (from the answer
texts), the truths (from the task's data), the ladder's answer columns (from the scores, and
its likelihood rung from the option scores' sidecar), and whether today's specs are still the
ones the record was made with.

`verify` re-scores a record from its sidecar; a sidecar forged consistently (parsed equal to
truth, tables re-derived) would still verify without these checks. The parser is called
the way scoring calls it (`medbench.score.answers.parse_job_answer`, over the public
`medbench.score.parsing.parse_answer`); a record parsed by another `parser_version` than today's is
stale (an error: its texts would not re-parse the same), like one made with changed prompts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from medbench.data import Sample, fingerprint, read_samples, sha256_file
from medbench.errors import DataError
from medbench.score import parse_job_answer
from medbench.score.parsing import PARSER_VERSION
from medbench.spec import asked_of, offered_options, options_by_letter

if TYPE_CHECKING:
    from medbench.publish.record import Record, Scalar
    from medbench.score import ScoreTables
    from medbench.spec import TaskSpec
    from medbench.spec.loading import SpecSet

MAX_LISTED = 5
"""Mismatches listed per kind of check; the rest are counted."""
LADDER_ANSWER_COLUMNS = (
    "chance_f1",
    "no_image_f1",
    "direct_f1_mean",
    "direct_f1_best",
    "direct_best_variant",
    "described_f1",
    "described_best",
    "described_f1_mean",
)
"""The ladder columns that follow from the answers (the probe columns need the embeddings)."""


@dataclass
class Findings:
    """Problems make `verify` fail; notes say what could not be checked, and why."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _cell(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _capped(where: str, what: str, found: list[str]) -> list[str]:
    if len(found) <= MAX_LISTED:
        return found
    rest = len(found) - MAX_LISTED
    return [*found[:MAX_LISTED], f"{where}: ... and {rest} more {what}"]


def _expected_parse(
    row: Any, specs: SpecSet, asked: Sample | None = None
) -> tuple[str, str | None]:
    """How scoring parses a row's text today; `asked` is the row's sample where its task
    reads a question or options per sample (closed VQA)."""
    family = specs.families[row.family]
    task = specs.tasks[row.task]
    variant = next(v for v in family.variants if v.id == row.variant)
    question = asked_of(task, asked)
    options = offered_options(task, variant, family, question)
    by_option = options_by_letter(question, family.answer)
    result, parsed = parse_job_answer(
        row.text or "", task, family.answer, options, variant.lettered, by_option
    )
    return result.status, parsed


def record_samples(task: TaskSpec, record: Record, specs: SpecSet) -> list[Sample]:
    """A task's samples from the record's data, a Hub dataset at the commit the record names."""
    recorded = (record.dataset.revisions or {}).get(task.id)
    return read_samples(task, record.dataset.source, specs.root, recorded)


def _asked_samples(
    sidecar: str, record: Record, answers: pd.DataFrame, specs: SpecSet, notes: list[str]
) -> dict[str, dict[str, Sample]]:
    """The samples of each closed-VQA task of the answers, by id (their own questions and
    options decide how a reply parses); a task whose data cannot be read is noted, not kept."""
    found: dict[str, dict[str, Sample]] = {}
    source = record.dataset.source
    for task_id in sorted(set(answers["task"])):
        task = specs.tasks.get(task_id)
        if task is None or not task.per_sample or source not in task.data:
            continue
        try:
            samples = record_samples(task, record, specs)
        except (DataError, OSError) as e:
            notes.append(f"{sidecar}: answers of task '{task_id}' not re-parsed: {e}")
            continue
        found[task_id] = {s.id: s for s in samples}
    return found


def reparse(sidecar: str, record: Record, answers: pd.DataFrame, specs: SpecSet) -> Findings:
    """Parse every answer text again and compare with the recorded status and parse."""
    out, found, missing = Findings(), [], set()
    if record.parser_version != PARSER_VERSION:
        out.problems.append(
            f"{sidecar}: parser_version: stale: the answers were parsed by parser version "
            f"{record.parser_version}, today's is {PARSER_VERSION}; rescore and republish"
        )
        return out
    rows: list[Any] = list(answers.itertuples(index=False))
    notes: list[str] = []
    lost: set[str] = set()
    asked = _asked_samples(sidecar, record, answers, specs, notes)
    for i, row in enumerate(rows):
        where = f"{sidecar}:{i + 2}"
        if row.family not in specs.families or row.task not in specs.tasks:
            missing.add(f"{row.task}/{row.family}")
            continue
        sample = None
        if specs.tasks[row.task].per_sample:
            sample = asked.get(row.task, {}).get(row.sample)
            if sample is None:
                if row.task in asked:
                    lost.add(f"{row.task}/{row.sample}")
                continue
        if row.variant not in {v.id for v in specs.families[row.family].variants}:
            missing.add(f"{row.family}/{row.variant}")
            continue
        recorded = (row.status, _cell(row.parsed))
        if _cell(row.error) is not None:
            expected: tuple[str, str | None] = ("error", None)
        else:
            expected = _expected_parse(row, specs, sample)
        if recorded != expected:
            found.append(
                f"{where}: status/parsed: recorded {recorded[0]} {recorded[1]!r}, its text "
                f"parses as {expected[0]} {expected[1]!r}"
            )
        elif bool(row.correct) != (expected[1] is not None and expected[1] == row.truth):
            found.append(f"{where}: correct: recorded {bool(row.correct)}, not parsed == truth")
    out.problems = _capped(sidecar, "answers that do not re-parse", found)
    out.notes = [
        *notes,
        *(
            f"{sidecar}: answers of {name} not re-parsed: no such spec today"
            for name in sorted(missing)
        ),
    ]
    if lost:
        out.problems.append(
            f"{sidecar}: {len(lost)} answered sample(s) are not in the task's data today "
            f"(first: {min(lost)}); their answers cannot be re-parsed"
        )
    return out


def check_truth(
    sidecar: str, record: Record, answers: pd.DataFrame, specs: SpecSet, hasher: Callable[..., str]
) -> Findings:
    """Compare every row's label and truth with the task's data, and the dataset fingerprint."""
    out, found, kept = Findings(), [], []
    source = record.dataset.source
    for task_id in sorted(set(answers["task"])):
        task = specs.tasks.get(task_id)
        if task is None or source not in task.data:
            out.notes.append(f"{sidecar}: truth of task '{task_id}' not checked: no {source} data")
            continue
        try:
            samples = record_samples(task, record, specs)
        except (DataError, OSError) as e:
            out.notes.append(
                f"{sidecar}: truth of task '{task_id}' not checked against its {source} data: {e}"
            )
            continue
        label_of = {s.id: s.label for s in samples}
        positive = {label.id for label in task.labels if label.positive}
        rows = answers[answers["task"] == task_id]
        for i, row in zip(rows.index, rows.itertuples(index=False), strict=True):
            where = f"{sidecar}:{i + 2}"
            label = label_of.get(row.sample)
            kind = specs.families[row.family].answer if row.family in specs.families else "label"
            truth = ("yes" if label in positive else "no") if kind == "yes_no" else label
            if label is None:
                found.append(f"{where}: sample: '{row.sample}' is not in the {source} data")
            elif (row.label, row.truth) != (label, truth):
                found.append(
                    f"{where}: label/truth: recorded {row.label!r}/{row.truth!r}, the data says "
                    f"{label!r}/{truth!r}"
                )
        wanted = set(rows["sample"])
        kept += [replace(s, sha256=hasher(s.path)) for s in samples if s.id in wanted]
    out.problems = _capped(sidecar, "rows whose truth is not the data's", found)
    if not out.notes and fingerprint(kept) != record.dataset.fingerprint:
        out.problems.append(
            f"{sidecar}: dataset.fingerprint: recorded {record.dataset.fingerprint}, the "
            f"{source} images answered hash to {fingerprint(kept)}"
        )
    return out


def spec_changes(record: Record, specs: SpecSet) -> list[tuple[str, str, str | None]]:
    """The record's specs that differ from today's: (`kind/id`, recorded sha256, today's
    sha256, or None where the spec is gone), sorted by reference."""
    changes = []
    for ref, sha in sorted(record.spec_hashes.items()):
        kind, spec_id = ref.split("/", 1)
        current = specs.files.get((kind, spec_id))
        if current is None or current.sha256 != sha:
            changes.append((ref, sha, current.sha256 if current is not None else None))
    return changes


def check_spec_hashes(display: str, record: Record, specs: SpecSet) -> Findings:
    """A record made with other specs than today's is stale: an error for a changed prompt."""
    out = Findings()
    for ref, sha, today in spec_changes(record, specs):
        if today is None:
            out.notes.append(f"{display}: spec_hashes: {ref} is not among today's specs")
            continue
        text = (
            f"{display}: spec_hashes: stale: {ref} changed since the record was made "
            f"(recorded {sha[:12]}, today {today[:12]})"
        )
        if ref.startswith("prompt_family/"):
            out.problems.append(f"{text}; rerun and republish the model")
        else:
            out.notes.append(text)
    return out


LADDER_LIKELIHOOD_COLUMNS = ("likelihood_f1_mean", "likelihood_f1_best", "likelihood_best_variant")


def _ladder_mismatches(
    display: str,
    record: Record,
    derived: dict[str, dict[str, Any]],
    columns: tuple[str, ...],
    same: Callable[[Scalar, Scalar], bool],
) -> list[str]:
    problems = []
    for i, row in enumerate(record.ladder or []):
        other = derived.get(str(row.get("task")))
        if other is None:
            problems.append(f"{display}: ladder[{i}]: no such row is re-derived from the sidecar")
            continue
        for name in columns:
            value = other.get(name)
            # The ladder is published through a CSV: an empty text comes back as null.
            mine = None if value == "" or isinstance(value, float) and math.isnan(value) else value
            if name in row and not same(row[name], mine):
                problems.append(
                    f"{display}: ladder[{i}].{name}: recorded {row[name]!r}, re-derived {mine!r}"
                )
    return problems


def _likelihood_scores(record: Record, items: pd.DataFrame | None) -> list[pd.DataFrame]:
    """The likelihood answers' scores of each normalisation, from the likelihood sidecar's
    items (none without one): the ladder's rung reads one of them, the stage's `answer`."""
    if items is None or items.empty:
        return [pd.DataFrame()]
    from medbench.score import ScoringLayout, score_answers
    from medbench.score.likelihood import NORMALISATIONS, answers_frame

    layout = ScoringLayout.from_json(record.layout.model_dump(mode="json"))
    return [
        score_answers(answers_frame(items, norm).reset_index(drop=True), layout).scores
        for norm in NORMALISATIONS
    ]


def check_ladder(
    display: str,
    record: Record,
    tables: ScoreTables,
    same: Callable[[Scalar, Scalar], bool],
    likelihood_items: pd.DataFrame | None = None,
) -> list[str]:
    """Compare the ladder's answer columns with those of the re-derived scores, and its
    likelihood columns with the scores of the likelihood sidecar's items (`likelihood_items`):
    they must match one normalisation's (the record does not say which the stage used; both are
    honest readings of the same option scores). A ladder with likelihood values and no sidecar
    to derive them from is a problem."""
    if not record.ladder:
        return []
    from medbench.score.probe import _answer_columns

    families = [f for f, kind in record.layout.answer_kinds.items() if kind == "label"]
    scores = tables.scores[tables.scores["model"] == record.model_id]
    reliance = tables.reliance
    if not reliance.empty:
        reliance = reliance[reliance["model"] == record.model_id]
    columns = (*LADDER_ANSWER_COLUMNS, *LADDER_LIKELIHOOD_COLUMNS)
    best: list[str] | None = None
    for likely in _likelihood_scores(record, likelihood_items):
        both = pd.concat([scores, likely], ignore_index=True) if not likely.empty else scores
        answer_rows = _answer_columns(both, families, reliance).to_dict("records")
        derived = {str(r["task"]): {str(k): v for k, v in r.items()} for r in answer_rows}
        problems = _ladder_mismatches(display, record, derived, columns, same)
        if best is None or len(problems) < len(best):
            best = problems
    return best or []


def against_specs(
    display: str, sidecar: str, record: Record, answers: pd.DataFrame, specs: SpecSet | None
) -> Findings:
    """Every check that needs today's specs (none without them)."""
    if specs is None:
        return Findings()
    out = Findings()
    for part in (
        reparse(sidecar, record, answers, specs),
        check_truth(sidecar, record, answers, specs, sha256_file),
        check_spec_hashes(display, record, specs),
    ):
        out.problems += part.problems
        out.notes += part.notes
    return out


__all__ = ["Findings", "against_specs", "check_ladder", "record_samples", "spec_changes"]
