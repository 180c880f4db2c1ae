"""Leaderboard records: one model's scores on a suite with provenance, and their verification.

A record (`leaderboard/<suite>/<model>.json`) holds the published numbers; its sidecar
(`<model>.answers.csv.gz`) holds the per-image answer rows they came from. `verify_records`
re-derives every number from the sidecars alone, so a record cannot claim what its answers
do not show.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from medbench import __version__
from medbench.errors import RecordError
from medbench.scoring import (
    ANSWER_COLUMNS,
    IMAGE_PROCESSOR_COLUMN,
    ScoreTables,
    ScoringLayout,
    finite,
    score_answers,
)
from medbench.specs import ID_PATTERN, ModelSpec

RECORD_SCHEMA_VERSION: Literal[3] = 3
"""2: a record and its sidecar's rows carry `parser_version`. 3: the models table gains
`all_variants_f1` and `mean_worst_f1`, the fragility table `all_variants_f1` (each with its CI)."""
TOLERANCE = 1e-9
"""Largest absolute difference between a recorded and a re-derived number."""
SIDECAR_SUFFIX = ".answers.csv.gz"
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "scores": ("model", "task", "family", "variant", "pipeline"),
    "fragility": ("model", "task", "family", "pipeline"),
    "models": ("model", "pipeline"),
    "pairs": ("model", "base", "task", "family", "pipeline", "variant"),
}
"""The published tables and the columns that identify one of their rows."""
SORT_ANSWERS = ["model", "task", "family", "variant", "pipeline", "sample"]

Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Scalar = bool | int | float | str | None


def _scalar(value: Any) -> Scalar:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"expected a number, a string, true, false or null, got {_show(value)}")


Row = dict[str, Annotated[Scalar, PlainValidator(_scalar)]]
"""One table row: column -> number, string, boolean or null (a NaN is written as null)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DatasetInfo(_Model):
    """Which images were evaluated."""

    source: Literal["sample", "full"]
    fingerprint: Sha256
    """sha256 over the sorted (image sha256, label) pairs of every evaluated image."""
    n_images: dict[str, int]
    """task -> number of evaluated images."""


class TaskInfo(_Model):
    """What the site shows of a task when no specs are at hand."""

    title: str
    modality: str
    difficulty: int
    homepage: str | None = None
    license: str | None = None


class MedbenchInfo(_Model):
    version: str
    git_commit: str | None
    git_dirty: bool | None = None
    """True when tracked files differed from `git_commit` (uncommitted changes); None outside
    a git checkout, or in records made before the field existed."""


class EnvironmentInfo(_Model):
    python: str
    platform: str
    torch: str | None
    transformers: str | None
    tokenizers: str | None = None
    pillow: str | None = None
    numpy: str | None = None
    accelerate: str | None = None
    packages_sha256: Sha256 | None = None
    """sha256 of every installed distribution's sorted `name==version` lines: equal for two
    records made in the same locked environment (`make venv`)."""
    gpu_name: str | None
    gpu_driver: str | None


class LayoutInfo(_Model):
    """`ScoringLayout.to_json()`: what re-scoring needs beyond the answers."""

    classes: dict[str, dict[str, list[str]]]
    variants: dict[str, list[str]]
    references: dict[str, str]
    answer_kinds: dict[str, Literal["label", "yes_no"]]
    pairs: list[tuple[str, str]]
    seed: int
    n_boot: int


class SidecarInfo(_Model):
    path: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*\.answers\.csv\.gz$")
    """File name beside the record."""
    sha256: Sha256


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def git_commit() -> str | None:
    """The commit of the medbench source tree, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_dirty() -> bool | None:
    """Whether tracked files of the medbench source tree have uncommitted changes (None outside
    a git checkout): a result made from edited code is not the commit it names."""
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(done.stdout.strip()) if done.returncode == 0 else None


def _package(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _gpu() -> tuple[str | None, str | None]:
    if shutil.which("nvidia-smi") is None:
        return None, None
    query = ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None, None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or "," not in lines[0]:
        return None, None
    name, driver = (part.strip() for part in lines[0].rsplit(",", 1))
    return name, driver


@functools.lru_cache(maxsize=1)
def installed_packages_sha256() -> str:
    """sha256 of the sorted `name==version` lines of every installed distribution (read once
    per process: publishing five records read every package's metadata five times)."""
    names = {
        f"{d.metadata['Name'].lower().replace('_', '-')}=={d.version}"
        for d in metadata.distributions()
    }
    lines = sorted(names)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def collect_environment() -> EnvironmentInfo:
    """Versions and GPU of this machine (package metadata only: torch is never imported)."""
    gpu_name, gpu_driver = _gpu()
    return EnvironmentInfo(
        python=platform.python_version(),
        platform=platform.platform(),
        torch=_package("torch"),
        transformers=_package("transformers"),
        tokenizers=_package("tokenizers"),
        pillow=_package("pillow"),
        numpy=_package("numpy"),
        accelerate=_package("accelerate"),
        packages_sha256=installed_packages_sha256(),
        gpu_name=gpu_name,
        gpu_driver=gpu_driver,
    )


ImageProcessors = dict[
    Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+:[A-Za-z0-9_]+$", max_length=120)],
    Annotated[int, Field(ge=1)],
]


class Provenance(_Model):
    """Where a result came from, beyond its model and numbers."""

    revision: str
    """The resolved revision of the weights (a commit sha, a checkpoint hash, ...)."""
    spec_hashes: dict[str, Sha256]
    """`kind/id` -> sha256 of every spec file that shaped the result."""
    dataset: DatasetInfo
    tasks: dict[str, TaskInfo]
    medbench: MedbenchInfo = Field(
        default_factory=lambda: MedbenchInfo(
            version=__version__, git_commit=git_commit(), git_dirty=git_dirty()
        )
    )
    environment: EnvironmentInfo = Field(default_factory=collect_environment)
    date: str = Field(default_factory=today, pattern=r"^\d{4}-\d{2}-\d{2}$")
    image_processors: ImageProcessors | None = None
    """`backend:Class` of the image processor -> number of answers it preprocessed."""


class Record(_Model):
    """One model's published result on one suite (record schema version 3)."""

    schema_version: Literal[3]
    suite: Id
    model_id: Id
    model: dict[str, Any]
    """The model spec, as loaded."""
    revision: str
    test_model: bool
    spec_hashes: dict[str, Sha256]
    dataset: DatasetInfo
    tasks: dict[str, TaskInfo]
    medbench: MedbenchInfo
    environment: EnvironmentInfo
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    layout: LayoutInfo
    parser_version: int
    """`medbench.parsing.PARSER_VERSION` of the parser that read the sidecar's answers."""
    sidecar: SidecarInfo
    scores: list[Row]
    fragility: list[Row]
    models: list[Row]
    pairs: list[Row]
    """Pair rows where this model is the medical model."""
    ladder: list[Row] | None = None
    """Knowledge ladder rows per task (closed, describe, probe, chance), when measured."""
    image_processors: ImageProcessors | None = None
    """`backend:Class` of the image processor (torchvision or PIL, which resize differently)
    -> number of answers it preprocessed; absent for models that read no images."""


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


def _field(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


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


def table_rows(frame: pd.DataFrame, table: str, model: str) -> list[dict[str, Scalar]]:
    """The rows of a published table that belong to `model`, sorted by their key columns."""
    if frame.empty or "model" not in frame.columns:
        return []
    keys = [k for k in TABLE_KEYS[table] if k in frame.columns]
    mine = frame[frame["model"] == model].sort_values(keys, kind="stable")
    return [{str(k): _plain(v) for k, v in sorted(row.items())} for row in mine.to_dict("records")]


def answers_csv(answers: pd.DataFrame) -> bytes:
    """Answer rows as reproducible gzipped CSV (sorted, fixed columns, gzip mtime 0)."""
    frame = answers[ANSWER_COLUMNS].sort_values(SORT_ANSWERS, kind="stable")
    text = frame.to_csv(index=False, lineterminator="\n")
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def read_answers_csv(raw: bytes) -> pd.DataFrame:
    """Answer rows from a sidecar's bytes: strings as written, `correct` as a boolean."""
    frame = pd.read_csv(
        io.BytesIO(gzip.decompress(raw)), dtype=str, keep_default_na=False, na_values=[""]
    )
    missing = [c for c in ANSWER_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"the sidecar lacks column(s) {', '.join(missing)}")
    frame["correct"] = frame["correct"].map({"True": True, "False": False}).astype(bool)
    frame["parser_version"] = frame["parser_version"].astype(int)
    return frame[ANSWER_COLUMNS]


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
) -> Path:
    """Write `folder/<suite>/<model>.json` and its answers sidecar; return the record's path.

    `answers` may hold other models' rows: only this model's are kept. `tables` are the
    scores of `answers` (with the base model's rows, for the pairs) under `layout`.
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
    sidecar_path.write_bytes(sidecar)
    fields = {name: table_rows(getattr(tables, name), name, spec.id) for name in TABLE_KEYS}
    record = Record(
        schema_version=RECORD_SCHEMA_VERSION,
        suite=suite,
        model_id=spec.id,
        model=spec.model_dump(mode="json"),
        test_model=spec.test_model,
        revision=provenance.revision,
        spec_hashes=provenance.spec_hashes,
        dataset=provenance.dataset,
        tasks=provenance.tasks,
        medbench=provenance.medbench,
        environment=provenance.environment,
        date=provenance.date,
        image_processors=provenance.image_processors,
        layout=LayoutInfo.model_validate_json(json.dumps(layout.to_json())),
        parser_version=parser_version(mine),
        sidecar=SidecarInfo(path=sidecar_path.name, sha256=hashlib.sha256(sidecar).hexdigest()),
        ladder=[{k: _plain(v) for k, v in sorted(row.items())} for row in ladder]
        if ladder
        else None,
        **fields,
    )
    path = target / f"{spec.id}.json"
    path.write_text(record_json(record), encoding="utf-8")
    return path


def record_json(record: Record) -> str:
    """A record as published: sorted keys, indent 2, a trailing newline."""
    data = record.model_dump(mode="json", exclude_none=False)
    for optional in ("ladder", "image_processors"):
        if data[optional] is None:
            del data[optional]
    return json.dumps(data, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def read_record(path: Path) -> Record:
    """Parse and validate one record; a RecordError names the file and every bad field."""
    display = _display(path)
    try:
        return Record.model_validate_json(path.read_bytes())
    except OSError as e:
        raise RecordError(f"{display}: cannot read the record: {e.strerror}.") from e
    except ValidationError as e:
        lines = []
        for error in e.errors(include_url=False):
            if error["type"] == "value_error":
                message = str(error["ctx"]["error"])
            else:
                message = error["msg"][:1].lower() + error["msg"][1:]
            if error["type"] not in ("missing", "json_invalid", "value_error"):
                message += f", got {_show(error['input'])}"
            where = f"{_field(error['loc'])}: " if error["loc"] else ""
            lines.append(f"{display}: {where}{message}")
        raise RecordError("\n".join(lines)) from e


MAPS_SUFFIX = ".tsne"
"""`<suite>/<model>.tsne/<task>.svg`: the probe stage's t-SNE maps published beside a record."""
_UNSAFE_SVG = re.compile(
    rb"<script|<foreignObject|javascript:|\bon[a-z]+\s*=|href\s*=\s*[\"'](?!#|data:image/png;)"
    rb"|https?://(?!www\.w3\.org/)",
    re.I,
)


def read_maps(record_path: Path) -> dict[str, bytes]:
    """The t-SNE maps published beside a record (task -> SVG bytes), refusing any SVG that
    could run script or load from elsewhere."""
    folder = record_path.with_name(record_path.stem + MAPS_SUFFIX)
    maps: dict[str, bytes] = {}
    for path in sorted(folder.glob("*.svg")) if folder.is_dir() else []:
        data = path.read_bytes()
        if _UNSAFE_SVG.search(data):
            raise RecordError(f"{_display(path)}: refusing an SVG with script or external links")
        maps[path.stem] = data
    return maps


def record_paths(folder: Path) -> list[Path]:
    """Every record file under a leaderboard folder (`<suite>/<model>.json`), sorted."""
    return sorted(p for p in folder.glob("*/*.json") if p.is_file())


def load_records(folder: Path) -> list[tuple[Path, Record]]:
    """Every record of a leaderboard folder, validated; one RecordError lists all problems."""
    loaded, problems = [], []
    for path in record_paths(folder):
        try:
            record = read_record(path)
        except RecordError as e:
            problems.append(str(e))
            continue
        problems.extend(_placement(path, record))
        loaded.append((path, record))
    if problems:
        raise RecordError("\n".join(problems))
    return loaded


def _placement(path: Path, record: Record) -> list[str]:
    display, problems = _display(path), []
    if record.suite != path.parent.name:
        problems.append(
            f"{display}: suite: '{record.suite}' is not its folder '{path.parent.name}'"
        )
    if record.model_id != path.stem:
        problems.append(f"{display}: model_id: '{record.model_id}' is not its file name")
    if record.model.get("id") != record.model_id:
        problems.append(f"{display}: model.id: {_show(record.model.get('id'))} is not the model_id")
    if record.sidecar.path != f"{record.model_id}{SIDECAR_SUFFIX}":
        expected = f"{record.model_id}{SIDECAR_SUFFIX}"
        problems.append(
            f"{display}: sidecar.path: expected '{expected}', got '{record.sidecar.path}'"
        )
    return problems


def _same(a: Scalar, b: Scalar) -> bool:
    if a is None or b is None or isinstance(a, bool | str) or isinstance(b, bool | str):
        return a == b and type(a) is type(b)
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= TOLERANCE


def compare_rows(
    display: str, table: str, recorded: list[dict[str, Scalar]], derived: list[dict[str, Scalar]]
) -> list[str]:
    """Every field of `recorded` that differs from `derived`, rows matched by their key."""
    keys = TABLE_KEYS[table]
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


def _sidecar(folder: Path, name: str, sha256: str | None) -> pd.DataFrame:
    raw = (folder / name).read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and actual != sha256:
        raise RecordError(f"sidecar.sha256: recorded {sha256}, the file {name} has {actual}")
    return read_answers_csv(raw)


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


def verify_record(path: Path, record: Record) -> list[str]:
    """Re-derive every number of a record from its sidecar (and its base's, for the pairs)."""
    display = _display(path)
    problems = _placement(path, record)
    try:
        answers = _sidecar(path.parent, record.sidecar.path, record.sidecar.sha256)
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
            frames.append(_sidecar(path.parent, f"{base}{SIDECAR_SUFFIX}", expected))
        except (OSError, ValueError, EOFError, gzip.BadGzipFile, RecordError) as e:
            name = f"{base}{SIDECAR_SUFFIX}"
            return [*problems, f"{display}: pairs: cannot use the base's sidecar {name}: {e}"]
    problems.extend(image_processor_problems(display, record))
    layout = ScoringLayout.from_json(record.layout.model_dump(mode="json"))
    try:
        tables = score_answers(pd.concat(frames, ignore_index=True), layout)
    except (KeyError, ValueError, IndexError) as e:
        return [*problems, f"{display}: layout: the sidecar's answers cannot be scored: {e!r}"]
    for name in TABLE_KEYS:
        derived = table_rows(getattr(tables, name), name, record.model_id)
        problems.extend(compare_rows(display, name, getattr(record, name), derived))
    return problems


def verify_records(folder: Path) -> list[str]:
    """Every problem of every record under a leaderboard folder (an empty list: all verified)."""
    problems: list[str] = []
    for path in record_paths(folder):
        try:
            record = read_record(path)
        except RecordError as e:
            problems.extend(str(e).splitlines())
            continue
        problems.extend(verify_record(path, record))
    return problems
