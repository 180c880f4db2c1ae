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
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from medbench import __version__
from medbench.errors import RecordError
from medbench.publish.jsonpos import position
from medbench.score.scoring import (
    ANSWER_COLUMNS,
    IMAGE_COLUMNS,
    IMAGE_PROCESSOR_COLUMN,
    ScoreTables,
    ScoringLayout,
    finite,
    score_answers,
    with_image_columns,
)
from medbench.spec.grouping import check_pattern, group_of
from medbench.spec.specs import ID_PATTERN, ModelSpec

if TYPE_CHECKING:
    from medbench.spec.loading import SpecSet

RECORD_SCHEMA_VERSION: Literal[3] = 3
"""2: a record and its sidecar's rows carry `parser_version`. 3: the models table gains
`all_variants_f1` and `mean_worst_f1`, the fragility table `all_variants_f1` (each with its CI);
the layout says which tasks are clustered, the sidecar holds each image's group and the
noise-floor replicates (`replicate` 1), and fragility rows carry the noise floor."""
SPEC_REF_PATTERN = r"^(task|prompt_family|model|suite)/[a-z0-9][a-z0-9._-]*$"
TOLERANCE = 1e-9
"""Largest absolute difference between a recorded and a re-derived number."""
SIDECAR_SUFFIX = ".answers.csv.gz"
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "scores": ("model", "task", "family", "variant", "pipeline"),
    "fragility": ("model", "task", "family", "pipeline"),
    "models": ("model", "pipeline"),
    "pairs": ("model", "base", "task", "family", "pipeline", "variant"),
    "image_variants": ("model", "task", "family", "pipeline", "image_variant"),
    "reliance": ("model", "task", "family", "pipeline"),
    "reliance_pairs": ("model", "base", "task", "family", "pipeline"),
}
"""The published tables and the columns that identify one of their rows."""
OPTIONAL_TABLES = ("image_variants", "reliance", "reliance_pairs")
"""Tables a record holds only where its answers saw image variants (absent: none)."""
SORT_ANSWERS = [
    "model",
    "task",
    "family",
    "variant",
    "pipeline",
    "sample",
    "replicate",
    "image_variant",
]

_PATTERN_NAMES = {
    ID_PATTERN: "a valid id (a-z, 0-9, '.', '_', '-')",
    SPEC_REF_PATTERN: "a spec reference (`task/<id>`, `prompt_family/<id>`, ...)",
}
MAX_RECORD_BYTES = 32 * 1024 * 1024
"""Records are refused above this size, before parsing."""
MAX_SIDECAR_BYTES = 256 * 1024 * 1024
"""Most bytes a sidecar may decompress to (a gzip bomb is refused, not expanded)."""
MAX_N_BOOT = 100_000
"""Most bootstrap resamples a record may ask `verify` to redo."""
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=80)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
CommitSha = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
SpecRef = Annotated[str, Field(pattern=SPEC_REF_PATTERN, max_length=100)]
"""`kind/id` of a spec file."""
Count = Annotated[int, Field(ge=0, le=100_000_000)]
Scalar = bool | int | float | str | None
ID_RE = re.compile(ID_PATTERN)
ID_COLUMNS = ("model", "base", "task", "family", "variant", "image_variant")
"""Row columns that hold ids (a pair's `variant` may also be `*`, every variant)."""


def _scalar(value: Any) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {json.dumps(value)}")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"expected a number, a string, true, false or null, got {_show(value)}")


def _row_ids(row: dict[str, Scalar]) -> dict[str, Scalar]:
    for column in ID_COLUMNS:
        value = row.get(column)
        if value is None or value == "*" and column == "variant":
            continue
        if not isinstance(value, str) or len(value) > 80 or not ID_RE.match(value):
            raise ValueError(f"column '{column}' is not a valid id, got {_show(value)}")
    return row


Row = Annotated[dict[str, Annotated[Scalar, PlainValidator(_scalar)]], AfterValidator(_row_ids)]
"""One table row: column -> number, string, boolean or null (a NaN is written as null)."""


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


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


def _git(*args: str) -> str | None:
    """What `git ARGS` prints in the medbench source tree, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit() -> str | None:
    """The commit of the medbench source tree, or None outside a git checkout."""
    return _git("rev-parse", "HEAD")


def git_dirty() -> bool | None:
    """Whether tracked files of the medbench source tree have uncommitted changes (None outside
    a git checkout): a result made from edited code is not the commit it names. The published
    records themselves (`leaderboard/`) do not count: publishing writes them one by one."""
    status = _git(
        "status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)leaderboard"
    )
    return None if status is None else bool(status)


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
    adapter_revision: str | None = Field(default=None, max_length=200)
    """For a model with a PEFT adapter: the adapter's resolved commit sha or `local:<hash>`
    (absent otherwise, so records of other models are unchanged)."""
    test_model: bool
    spec_hashes: dict[SpecRef, Sha256]
    dataset: DatasetInfo
    tasks: dict[Id, TaskInfo]
    medbench: MedbenchInfo
    environment: EnvironmentInfo
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    layout: LayoutInfo
    parser_version: int
    """`medbench.score.parsing.PARSER_VERSION` of the parser that read the sidecar's answers."""
    sidecar: SidecarInfo
    scores: list[Row]
    fragility: list[Row]
    models: list[Row]
    pairs: list[Row]
    """Pair rows where this model is the medical model."""
    ladder: list[Row] | None = None
    """Knowledge ladder rows per task (closed, likelihood, describe, probe, chance), when
    measured."""
    image_variants: list[Row] | None = None
    """Per (task, family, pipeline, image variant): F1 and image fragility, when measured."""
    reliance: list[Row] | None = None
    """Per (task, family, pipeline): visual reliance and F1 without the image, when measured."""
    reliance_pairs: list[Row] | None = None
    """Pair rows of visual reliance where this model is the medical model, when measured."""
    image_processors: ImageProcessors | None = None
    """`backend:Class` of the image processor (torchvision or PIL, which resize differently)
    -> number of answers it preprocessed; absent for models that read no images."""
    calibration: list[Row] | None = None
    """The likelihood stage's calibration rows (task, family, variant or `*`, pipeline: n,
    accuracy, mean confidence, ECE, Brier, AURC), when it scored this model's options;
    re-derived by `verify` from the likelihood sidecar."""
    likelihood_sidecar: LikelihoodSidecarInfo | None = None
    """The model's option scores, beside the record, that the calibration comes from."""


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
        if isinstance(part, int) or not re.fullmatch(r"[A-Za-z0-9_.-]+", part) or ".." in part:
            text += f"[{json.dumps(part)}]"
        else:
            text += f".{part}" if text else part
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
    # rows scored before answers carried the image columns saw the original image
    frame = with_image_columns(answers)[ANSWER_COLUMNS].sort_values(SORT_ANSWERS, kind="stable")
    # CRLF line ends: the csv writer quotes a field holding any character of the line end, so
    # an answer holding a bare carriage return is quoted (with "\n" it was not, and reading
    # the sidecar back split its row in two).
    text = frame.to_csv(index=False, lineterminator="\r\n")
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def decompress(raw: bytes, limit: int | None = None) -> bytes:
    """Gunzip `raw`, refusing (ValueError) output over `limit` bytes (default
    MAX_SIDECAR_BYTES) without expanding it."""
    limit = MAX_SIDECAR_BYTES if limit is None else limit
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
        while block := stream.read(1 << 20):
            out.write(block)
            if out.tell() > limit:
                raise ValueError(f"it decompresses to over {limit // (1024 * 1024)} MiB")
    return out.getvalue()


def read_answers_csv(raw: bytes) -> pd.DataFrame:
    """Answer rows from a sidecar's bytes: strings as written, `correct` as a boolean."""
    frame = pd.read_csv(
        io.BytesIO(decompress(raw)), dtype=str, keep_default_na=False, na_values=[""]
    )
    if "group" not in frame.columns:  # record schema version 1: no groups, no replicates
        frame["group"] = None
    for name, default in IMAGE_COLUMNS.items():  # a sidecar without them: original images
        frame[name] = frame[name].fillna(default) if name in frame.columns else default
    frame["replicate"] = frame["replicate"].astype(int) if "replicate" in frame.columns else 0
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
    likelihood: pd.DataFrame | None = None,
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
        sidecar=SidecarInfo(path=sidecar_path.name, sha256=hashlib.sha256(sidecar).hexdigest()),
        ladder=[{k: _plain(v) for k, v in sorted(row.items())} for row in ladder]
        if ladder
        else None,
        calibration=calibration,
        likelihood_sidecar=likelihood_sidecar,
        **fields,
    )
    path = target / f"{spec.id}.json"
    path.write_text(record_json(record), encoding="utf-8")
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
    path.write_bytes(raw)
    rows = [
        {k: _plain(v) for k, v in sorted(r.items())} for r in calibration_rows(read_items_csv(raw))
    ]
    return rows, LikelihoodSidecarInfo(path=path.name, sha256=hashlib.sha256(raw).hexdigest())


def record_json(record: Record) -> str:
    """A record as published: sorted keys, indent 2, a trailing newline."""
    data = record.model_dump(mode="json", exclude_none=False)
    optional_fields = ("ladder", "image_processors", "adapter_revision", *OPTIONAL_TABLES)
    for optional in (*optional_fields, "calibration", "likelihood_sidecar"):
        if data[optional] is None:
            del data[optional]
    if data["layout"]["image_variants"] is None:
        del data["layout"]["image_variants"]
    if data["dataset"]["revisions"] is None:
        del data["dataset"]["revisions"]
    return json.dumps(data, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def read_record(path: Path) -> Record:
    """Parse and validate one record; a RecordError names the file and every bad field."""
    display = _display(path)
    if path.is_symlink():
        raise RecordError(f"{display}:1:1: the record is a link; a record is a file of its own")
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_RECORD_BYTES + 1)
    except OSError as e:
        raise RecordError(f"{display}: cannot read the record: {e.strerror}.") from e
    if len(raw) > MAX_RECORD_BYTES:
        limit = MAX_RECORD_BYTES // (1024 * 1024)
        raise RecordError(f"{display}:1:1: the record is over the {limit} MiB limit")
    try:
        return Record.model_validate_json(raw)
    except ValidationError as e:
        text = raw.decode("utf-8", errors="replace")
        raise RecordError("\n".join(_issue(display, text, err) for err in e.errors())) from e


def _issue(display: str, text: str, error: Any) -> str:
    """One validation error as `file:line:col: field: problem`."""
    loc = tuple(error["loc"])
    at_key = loc[-1:] == ("[key]",) or error["type"] == "extra_forbidden"
    loc = loc[:-1] if loc[-1:] == ("[key]",) else loc
    pattern = (error.get("ctx") or {}).get("pattern")
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
    elif pattern in _PATTERN_NAMES:
        message = f"not {_PATTERN_NAMES[pattern]}"
    else:
        message = error["msg"][:1].lower() + error["msg"][1:]
    if error["type"] not in ("missing", "json_invalid", "value_error"):
        message += f", got {_show(error['input'])}"
    line, col = position(text, loc, at_key=at_key)
    found = re.search(r"at line (\d+) column (\d+)$", message)
    if error["type"] == "json_invalid" and found:
        line, col = int(found.group(1)), int(found.group(2))
    where = f"{_field(loc)}: " if loc else ""
    return f"{display}:{line}:{col}: {where}{message}"


MAPS_SUFFIX = ".tsne"
"""`<suite>/<model>.tsne/<task>.svg`: the probe stage's t-SNE maps published beside a record."""
RELIABILITY_SUFFIX = ".reliability"
"""`<suite>/<model>.reliability/<task>.svg`: the likelihood stage's reliability diagrams."""


def read_maps(record_path: Path, suffix: str = MAPS_SUFFIX) -> dict[str, bytes]:
    """The figures published beside a record in `<model><suffix>/` (task -> SVG bytes: the
    t-SNE maps, or with RELIABILITY_SUFFIX the reliability diagrams), each rebuilt from an
    allow-list of SVG parts; a figure that is a link, or holds anything else, is refused."""
    from medbench.publish.svgsafe import clean_svg

    what = "map" if suffix == MAPS_SUFFIX else "diagram"
    folder = record_path.with_name(record_path.stem + suffix)
    if folder.is_symlink():
        raise RecordError(f"{_display(folder)}: refusing a {what} folder that is a link")
    maps: dict[str, bytes] = {}
    for path in sorted(folder.glob("*.svg")) if folder.is_dir() else []:
        if path.is_symlink() or not path.is_file():
            raise RecordError(f"{_display(path)}: refusing a {what} that is a link or not a file")
        if not ID_RE.match(path.stem):
            raise RecordError(f"{_display(path)}: a {what} is named by its task id")
        try:
            maps[path.stem] = clean_svg(path.read_bytes())
        except ValueError as e:
            raise RecordError(f"{_display(path)}: refusing the SVG: {e}") from e
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


def _sidecar(folder: Path, name: str, sha256: str | None) -> pd.DataFrame:
    return read_answers_csv(_sidecar_bytes(folder, name, sha256))


def _sidecar_bytes(folder: Path, name: str, sha256: str | None) -> bytes:
    """A sidecar's bytes: not a link, bounded, and of the recorded hash (when one is given)."""
    if (folder / name).is_symlink():
        raise RecordError(f"sidecar.path: {name} is a link; a sidecar is a file of its own")
    with (folder / name).open("rb") as f:
        raw = f.read(MAX_SIDECAR_BYTES + 1)
    if len(raw) > MAX_SIDECAR_BYTES:
        raise ValueError(f"it is over {MAX_SIDECAR_BYTES // (1024 * 1024)} MiB")
    actual = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and actual != sha256:
        raise RecordError(f"sidecar.sha256: recorded {sha256}, the file {name} has {actual}")
    return raw


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
        raw = _sidecar_bytes(path.parent, info.path, info.sha256)
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
    path: Path, record: Record, specs: SpecSet | None = None, notes: list[str] | None = None
) -> list[str]:
    """Re-derive every number of a record from its sidecar (and its base's, for the pairs);
    with `specs`, also the parses, truths and spec hashes (what could not be checked is
    appended to `notes`)."""
    from medbench.publish.rederive import against_specs, check_ladder

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
    problems.extend(_group_problems(display, answers, layout))
    try:
        tables = score_answers(pd.concat(frames, ignore_index=True), layout)
    except (KeyError, ValueError, IndexError) as e:
        return [*problems, f"{display}: layout: the sidecar's answers cannot be scored: {e!r}"]
    for name in TABLE_KEYS:
        derived = table_rows(getattr(tables, name), name, record.model_id)
        problems.extend(compare_rows(display, name, getattr(record, name) or [], derived))
    items, unread = likelihood_items(display, path, record)
    problems.extend(check_ladder(display, record, tables, _same, items))
    problems.extend(check_calibration(display, record, items, unread))
    sidecar = _display(path.parent / record.sidecar.path)
    found = against_specs(display, sidecar, record, answers, specs)
    if notes is not None:
        notes.extend(found.notes)
    return problems + found.problems


def verify_records(
    folder: Path, specs: SpecSet | None = None, notes: list[str] | None = None
) -> list[str]:
    """Every problem of every record under a leaderboard folder (an empty list: all verified);
    see `verify_record` for `specs` and `notes`."""
    problems: list[str] = []
    for path in record_paths(folder):
        try:
            record = read_record(path)
        except RecordError as e:
            problems.extend(str(e).splitlines())
            continue
        problems.extend(verify_record(path, record, specs, notes))
    return problems
