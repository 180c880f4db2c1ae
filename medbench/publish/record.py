"""The leaderboard record: one model's scores on a suite with its provenance, a versioned model.

A record (`leaderboard/<suite>/<model>.json`) holds the published numbers; its sidecar
(`<model>.answers.csv.gz`) holds the per-image answer rows they came from. Reading a record is
`reading`, writing one `writing`, and `verify` re-derives every number from the sidecars alone,
so a record cannot claim what its answers do not show.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    field_validator,
    model_validator,
)

from medbench import __version__
from medbench.publish.environment import (
    EnvironmentInfo,
    Sha256,
    collect_environment,
    git_commit,
    git_dirty,
    today,
)
from medbench.score import (
    finite,
)
from medbench.spec import ID_PATTERN

RECORD_SCHEMA_VERSION: Literal[4] = 4
"""2: a record and its sidecar's rows carry `parser_version`. 3: the models table gains
`all_variants_f1` and `mean_worst_f1`, the fragility table `all_variants_f1` (each with its CI);
the layout says which tasks are clustered, the sidecar holds each image's group and the
noise-floor replicates (`replicate` 1), and fragility rows carry the noise floor. 4: the record
names the run that made its answers (`run`: the suite, medbench's version and commit, and the
sha256 of its answers' cache keys). Records of version 3 are still read and verified."""
SPEC_REF_PATTERN = r"^(task|prompt_family|model|suite)/[a-z0-9][a-z0-9._-]*$"
SIDECAR_SUFFIX = ".answers.csv.gz"
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "scores": ("model", "task", "family", "variant", "pipeline"),
    "fragility": ("model", "task", "family", "pipeline"),
    "models": ("model", "pipeline"),
    "pairs": ("model", "base", "task", "family", "pipeline", "variant"),
    "image_variants": ("model", "task", "family", "pipeline", "image_variant"),
    "reliance": ("model", "task", "family", "pipeline"),
    "reliance_pairs": ("model", "base", "task", "family", "pipeline"),
    "severity": ("model", "task", "family", "pipeline", "perturbation", "severity"),
    "severity_models": ("model", "pipeline"),
    "quadrants": ("model", "task", "family", "pipeline"),
    "quadrant_models": ("model", "pipeline"),
}
"""The published tables and the columns that identify one of their rows."""
OPTIONAL_TABLES = (
    "image_variants",
    "reliance",
    "reliance_pairs",
    "severity",
    "severity_models",
    "quadrants",
    "quadrant_models",
)
"""Tables a record holds only where its answers saw image variants (absent: none)."""
MAX_RECORD_BYTES = 32 * 1024 * 1024
"""Records are refused above this size, before parsing."""
MAX_N_BOOT = 100_000
"""Most bootstrap resamples a record may ask `verify` to redo."""
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
CommitSha = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
SpecRef = Annotated[str, Field(pattern=SPEC_REF_PATTERN, max_length=100)]
"""`kind/id` of a spec file."""
Count = Annotated[int, Field(ge=0, le=100_000_000)]
Scalar = bool | int | float | str | None
ID_RE = re.compile(ID_PATTERN)
ID_COLUMNS = ("model", "base", "task", "family", "variant", "image_variant")
"""Row columns that hold ids (a pair's `variant` may also be `*`, every variant)."""
MAX_INT = 2**53
"""Largest whole number a row may hold (JSON's exact integers): a larger one is refused."""
ROW_KEYS: dict[str, tuple[str, ...]] = {
    **TABLE_KEYS,
    "ladder": ("model", "task"),
    "probe_predictions": ("task", "embedding", "sample"),
    "calibration": ("task", "family", "pipeline", "variant"),
}
"""Every table of a record and the columns that identify one of its rows: no two rows of a
table may share them (a repeated row would count twice on the site)."""


def _scalar(value: Any) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {json.dumps(value)}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise ValueError(f"expected a whole number within ±2**53, got {_show(value)}")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"expected a number, a string, true, false or null, got {_show(value)}")


def _row_ids(row: dict[str, Scalar]) -> dict[str, Scalar]:
    for column in ID_COLUMNS:
        value = row.get(column)
        if value is None or value == "*" and column == "variant":
            continue
        if not isinstance(value, str) or len(value) > 80 or not ID_RE.fullmatch(value):
            raise ValueError(f"column '{column}' is not a valid id, got {_show(value)}")
    return row


Row = Annotated[dict[str, Annotated[Scalar, PlainValidator(_scalar)]], AfterValidator(_row_ids)]
"""One table row: column -> number, string, boolean or null (a NaN is written as null)."""


def _past_date(value: str) -> str:
    """`value` if it is a real calendar day no later than tomorrow (UTC: a record made today
    anywhere on earth is not refused)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a real date, got {_show(value)}; write YYYY-MM-DD") from None
    latest = datetime.now(timezone.utc).date() + timedelta(days=1)
    if day > latest:
        raise ValueError(
            f"a date in the future, got {_show(value)}; a record says when it was made"
        )
    if day.year < 2020:
        raise ValueError(f"a date before medbench existed, got {_show(value)}")
    return value


Date = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$"), AfterValidator(_past_date)]
"""The day a record was made: a real day, not in the future."""


def unique_rows(table: str, rows: list[dict[str, Scalar]] | None) -> list[dict[str, Scalar]] | None:
    """`rows` if no two of them share the table's key (ROW_KEYS); otherwise a ValueError naming
    both rows."""
    seen: dict[tuple[Scalar, ...], int] = {}
    for i, row in enumerate(rows or []):
        key = tuple(row.get(k) for k in ROW_KEYS[table])
        if key in seen:
            named = ", ".join(f"{k}={v}" for k, v in zip(ROW_KEYS[table], key, strict=True))
            raise ValueError(
                f"rows {seen[key]} and {i} are the same row ({named}); publish each row once"
            )
        seen[key] = i
    return rows


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DatasetInfo(_Model):
    """Which images were evaluated."""

    source: Literal["sample", "full"]
    fingerprint: Sha256
    """sha256 over the sorted (image sha256, label) pairs of every evaluated image."""
    n_images: dict[Id, Count]
    """task -> number of evaluated images."""
    revisions: dict[Id, CommitSha] | None = None
    """task -> the commit sha its Hub dataset was read at; absent where no task's data is on
    the Hub (so records made before it load and verify unchanged)."""


class TaskInfo(_Model):
    """What the site shows of a task when no specs are at hand."""

    title: str
    modality: str
    difficulty: int = Field(ge=1, le=10)
    homepage: str | None = None
    license: str | None = None


class MedbenchInfo(_Model):
    version: str
    git_commit: str | None
    git_dirty: bool | None = None
    """True when tracked files differed from `git_commit` (uncommitted changes); None outside
    a git checkout, or in records made before the field existed."""


class LayoutInfo(_Model):
    """`ScoringLayout.to_json()`: what re-scoring needs beyond the answers."""

    classes: dict[Id, dict[Id, list[Id]]]
    variants: dict[Id, list[Id]]
    references: dict[Id, Id]
    answer_kinds: dict[Id, Literal["label", "yes_no"]]
    pairs: list[tuple[Id, Id]]
    seed: int = Field(ge=0, le=2**32 - 1)
    n_boot: int = Field(ge=1, le=MAX_N_BOOT)
    groups: dict[Id, Annotated[str, Field(max_length=300)]] = {}
    """task -> how its images are grouped into clusters, for the clustered tasks."""
    image_variants: dict[Id, Id] | None = None
    """image variant id -> its transform or ablation; absent where every answer saw the
    original image."""


class SidecarInfo(_Model):
    path: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*\.answers\.csv\.gz$")
    """File name beside the record."""
    sha256: Sha256


class LikelihoodSidecarInfo(_Model):
    path: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*\.likelihood\.csv\.gz$")
    """File name beside the record: the model's option scores (`medbench.publish.likelihood`)."""
    sha256: Sha256


ImageProcessors = dict[
    Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+:[A-Za-z0-9_]+$", max_length=120)],
    Annotated[int, Field(ge=1)],
]


class Provenance(_Model):
    """Where a result came from, beyond its model and numbers."""

    revision: str
    """The resolved revision of the weights (a commit sha, a checkpoint hash, ...)."""
    adapter_revision: str | None = Field(default=None, max_length=200)
    """For a model with a PEFT adapter: the adapter's resolved commit sha or `local:<hash>`."""
    spec_hashes: dict[SpecRef, Sha256]
    """`kind/id` -> sha256 of every spec file that shaped the result."""
    dataset: DatasetInfo
    tasks: dict[Id, TaskInfo]
    medbench: MedbenchInfo = Field(
        default_factory=lambda: MedbenchInfo(
            version=__version__, git_commit=git_commit(), git_dirty=git_dirty()
        )
    )
    environment: EnvironmentInfo = Field(default_factory=collect_environment)
    date: Date = Field(default_factory=today)
    image_processors: ImageProcessors | None = None
    """`backend:Class` of the image processor -> number of answers it preprocessed."""


class RunInfo(_Model):
    """The run that produced a record's answers (record schema version 4)."""

    suite: Id
    medbench_version: str = Field(max_length=100)
    git_commit: str | None = Field(max_length=100)
    answer_keys: Sha256
    """sha256 over the sorted cache keys (one a line) of the model's direct answers in the
    sidecar, as the suite's plan keys them: `verify --rerun` plans them again and compares."""
    n_answers: Count
    """How many answers those keys name."""


def keys_digest(keys: Iterable[str]) -> str:
    """The sha256 a record names its answers' cache keys by: over the sorted keys, a line each."""
    return hashlib.sha256("".join(f"{k}\n" for k in sorted(keys)).encode()).hexdigest()


class Record(_Model):
    """One model's published result on one suite (record schema version 4, or 3 without `run`)."""

    schema_version: Literal[3, 4]
    suite: Id
    model_id: Id
    model: dict[str, Any]
    """The model spec, as loaded."""
    revision: str
    adapter_revision: str | None = Field(default=None, max_length=200)
    """For a model with a PEFT adapter: the adapter's resolved commit sha or `local:<hash>`
    (absent otherwise, so records of other models are unchanged)."""
    test_model: bool
    spec_hashes: dict[SpecRef, Sha256]
    dataset: DatasetInfo
    tasks: dict[Id, TaskInfo]
    medbench: MedbenchInfo
    environment: EnvironmentInfo
    date: Date
    layout: LayoutInfo
    parser_version: int = Field(ge=1, le=1_000_000)
    """`medbench.score.parsing.PARSER_VERSION` of the parser that read the sidecar's answers."""
    scoring_version: int | None = None
    """`medbench.score.metrics.SCORING_VERSION` of the scoring that computed the tables (absent:
    version 1)."""
    sidecar: SidecarInfo
    scores: list[Row]
    fragility: list[Row]
    models: list[Row]
    pairs: list[Row]
    """Pair rows where this model is the medical model."""
    ladder: list[Row] | None = None
    """Knowledge ladder rows per task (closed, likelihood, describe, probe, chance), when
    measured."""
    probe_predictions: list[Row] | None = None
    """Per (task, embedding, sample): the fold the probe predicted the image in and the label it
    predicted, from which `verify` re-scores the ladder's probe columns; present where the
    ladder has encoder probes."""
    image_variants: list[Row] | None = None
    """Per (task, family, pipeline, image variant): F1 and image fragility, when measured."""
    reliance: list[Row] | None = None
    """Per (task, family, pipeline): visual reliance and F1 without the image, when measured."""
    reliance_pairs: list[Row] | None = None
    """Pair rows of visual reliance where this model is the medical model, when measured."""
    severity: list[Row] | None = None
    """Per (task, family, pipeline, perturbation, severity): the severity curves and each
    curve's rAUC, when some image variant has a severity."""
    severity_models: list[Row] | None = None
    """Per pipeline: the mean rAUC over the model's curves, when measured."""
    quadrants: list[Row] | None = None
    """Per (task, family, pipeline): the shares of images that are ideal, fragile, dangerous
    or worst, when an ablation was asked."""
    quadrant_models: list[Row] | None = None
    """Per pipeline: the quadrant shares over tasks, when measured."""
    image_processors: ImageProcessors | None = None
    """`backend:Class` of the image processor (torchvision or PIL, which resize differently)
    -> number of answers it preprocessed; absent for models that read no images."""
    calibration: list[Row] | None = None
    """The likelihood stage's calibration rows (task, family, variant or `*`, pipeline: n,
    accuracy, mean confidence, ECE, Brier, AURC), when it scored this model's options;
    re-derived by `verify` from the likelihood sidecar."""
    likelihood_sidecar: LikelihoodSidecarInfo | None = None
    """The model's option scores, beside the record, that the calibration comes from."""
    run: RunInfo | None = None
    """The run that made the answers: required from schema version 4, absent before."""

    @model_validator(mode="after")
    def _run_named(self) -> Record:
        if (self.schema_version >= 4) != (self.run is not None):
            raise ValueError(
                "run: a record of schema version 4 names its run, one of version 3 does not"
            )
        return self

    @field_validator(*ROW_KEYS)
    @classmethod
    def _rows_once(cls, rows: list[Row] | None, info: Any) -> list[Row] | None:
        return unique_rows(info.field_name, rows)


def _display(path: Path) -> str:
    try:
        return Path(os.path.relpath(path)).as_posix() if path.is_absolute() else path.as_posix()
    except ValueError:
        return path.as_posix()


def _show(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Scalar:
    """A pandas cell as a JSON scalar: numpy numbers become Python ones, NaN becomes None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return finite(value)  # type: ignore[no-any-return]
    if isinstance(value, bool | int | str):
        return value
    raise TypeError(f"cannot publish a value of type {type(value).__name__}")


MAPS_SUFFIX = ".tsne"
"""`<suite>/<model>.tsne/<task>.svg`: the probe stage's t-SNE maps published beside a record."""
RELIABILITY_SUFFIX = ".reliability"
"""`<suite>/<model>.reliability/<task>.svg`: the likelihood stage's reliability diagrams."""
