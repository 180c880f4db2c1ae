"""`medbench verify`: re-derive every published number of a record from its sidecars and specs."""

from __future__ import annotations

import gzip
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from medbench.errors import RecordError
from medbench.score import (
    IMAGE_PROCESSOR_COLUMN,
    ScoreTables,
    ScoringLayout,
    score_answers,
)
from medbench.score.metrics import SCORING_VERSION
from medbench.spec import check_pattern, group_of

if TYPE_CHECKING:
    from medbench.publish.rederive import Findings
    from medbench.spec.loading import SpecSet
from medbench.publish.claims import check_run
from medbench.publish.files import figure_problems, read_sidecar, sidecar_bytes
from medbench.publish.reading import _placement, read_record, record_paths
from medbench.publish.record import (
    SIDECAR_SUFFIX,
    TABLE_KEYS,
    Record,
    Scalar,
    _display,
    _plain,
    _show,
)
from medbench.publish.writing import table_rows

TOLERANCE = 1e-9
"""Largest absolute difference between a recorded and a re-derived number."""


def _same(a: Scalar, b: Scalar) -> bool:
    if a is None or b is None or isinstance(a, bool | str) or isinstance(b, bool | str):
        return a == b and type(a) is type(b)
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= TOLERANCE


def compare_rows(
    display: str,
    table: str,
    recorded: list[dict[str, Scalar]],
    derived: list[dict[str, Scalar]],
    keys: tuple[str, ...] | None = None,
) -> list[str]:
    """Every field of `recorded` that differs from `derived`, rows matched by their key
    (`keys`, by default the table's TABLE_KEYS)."""
    keys = keys or TABLE_KEYS[table]
    by_key = {tuple(row.get(k) for k in keys): row for row in derived}
    problems, seen = [], set()
    for i, row in enumerate(recorded):
        key = tuple(row.get(k) for k in keys)
        other = by_key.get(key)
        if other is None:
            problems.append(f"{display}: {table}[{i}]: no such row is re-derived from the sidecar")
            continue
        seen.add(key)
        for name in sorted(set(row) | set(other)):
            a, b = row.get(name), other.get(name)
            if not _same(a, b):
                problems.append(
                    f"{display}: {table}[{i}].{name}: recorded {_show(a)}, re-derived {_show(b)}"
                )
    for key in by_key:
        if key not in seen:
            named = ", ".join(f"{k}={v}" for k, v in zip(keys, key, strict=True))
            problems.append(f"{display}: {table}: the re-derived row ({named}) is not recorded")
    return problems


def count_image_processors(answers: pd.DataFrame, model: str) -> dict[str, int] | None:
    """How many of `model`'s scored answers each image processor preprocessed (None: none
    recorded, e.g. a baseline or answers scored before medbench recorded them)."""
    if IMAGE_PROCESSOR_COLUMN not in answers.columns:
        return None
    used = answers.loc[answers["model"] == model, IMAGE_PROCESSOR_COLUMN].dropna()
    counts = {str(name): int(n) for name, n in used.value_counts().sort_index().items()}
    return counts or None


def image_processor_problems(display: str, record: Record) -> list[str]:
    """A record whose answers were preprocessed by more than one image processor mixes two
    resizings (torchvision and PIL differ): its numbers belong to no one environment."""
    used = record.image_processors or {}
    if len(used) < 2:
        return []
    counts = ", ".join(f"{name} ({n})" for name, n in sorted(used.items()))
    return [
        f"{display}: image_processors: the answers were preprocessed by different image "
        f"processors: {counts}. Rerun them in one environment (torchvision installed or not)."
    ]


def _group_problems(display: str, answers: pd.DataFrame, layout: ScoringLayout) -> list[str]:
    """Sidecar groups that the layout's pattern does not give their sample's file name."""
    problems = []
    for task, how in sorted(layout.groups.items()):
        if not how.startswith("pattern "):
            continue  # a manifest column: only the data can tell
        try:
            compiled = check_pattern(how.removeprefix("pattern "))
        except ValueError as e:
            problems.append(f"{display}: layout.groups.{task}: {e}")
            continue
        rows = answers[answers["task"] == task]
        for sample, group in sorted(set(zip(rows["sample"], rows["group"], strict=True))):
            expected = group_of(compiled, str(sample).rsplit("/", 1)[-1])
            found = None if pd.isna(group) else str(group)
            if found != expected:
                problems.append(
                    f"{display}: sidecar: sample {sample} of task {task} has group "
                    f"{_show(found)}, its file name gives {_show(expected)}"
                )
                break
    return problems


def likelihood_items(
    display: str, path: Path, record: Record
) -> tuple[pd.DataFrame | None, list[str]]:
    """The option scores of the record's likelihood sidecar, every cell checked (None without
    a sidecar, or with the problems that keep it from being read)."""
    from medbench.publish.likelihood import SUFFIX, read_items_csv

    info = record.likelihood_sidecar
    if info is None:
        return None, []
    expected = f"{record.model_id}{SUFFIX}"
    if info.path != expected:
        return None, [
            f"{display}: likelihood_sidecar.path: expected '{expected}', got '{info.path}'"
        ]
    try:
        raw = sidecar_bytes(path.parent, info.path, info.sha256)
        items = read_items_csv(raw)
    except RecordError as e:
        return None, [f"{display}: likelihood_{e}"]
    except OSError as e:
        return None, [f"{display}: likelihood_sidecar.path: cannot read {info.path}: {e.strerror}"]
    except (ValueError, EOFError, gzip.BadGzipFile, pd.errors.ParserError) as e:
        return None, [
            f"{display}: likelihood_sidecar.path: {info.path} is not a valid sidecar: {e}"
        ]
    others = sorted(set(items["model"]) - {record.model_id})
    if others:
        return None, [
            f"{display}: likelihood_sidecar.path: holds rows of other models: {', '.join(others)}"
        ]
    return items, []


def check_calibration(
    display: str, record: Record, items: pd.DataFrame | None, problems: list[str]
) -> list[str]:
    """Re-derive the record's calibration rows from its likelihood sidecar's `items` (read by
    `likelihood_items`, with the `problems` that gave)."""
    from medbench.publish.likelihood import KEYS, calibration_rows

    if problems:
        return problems
    if items is None:
        if record.calibration:
            return [f"{display}: calibration: no likelihood_sidecar to re-derive it from"]
        return []
    derived = [{k: _plain(v) for k, v in r.items()} for r in calibration_rows(items)]
    return compare_rows(display, "calibration", record.calibration or [], derived, KEYS)


def verify_record(
    path: Path,
    record: Record,
    specs: SpecSet | None = None,
    notes: list[str] | None = None,
    rerun: int = 0,
) -> list[str]:
    """Re-derive every number of a record from its sidecar (and its base's, for the pairs);
    with `specs`, also the parses, truths, spec hashes and model spec, and with `rerun`, ask
    the model again for that many answers (`reask`); what could not be checked is appended to
    `notes`."""
    display = _display(path)
    problems = _placement(path, record) + figure_problems(path)
    try:
        answers = read_sidecar(path.parent, record.sidecar.path, record.sidecar.sha256)
    except OSError as e:
        return [
            *problems,
            f"{display}: sidecar.path: cannot read {record.sidecar.path}: {e.strerror}",
        ]
    except RecordError as e:
        return [*problems, f"{display}: {e}"]
    except (ValueError, EOFError, gzip.BadGzipFile, pd.errors.ParserError) as e:
        return [
            *problems,
            f"{display}: sidecar.path: {record.sidecar.path} is not a valid sidecar: {e}",
        ]
    versions = sorted(set(answers["parser_version"]))
    if versions != [record.parser_version]:
        shown = ", ".join(map(str, versions)) or "none"
        problems.append(
            f"{display}: parser_version: recorded {record.parser_version}, "
            f"the sidecar's rows were parsed by {shown}"
        )
    if (record.scoring_version or 1) != SCORING_VERSION:
        problems.append(
            f"{display}: scoring_version: recorded {record.scoring_version or 1}, this medbench "
            f"scores with {SCORING_VERSION}: re-score and republish the record"
        )
    others = sorted(set(answers["model"]) - {record.model_id})
    if others:
        problems.append(f"{display}: sidecar.path: holds rows of other models: {', '.join(others)}")
        return problems
    frames = [answers]
    for model, base in record.layout.pairs:
        if model != record.model_id:
            continue
        base_record = path.parent / f"{base}.json"
        try:
            expected = read_record(base_record).sidecar.sha256 if base_record.is_file() else None
        except RecordError:
            expected = None  # reported when the base's own record is verified
        try:
            frames.append(read_sidecar(path.parent, f"{base}{SIDECAR_SUFFIX}", expected))
        except (OSError, ValueError, EOFError, gzip.BadGzipFile, RecordError) as e:
            name = f"{base}{SIDECAR_SUFFIX}"
            return [*problems, f"{display}: pairs: cannot use the base's sidecar {name}: {e}"]
    problems.extend(image_processor_problems(display, record))
    problems.extend(check_run(display, record, answers))
    layout = ScoringLayout.from_json(record.layout.model_dump(mode="json"))
    problems.extend(_group_problems(display, answers, layout))
    try:
        tables = score_answers(pd.concat(frames, ignore_index=True), layout)
    except (KeyError, ValueError, IndexError) as e:
        return [*problems, f"{display}: layout: the sidecar's answers cannot be scored: {e!r}"]
    for name in TABLE_KEYS:
        derived = table_rows(getattr(tables, name), name, record.model_id)
        problems.extend(compare_rows(display, name, getattr(record, name) or [], derived))
    items, unread = likelihood_items(display, path, record)
    ladder = _ladder_checks(display, record, tables, items, specs, answers)
    problems.extend(ladder.problems)
    problems.extend(check_calibration(display, record, items, unread))
    found = _spec_checks(display, path, record, answers, specs, rerun)
    if notes is not None:
        notes.extend(ladder.notes + found.notes)
    return problems + found.problems


def _ladder_checks(
    display: str,
    record: Record,
    tables: ScoreTables,
    items: pd.DataFrame | None,
    specs: SpecSet | None,
    answers: pd.DataFrame,
) -> Findings:
    """The ladder's answer and likelihood columns (`check_ladder`), its readings and its probe
    columns (`rungs`); the pixel rung, which needs the data, is among the spec checks."""
    from medbench.publish.rederive import check_ladder
    from medbench.publish.rungs import check_probe_columns, check_readings

    found = check_probe_columns(display, record, specs, answers, _same)
    found.problems[:0] = check_ladder(display, record, tables, _same, items)
    found.problems.extend(check_readings(display, record))
    return found


def _spec_checks(
    display: str,
    path: Path,
    record: Record,
    answers: pd.DataFrame,
    specs: SpecSet | None,
    rerun: int,
) -> Findings:
    """Every check that needs today's specs: the answers (`against_specs`), the marks of
    written answers (`check_forgery`), the model block (`check_model`) and the model itself
    (`reask`): a baseline's every answer, another model's `rerun` random ones."""
    from medbench.publish.claims import check_model
    from medbench.publish.forgery import check_forgery
    from medbench.publish.reask import reask
    from medbench.publish.rederive import against_specs
    from medbench.publish.rungs import check_pixel_rung

    sidecar = _display(path.parent / record.sidecar.path)
    found = against_specs(display, sidecar, record, answers, specs)
    forged = check_forgery(sidecar, record, answers, specs)
    found.problems.extend(forged.problems)
    found.notes.extend(forged.notes)
    if specs is None:
        return found
    found.problems.extend(check_model(display, record, specs).problems)
    pixels = check_pixel_rung(display, record, answers, specs, _same)
    found.problems.extend(pixels.problems)
    found.notes.extend(pixels.notes)
    spec = specs.models.get(record.model_id)
    if spec is not None and spec.backend == "baseline":
        # deterministic and cheap: every answer is re-derived, not a sample
        asked = reask(display, path, record, specs, len(answers), label="baseline")
    elif rerun > 0:
        asked = reask(display, path, record, specs, rerun)
    else:
        return found
    found.problems.extend(asked.problems)
    found.notes.extend(asked.notes)
    return found


def verify_records(
    folder: Path, specs: SpecSet | None = None, notes: list[str] | None = None, rerun: int = 0
) -> list[str]:
    """Every problem of every record under a leaderboard folder (an empty list: all verified);
    see `verify_record` for `specs`, `notes` and `rerun`."""
    problems: list[str] = []
    for path in record_paths(folder):
        try:
            record = read_record(path)
        except RecordError as e:
            problems.extend(str(e).splitlines())
            continue
        problems.extend(verify_record(path, record, specs, notes, rerun))
    return problems


def nothing_verified(folder: Path) -> str:
    """Why a folder without records verifies nothing, and which folder to give instead."""
    hint = "give the leaderboard folder, which holds `<suite>/<model>.json` records"
    if any(p.is_file() for p in folder.glob("*.json")):
        hint = (
            "it looks like one suite's folder: give its leaderboard, "
            f"`medbench verify {folder.parent}`"
        )
    return f"{folder}: nothing verified: no records in this folder; {hint}."
