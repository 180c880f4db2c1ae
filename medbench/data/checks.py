"""Checks of the data sources present on this machine, each problem at the spec field it is about.

`medbench validate` runs them on every task's sources it can reach: paths inside the project
always (the bundled sample), `${MEDBENCH_DATA}/...` ones when a data folder is given. A source
is read the way `load_samples` reads it, but every problem is collected instead of the first
one raised: the folder or manifest, label folders no label takes, labels without images, and
images whose header cannot be read (a quick check: no image is decoded).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medbench.data.images import pixel_problem
from medbench.data.samples import DATA_PREFIX, IMAGE_SUFFIXES
from medbench.errors import Issue
from medbench.spec import TABLE_FORMATS, DataSourceSpec, TaskSpec
from medbench.spec.loading import Document, new_yaml, read

if TYPE_CHECKING:
    from medbench.spec.loading import SpecSet

MAX_LISTED = 3
"""Unreadable images named in one message; the rest are counted."""


@dataclass
class _Found:
    """What a source holds: images per label, and what could not be placed or read."""

    images: dict[str, int] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    missing: str | None = None
    field: str = "path"
    """The source's field a `missing` problem is about (e.g. `label_column`)."""


def check_data(
    specs: SpecSet, data_root: Path | None, tasks: list[str] | None = None
) -> list[Issue]:
    """Problems of every reachable data source of `tasks` (default: all), located in the specs.

    `data_root` stands for `${MEDBENCH_DATA}`; without it those sources are skipped.
    """
    issues: list[Issue] = []
    yaml = new_yaml()
    for task_id in sorted(specs.tasks if tasks is None else tasks):
        task = specs.tasks[task_id]
        found = {
            name: _scan(task, source, base)
            for name, source in sorted(task.data.items())
            if source.path is not None
            and (base := _resolve(source.path, specs.root, data_root)) is not None
        }
        if not found:
            continue
        doc = Document(specs.root / specs.files[("task", task_id)].path, "")
        doc.display = _display(doc.path)
        read(yaml, doc)
        for name, result in found.items():
            issues.extend(_issues(doc, task, name, task.data[name], result))
    return issues


def _resolve(raw: str, root: Path, data_root: Path | None) -> Path | None:
    if raw.startswith(DATA_PREFIX):
        return None if data_root is None else data_root / raw[len(DATA_PREFIX) :].lstrip("/")
    return root / raw


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _scan(task: TaskSpec, source: DataSourceSpec, base: Path) -> _Found:
    found = _Found(images={label.id: 0 for label in task.labels})
    if source.format in TABLE_FORMATS:
        _scan_table(found, task, source, base)
    elif source.format == "imagefolder":
        _scan_folder(found, source, base)
    else:
        _scan_manifest(found, task, source, base)
    return found


def _scan_folder(found: _Found, source: DataSourceSpec, base: Path) -> None:
    if not base.is_dir():
        found.missing = f"folder not found: {base}"
        return
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if folder.name in source.exclude:
            continue
        label = source.label_map.get(folder.name, folder.name)
        if label not in found.images:
            found.unmapped.append(folder.name)
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                _add(found, label, path, base)


def _scan_manifest(found: _Found, task: TaskSpec, source: DataSourceSpec, base: Path) -> None:
    if not base.is_file():
        found.missing = f"manifest not found: {base}"
        return
    with base.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        lacking = {"path", "label"} - set(reader.fieldnames or ())
        if lacking:
            found.missing = f"manifest {base} lacks column(s) {', '.join(sorted(lacking))}"
            return
        for row in reader:
            if source.task_column and row.get(source.task_column) != task.id:
                continue
            if row["label"] in source.exclude:
                continue
            label = source.label_map.get(row["label"], row["label"])
            if label not in found.images:
                if row["label"] not in found.unmapped:
                    found.unmapped.append(row["label"])
                continue
            rel = Path(row["path"])
            if rel.is_absolute() or ".." in rel.parts:
                found.unreadable.append((row["path"], "must be relative, without '..'"))
                continue
            _add(found, label, base.parent / rel, base.parent)


def _scan_table(found: _Found, task: TaskSpec, source: DataSourceSpec, base: Path) -> None:
    """A table source read as `load_samples` reads it (its images stored in a scratch folder,
    not in medbench's home); the first problem is kept, at the spec field it is about."""
    from medbench.data.tablerows import ColumnError
    from medbench.data.tables import read_table_source
    from medbench.errors import DataError

    if not base.exists():
        found.missing = f"not found: {base}"
        return
    with tempfile.TemporaryDirectory(prefix="medbench-validate-") as scratch:
        try:
            rows = read_table_source(task, source, base, Path(scratch))
        except ColumnError as e:
            found.missing, found.field = str(e), e.field
            return
        except DataError as e:
            found.missing = str(e)
            return
        for row in rows:
            _add(found, row.label, row.path, Path(scratch))
    if task.answer_type == "multiple_choice":  # letters no sample's answer takes are fine
        found.images = {label: n for label, n in found.images.items() if n} or found.images


def _add(found: _Found, label: str, path: Path, base: Path) -> None:
    problem = image_problem(path)
    if problem is None:
        found.images[label] += 1
    else:
        found.unreadable.append((os.path.relpath(path, base), problem))


def image_problem(path: Path) -> str | None:
    """Why an image's header cannot be read (None: it can), without decoding the pixels."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the explicit limit below applies, as in medbench.data.images
    try:
        with Image.open(path) as image:
            problem = pixel_problem(image)
            if problem is not None:
                return problem
            image.verify()
    except FileNotFoundError:
        return "no such file"
    except Exception as e:  # any failure of a format plugin on a broken file
        return "not an image" if type(e).__name__ == "UnidentifiedImageError" else str(e)
    return None


def _issues(
    doc: Document, task: TaskSpec, name: str, source: DataSourceSpec, found: _Found
) -> Iterator[Issue]:
    where = ("data", name, "path")
    if found.missing is not None:
        hint = " ".join(x for x in (source.layout, _homepage(source)) if x)
        problem = found.missing if found.missing.endswith(".") else f"{found.missing}."
        at = ("data", name, found.field)
        yield doc.issue(at, problem, hint or "Fix the path, or add the data.")
        return
    labels = ", ".join(label.id for label in task.labels)
    for raw in found.unmapped:
        what = "folder" if source.format == "imagefolder" else "manifest label"
        problem = f"{what} '{raw}' is not a label of this task ({labels})."
        yield doc.issue(where, problem, "Map it in `label_map`, or list it in `exclude`.")
    if found.unreadable:
        shown = ", ".join(f"{p} ({why})" for p, why in found.unreadable[:MAX_LISTED])
        more = len(found.unreadable) - MAX_LISTED
        shown += f" and {more} more" if more > 0 else ""
        problem = f"{len(found.unreadable)} image(s) cannot be read: {shown}."
        yield doc.issue(where, problem, "Replace or remove them.")
    for i, label in enumerate(task.labels):
        if found.images.get(label.id, 1) == 0:
            problem = f"no readable images of this label in the `{name}` data."
            hint = "Add its images, or map a folder to it in `label_map`."
            yield doc.issue(("labels", i, "id"), problem, hint)


def _homepage(source: DataSourceSpec) -> str:
    return f"Download: {source.homepage}" if source.homepage else ""
