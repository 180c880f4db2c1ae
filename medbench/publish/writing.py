"""Writing a record and its sidecars from a model's scored answers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medbench.atomic import write_bytes_atomic, write_text_atomic
from medbench.errors import RecordError
from medbench.publish.reading import record_json
from medbench.publish.record import (
    OPTIONAL_TABLES,
    RECORD_SCHEMA_VERSION,
    SIDECAR_SUFFIX,
    TABLE_KEYS,
    LayoutInfo,
    LikelihoodSidecarInfo,
    Provenance,
    Record,
    Row,
    RunInfo,
    Scalar,
    SidecarInfo,
    _plain,
    keys_digest,
)
from medbench.score import (
    ScoreTables,
    ScoringLayout,
    answers_csv,
)
from medbench.score.metrics import SCORING_VERSION
from medbench.spec import ModelSpec


def table_rows(frame: pd.DataFrame, table: str, model: str) -> list[dict[str, Scalar]]:
    """The rows of a published table that belong to `model`, sorted by their key columns."""
    if frame.empty or "model" not in frame.columns:
        return []
    keys = [k for k in TABLE_KEYS[table] if k in frame.columns]
    mine = frame[frame["model"] == model].sort_values(keys, kind="stable")
    return [{str(k): _plain(v) for k, v in sorted(row.items())} for row in mine.to_dict("records")]


def parser_version(answers: pd.DataFrame) -> int:
    """The one parser version of a model's answer rows (a RecordError when they mix versions)."""
    versions = sorted({int(v) for v in answers["parser_version"]})
    if len(versions) != 1:
        shown = ", ".join(map(str, versions)) or "none"
        raise RecordError(f"the answers were parsed by parser versions {shown}: re-score them")
    return versions[0]


def write_record(
    folder: Path,
    *,
    suite: str,
    spec: ModelSpec,
    answers: pd.DataFrame,
    tables: ScoreTables,
    layout: ScoringLayout,
    provenance: Provenance,
    allow_test_models: bool = False,
    ladder: list[dict[str, Any]] | None = None,
    probe_predictions: list[dict[str, Any]] | None = None,
    likelihood: pd.DataFrame | None = None,
    answer_keys: Sequence[str] = (),
) -> Path:
    """Write `folder/<suite>/<model>.json` and its answers sidecar; return the record's path.

    `answers` may hold other models' rows: only this model's are kept. `tables` are the
    scores of `answers` (with the base model's rows, for the pairs) under `layout`;
    `answer_keys` the cache keys of the model's direct answers, which the record names.
    """
    if spec.test_model and not allow_test_models:
        raise RecordError(
            f"model '{spec.id}' is a test model (random or demonstration weights): its numbers "
            f"are not a real result. Pass --allow-test-models to publish it anyway."
        )
    target = folder / suite
    target.mkdir(parents=True, exist_ok=True)
    mine = answers[answers["model"] == spec.id]
    sidecar = answers_csv(mine)
    sidecar_path = target / f"{spec.id}{SIDECAR_SUFFIX}"
    write_bytes_atomic(sidecar_path, sidecar)
    fields: dict[str, Any] = {
        name: table_rows(getattr(tables, name), name, spec.id) for name in TABLE_KEYS
    }
    for name in OPTIONAL_TABLES:
        fields[name] = fields[name] or None
    calibration, likelihood_sidecar = _write_likelihood(target, spec.id, likelihood)
    record = Record(
        schema_version=RECORD_SCHEMA_VERSION,
        suite=suite,
        model_id=spec.id,
        model=spec.model_dump(mode="json"),
        test_model=spec.test_model,
        revision=provenance.revision,
        adapter_revision=provenance.adapter_revision,
        spec_hashes=provenance.spec_hashes,
        dataset=provenance.dataset,
        tasks=provenance.tasks,
        medbench=provenance.medbench,
        environment=provenance.environment,
        date=provenance.date,
        image_processors=provenance.image_processors,
        layout=_layout_info(layout),
        parser_version=parser_version(mine),
        scoring_version=SCORING_VERSION,
        sidecar=SidecarInfo(path=sidecar_path.name, sha256=hashlib.sha256(sidecar).hexdigest()),
        ladder=[{k: _plain(v) for k, v in sorted(row.items())} for row in ladder]
        if ladder
        else None,
        probe_predictions=[
            {k: _plain(v) for k, v in sorted(row.items())} for row in probe_predictions
        ]
        if probe_predictions
        else None,
        calibration=calibration,
        likelihood_sidecar=likelihood_sidecar,
        run=RunInfo(
            suite=suite,
            medbench_version=provenance.medbench.version,
            git_commit=provenance.medbench.git_commit,
            answer_keys=keys_digest(answer_keys),
            n_answers=len(answer_keys),
        ),
        **fields,
    )
    path = target / f"{spec.id}.json"
    write_text_atomic(path, record_json(record))
    return path


def _layout_info(layout: ScoringLayout) -> LayoutInfo:
    """The record's copy of the scoring layout; the datasets' revisions are recorded once, in
    `dataset.revisions`."""
    data = {k: v for k, v in layout.to_json().items() if k != "dataset_revisions"}
    return LayoutInfo.model_validate_json(json.dumps(data))


def _write_likelihood(
    folder: Path, model: str, likelihood: pd.DataFrame | None
) -> tuple[list[Row] | None, LikelihoodSidecarInfo | None]:
    """Write the model's likelihood sidecar (when it has option scores); return the
    calibration rows re-derived from exactly those bytes, and the sidecar's name and hash."""
    from medbench.publish.likelihood import SUFFIX, calibration_rows, items_csv, read_items_csv

    path = folder / f"{model}{SUFFIX}"
    path.unlink(missing_ok=True)
    mine = likelihood[likelihood["model"] == model] if likelihood is not None else None
    if mine is None or mine.empty:
        return None, None
    raw = items_csv(mine)
    write_bytes_atomic(path, raw)
    rows = [
        {k: _plain(v) for k, v in sorted(r.items())} for r in calibration_rows(read_items_csv(raw))
    ]
    return rows, LikelihoodSidecarInfo(path=path.name, sha256=hashlib.sha256(raw).hexdigest())
