"""Dataset sources -> samples: each image with an id, a path, a label and its content hash."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medbench.errors import DataError
from medbench.spec import MAX_NAME, TABLE_FORMATS, DataSourceSpec, TaskSpec, check_pattern, group_of

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
DATA_ENV = "MEDBENCH_DATA"
DATA_PREFIX = "${MEDBENCH_DATA}"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Hasher = Callable[[Path], str]
Row = tuple[str, Path, str, str | None]
"""(sample id, path, label id, group or None)."""


@dataclass(frozen=True)
class Sample:
    """One evaluated image."""

    id: str
    """Stable id within the task: the path below the source root, without suffix."""
    path: Path
    label: str
    """The task label id."""
    sha256: str
    group: str | None = None
    """The group (patient, source image) the source declares for this image; None: none."""
    error: str | None = None
    """Why the image could not be read when it was hashed (its jobs then fail, one by one);
    `sha256` is then a marker unique to the path, never a content hash."""
    question: str | None = None
    """The sample's own question (closed VQA, `question_column`); None: the task's."""
    options: tuple[str, ...] = ()
    """The sample's own options, in the data's order (multiple choice); its label is the
    letter of the correct one (`a` for the first)."""


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_root(raw: str, root: Path) -> Path:
    """The folder a spec's data path must stay in: `$MEDBENCH_DATA`, or the project's data/."""
    if raw.startswith(DATA_PREFIX):
        base = os.environ.get(DATA_ENV)
        if not base:
            raise DataError(
                f"{raw}: the environment variable {DATA_ENV} is not set. "
                f"Set it to the folder holding the downloaded datasets."
            )
        return Path(base)
    return root / "data"


def confine(path: Path, inside: Path, what: str) -> Path:
    """`path` itself, after checking that its real path (links resolved) is inside `inside`."""
    real, limit = os.path.realpath(path), os.path.realpath(inside)
    if real != limit and not real.startswith(limit + os.sep):
        raise DataError(
            f"{path}: {what} resolves to {real}, outside the data root {limit} "
            "(a symbolic link?). Keep data files inside the data root."
        )
    return path


def resolve_data_path(raw: str, root: Path) -> Path:
    """A spec's data path: `${MEDBENCH_DATA}/...` or relative to the project root, checked to
    stay inside its data root with every symbolic link resolved."""
    inside = data_root(raw, root)
    if raw.startswith(DATA_PREFIX):
        path = inside / raw[len(DATA_PREFIX) :].lstrip("/")
    else:
        path = root / raw
    return confine(path, inside, "the data path")


def _label_for(task: TaskSpec, source: DataSourceSpec, raw: str, where: str) -> str:
    label = source.label_map.get(raw, raw)
    ids = [label.id for label in task.labels]
    if label not in ids:
        raise DataError(
            f"{where}: label {raw!r} is not a label of task {task.id!r} ({', '.join(ids)}). "
            f"Add it to the source's `label_map` or fix the data."
        )
    return label


def _name_group(source: DataSourceSpec, path: Path, where: str) -> str | None:
    if source.group is None or source.group.pattern is None:
        return None
    group = group_of(check_pattern(source.group.pattern), path.stem)
    if group is None:
        too_long = (
            f" (names over {MAX_NAME} characters are not matched)"
            if len(path.stem) > MAX_NAME
            else ""
        )
        raise DataError(
            f"{where}: the file name {path.stem!r} does not match the source's group pattern "
            f"{source.group.pattern!r}{too_long}. Fix the pattern so that every image has a group."
        )
    return group


def _imagefolder(task: TaskSpec, source: DataSourceSpec, base: Path, inside: Path) -> list[Row]:
    if not base.is_dir():
        raise DataError(
            f"{base}: task {task.id!r}: image folder not found. {source.layout or ''}".strip()
        )
    rows = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if folder.name in source.exclude:
            continue
        label = _label_for(task, source, folder.name, str(folder))
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                confine(path, inside, "an image")
                sample_id = path.relative_to(base).with_suffix("").as_posix()
                rows.append((sample_id, path, label, _name_group(source, path, str(path))))
    return rows


def _manifest(task: TaskSpec, source: DataSourceSpec, base: Path, inside: Path) -> list[Row]:
    if not base.is_file():
        raise DataError(f"{base}: task {task.id!r}: manifest not found.")
    rows = []
    with base.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        column = source.group.column if source.group is not None else None
        missing = {"path", "label", *([column] if column else [])} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{base}: manifest lacks column(s) {', '.join(sorted(missing))}.")
        for line, row in enumerate(reader, start=2):
            if source.task_column and row.get(source.task_column) != task.id:
                continue
            if row["label"] in source.exclude:
                continue
            rel = Path(row["path"])
            if rel.is_absolute() or ".." in rel.parts:
                raise DataError(
                    f"{base}:{line}: path {row['path']!r} must be relative, without '..'."
                )
            label = _label_for(task, source, row["label"], f"{base}:{line}")
            path = confine(base.parent / rel, inside, f"the image on line {line} of {base.name}")
            if column:
                group = (row[column] or "").strip() or None
                if group is None:
                    raise DataError(f"{base}:{line}: the group column {column!r} is empty.")
            else:
                group = _name_group(source, rel, f"{base}:{line}")
            rows.append((rel.with_suffix("").as_posix(), path, label, group))
    return rows


def _subsample(rows: list[Row], limit_per_class: int | None, seed: int) -> list[Row]:
    if limit_per_class is None:
        return rows
    kept: list[Row] = []
    for label in sorted({r[2] for r in rows}):
        of_label = [r for r in rows if r[2] == label]
        rng = random.Random(f"{seed}:{label}")
        kept.extend(rng.sample(of_label, min(limit_per_class, len(of_label))))
    return sorted(kept)


def load_samples(
    task: TaskSpec,
    source_name: str,
    root: Path,
    *,
    limit_per_class: int | None = None,
    seed: int = 0,
    hasher: Hasher = sha256_file,
    revision: str | None = None,
) -> list[Sample]:
    """Read a task's data source into samples, sorted by id, each with its image hash.

    `revision` is the commit sha a Hub dataset is read at in place of its spec's `revision`
    (one resolved or recorded before, see `hub_revision`); other sources ignore it."""
    source = task.data.get(source_name)  # type: ignore[call-overload]
    if source is None:
        raise DataError(f"task {task.id!r} has no {source_name!r} data source.")
    if source.format in TABLE_FORMATS:
        if source.repo is not None and revision is not None:
            source = source.model_copy(update={"revision": revision})
        return _content_groups(source, _table_samples(task, source, root, limit_per_class, seed))
    assert source.path is not None
    base = resolve_data_path(source.path, root)
    inside = data_root(source.path, root)
    rows = (
        _imagefolder(task, source, base, inside)
        if source.format == "imagefolder"
        else _manifest(task, source, base, inside)
    )
    if not rows:
        raise DataError(f"{base}: task {task.id!r}: no images found.")
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        dupe = min(i for i in set(ids) if ids.count(i) > 1)
        raise DataError(f"{base}: two images share the sample id {dupe!r}.")
    rows = _subsample(sorted(rows), limit_per_class, seed)
    return _content_groups(
        source,
        [_sample(sample_id, path, label, hasher, group) for sample_id, path, label, group in rows],
    )


def _content_groups(source: DataSourceSpec, samples: list[Sample]) -> list[Sample]:
    """The samples grouped by content where the source asks for it (`group: {by: content}`):
    among the images evaluated, after subsampling."""
    if source.group is None or source.group.by != "content":
        return samples
    from medbench.data.contentgroups import group_by_content

    groups = group_by_content([(s.id, s.path, _content_sha(s)) for s in samples])
    return [dataclasses.replace(s, group=g) for s, g in zip(samples, groups, strict=True)]


def _content_sha(sample: Sample) -> str | None:
    """The image's sha256: the sample's own, or computed where its hasher gave none (`""`)."""
    if sample.error is not None:
        return None
    if _SHA256.match(sample.sha256):
        return sample.sha256
    try:
        return sha256_file(sample.path)
    except OSError:
        return None


def hub_revision(task: TaskSpec, source_name: str, recorded: str | None = None) -> str | None:
    """The commit sha a task's Hub dataset is read at: `recorded` (the sha a run read it at),
    else its `revision` resolved (asked of the hub, or offline read from the local cache);
    None where the data is not on the Hub."""
    source = task.data.get(source_name)  # type: ignore[call-overload]
    if source is None or source.repo is None or source.revision is None:
        return None
    if recorded is not None:
        return recorded
    from medbench.data.tables import resolve_dataset_revision

    return resolve_dataset_revision(source.repo, source.revision)


def read_samples(
    task: TaskSpec, source_name: str, root: Path, recorded: str | None = None
) -> list[Sample]:
    """A task's samples, to check or show its answers by: image files are not hashed (their
    `sha256` is empty; a table's images are hashed as they are read), and a Hub dataset is
    read at `recorded` (the commit a run read it at), else at its revision resolved today."""
    sha = hub_revision(task, source_name, recorded)
    return load_samples(task, source_name, root, hasher=lambda _: "", revision=sha)


def _table_samples(
    task: TaskSpec, source: DataSourceSpec, root: Path, limit_per_class: int | None, seed: int
) -> list[Sample]:
    from medbench.data.tables import read_table_source

    base = None
    if source.path is not None:
        base = resolve_data_path(source.path, root)
        inside = data_root(source.path, root)
        if base.is_dir():
            for path in base.rglob("*"):
                confine(path, inside, "a dataset file")
    rows = read_table_source(task, source, base)
    where = str(base) if base is not None else source.location
    if not rows:
        raise DataError(f"{where}: task {task.id!r}: no rows found.")
    by_id = {r.id: r for r in rows}
    if len(by_id) != len(rows):
        ids = [r.id for r in rows]
        dupe = min(i for i in set(ids) if ids.count(i) > 1)
        raise DataError(f"{where}: two rows share the sample id {dupe!r}.")
    keys = [(r.id, r.path, r.label, r.group) for r in rows]
    kept = _subsample(sorted(keys), limit_per_class, seed)
    return [
        Sample(r.id, r.path, r.label, r.sha256, r.group, question=r.question, options=r.options)
        for r in (by_id[k[0]] for k in kept)
    ]


def _sample(sample_id: str, path: Path, label: str, hasher: Hasher, group: str | None) -> Sample:
    """A sample with its image hash, or with the reason its image cannot be read."""
    try:
        return Sample(sample_id, path, label, hasher(path), group)
    except OSError as e:
        marker = "unreadable-" + hashlib.sha256(str(path).encode()).hexdigest()
        reason = e.strerror or type(e).__name__
        error = f"image cannot be read: {path} ({reason})"
        return Sample(sample_id, path, label, marker, group, error=error)


def fingerprint(samples: list[Sample]) -> str:
    """A dataset fingerprint: the hash of the sorted (image sha256, label) pairs, with each
    sample's own question and options where it has them (closed VQA)."""
    digest = hashlib.sha256()
    lines = sorted(
        f"{s.sha256}\t{s.label}"
        + (f"\t{json.dumps([s.question, list(s.options)])}" if s.question or s.options else "")
        for s in samples
    )
    for line in lines:
        digest.update(f"{line}\n".encode())
    return digest.hexdigest()
