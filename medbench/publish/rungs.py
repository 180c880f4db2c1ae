"""Re-derive the knowledge ladder's rungs that do not follow from the answers: the raw-pixel
probe, the encoder probes, and each row's one-line reading.

The pixel rung does not depend on the model: it is the suite's probe fitted on the task's own
images, so `verify` fits it again from the data (as it checks truths). An encoder probe needs
the model's image embeddings: a model medbench cannot embed (a baseline, an API, a text-only
model), or a suite whose probe stage embeds nothing, has no probe, so any value there is a
forgery. An embeddable model's probe is scored from each image's out-of-fold prediction, which
the record holds (`probe_predictions`), as its answers: `verify` scores them again against the
sidecar's labels and refuses probe columns without them (the predictions themselves are taken
on trust, as the answers are). The reading is a function of the row's own columns, and is
recomputed from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from medbench.data import sha256_file
from medbench.errors import DataError
from medbench.publish.record import _show
from medbench.publish.rederive import Findings, record_samples
from medbench.score.probe import (
    can_embed,
    fold_scores,
    pixel_features,
    probe,
    reading,
    sample_groups,
    summarise,
)
from medbench.spec import ModelSpec, ProbeStage

if TYPE_CHECKING:
    from medbench.publish.record import Record, Scalar
    from medbench.spec.loading import SpecSet

PROBE_KINDS = ("vision", "projected")
PIXEL_COLUMNS = ("pixel_f1", "pixel_f1_lo", "pixel_f1_hi")


def _number(value: Any) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    )


def _shown(value: float | None) -> str:
    return "null" if value is None else f"{value:.10g}"


def _why_no_probe(record: Record, kind: str, specs: SpecSet | None) -> str | None:
    """Why the record's model can have no `kind` probe (None: it can)."""
    try:
        spec = ModelSpec.model_validate(record.model)
    except ValidationError:
        return "its model block is not a model spec"
    if not can_embed(spec):
        return f"medbench extracts no image embeddings from a {spec.backend} model"
    suite = specs.suites.get(record.suite) if specs is not None else None
    if suite is not None and (suite.probe is None or kind not in suite.probe.embeddings):
        return f"suite {record.suite} probes no {kind} embeddings"
    return None


def check_probe_columns(
    display: str,
    record: Record,
    specs: SpecSet | None,
    answers: pd.DataFrame,
    same: Callable[[Scalar, Scalar], bool],
) -> Findings:
    """A probe value where the model has no embeddings of that kind is a problem; an
    embeddable model's probe columns are re-scored from the record's out-of-fold predictions
    against the sidecar's labels (`answers`), and refused without them."""
    out = Findings()
    for i, row in enumerate(record.ladder or []):
        for kind in PROBE_KINDS:
            column = f"probe_{kind}_f1"
            columns = (column, f"{column}_lo", f"{column}_hi")
            given = [c for c in columns if row.get(c) is not None]
            if not given:
                continue
            why = _why_no_probe(record, kind, specs)
            if why is not None:
                out.problems.append(
                    f"{display}: ladder[{i}].{given[0]}: recorded {_show(row[given[0]])}, but "
                    f"{why}: no such probe exists. Publish the ladder as `medbench run` wrote it"
                )
                continue
            where = f"{display}: ladder[{i}].{column}"
            derived = _rescored(record, answers, str(row.get("task")), kind)
            if isinstance(derived, str):
                out.problems.append(f"{where}: cannot be re-derived: {derived}")
                continue
            out.notes += derived[1]
            for name, value in zip(columns, derived[0], strict=True):
                mine = None if math.isnan(value) else value
                if name in row and not same(row[name], mine):
                    out.problems.append(
                        f"{display}: ladder[{i}].{name}: recorded {_show(row.get(name))}, the "
                        f"probe's predictions score {_shown(mine)}"
                    )
    return out


def _rescored(
    record: Record, answers: pd.DataFrame, task: str, kind: str
) -> tuple[tuple[float, float, float], list[str]] | str:
    """The F1 and interval of the `kind` probe on `task`, from the record's out-of-fold
    predictions and the sidecar's labels, with notes; or why they cannot be re-scored."""
    rows = [
        r
        for r in record.probe_predictions or []
        if r.get("task") == task and r.get("embedding") == kind
    ]
    if not rows:
        return "the record holds no probe predictions for it; republish the model"
    answered = answers[answers["task"] == task].drop_duplicates("sample")
    label_of = dict(zip(answered["sample"].astype(str), answered["label"].astype(str), strict=True))
    samples = [str(r.get("sample")) for r in rows]
    folds = [r.get("fold") for r in rows]
    unknown = sorted(set(samples) - set(label_of))
    if unknown:
        return f"its predictions name image {unknown[0]!r}, which the sidecar does not answer"
    if not all(isinstance(f, int) and not isinstance(f, bool) and 0 <= f < 100 for f in folds):
        return "a prediction's fold is not a whole number from 0 to 99"
    notes = []
    if len(samples) < len(label_of):
        notes.append(
            f"the {kind} probe on {task} predicted {len(samples)} of the {len(label_of)} "
            "answered images (images that could not be embedded are left out)"
        )
    derived = summarise(
        fold_scores(
            np.asarray([label_of[s] for s in samples]),
            np.asarray([str(r.get("predicted")) for r in rows]),
            np.asarray(folds),
        )
    )
    return derived, notes


def check_readings(display: str, record: Record) -> list[str]:
    """Each ladder row's reading, recomputed from the row's own columns."""
    problems = []
    for i, row in enumerate(record.ladder or []):
        if "reading" not in row:
            continue
        probes = {k: _number(row.get(f"probe_{k}_f1")) for k in PROBE_KINDS}
        expected = reading(
            _number(row.get("chance_f1")),
            _number(row.get("direct_f1_mean")),
            {k: f for k, f in probes.items() if not math.isnan(f)},
            _number(row.get("pixel_f1")),
            _number(row.get("described_f1_mean")),
            _number(row.get("likelihood_f1_mean")),
            _number(row.get("no_image_f1")),
        )
        if row["reading"] != expected:
            problems.append(
                f"{display}: ladder[{i}].reading: recorded {_show(row['reading'])}, its columns "
                f"read {expected!r}"
            )
    return problems


_FITTED: dict[tuple[Any, ...], tuple[float, float, float]] = {}
"""Pixel probes fitted in this process, by the images' content and the settings: the records
of a suite share their tasks' probes."""


def _pixel_probe(
    paths: list[Path],
    labels: list[str],
    groups: list[str] | None,
    seed: int,
    folds: int | None,
) -> tuple[float, float, float]:
    """The pixel probe of these images, as the probe stage fits it."""
    key = (
        tuple(sha256_file(p) for p in paths),
        tuple(labels),
        tuple(groups) if groups is not None else None,
        seed,
        folds,
    )
    if key not in _FITTED:
        result = probe(pixel_features(paths), labels, seed=seed, folds=folds, groups=groups)
        _FITTED[key] = (result.f1, result.f1_lo, result.f1_hi)
    return _FITTED[key]


def check_pixel_rung(
    display: str,
    record: Record,
    answers: pd.DataFrame,
    specs: SpecSet,
    same: Callable[[Scalar, Scalar], bool],
) -> Findings:
    """Fit the raw-pixel probe again on each ladder task's answered images, with the suite's
    probe settings, and compare it with the recorded pixel columns."""
    out = Findings()
    suite = specs.suites.get(record.suite)
    stage = (suite.probe if suite is not None else None) or ProbeStage()
    for i, row in enumerate(record.ladder or []):
        if all(row.get(c) is None for c in PIXEL_COLUMNS):
            continue
        task = specs.tasks.get(str(row.get("task")))
        if task is None or suite is None or record.dataset.source not in task.data:
            out.notes.append(f"{display}: ladder[{i}]: pixel probe not re-derived: no such data")
            continue
        try:
            samples = record_samples(task, record, specs)
        except (DataError, OSError) as e:
            out.notes.append(f"{display}: ladder[{i}]: pixel probe not re-derived: {e}")
            continue
        asked = set(answers.loc[answers["task"] == task.id, "sample"])
        mine = [s for s in samples if s.id in asked]  # sorted by id, as the run plans them
        derived = _pixel_probe(
            [s.path for s in mine],
            [s.label for s in mine],
            sample_groups(mine),
            stage.seed,
            stage.folds,
        )
        for column, value in zip(PIXEL_COLUMNS, derived, strict=True):
            mine_value = None if math.isnan(value) else value
            if not same(row.get(column), mine_value):
                out.problems.append(
                    f"{display}: ladder[{i}].{column}: recorded {_show(row.get(column))}, the "
                    f"task's {len(mine)} images give {_shown(mine_value)}"
                )
    return out


__all__ = ["check_pixel_rung", "check_probe_columns", "check_readings"]
