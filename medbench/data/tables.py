"""Table data sources (Hugging Face datasets, parquet files) -> rows with their image's bytes.

Each image is written once to a content-addressed file (`<sha256>.<ext>`) in medbench's home
folder, so that a sample read from a table has a path like any other and the same cache key as
the same image read from a folder: everything downstream reads `Sample.path`.
"""

from __future__ import annotations

import hashlib
import os
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.data.hubcache import SHA_RE, hub_offline, local_ref
from medbench.errors import DataError
from medbench.home import medbench_home
from medbench.spec import (
    MAX_OPTION,
    MAX_OPTIONS,
    MAX_QUESTION,
    OPTION_LETTERS,
    DataSourceSpec,
    TaskSpec,
)

MAX_ROWS = 200_000
"""Rows one table source may hold."""
MAX_IMAGE_BYTES = 64 << 20
"""Bytes of one image in a table."""
MAX_ID = 200
"""Characters of one sample id."""
IMAGES_FOLDER = "table-images"
BATCH = 256
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


class ColumnError(DataError):
    """A table source problem about one of the spec's fields (e.g. `label_column`)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TableRow:
    """One row of a table source, its image stored by content."""

    id: str
    path: Path
    label: str
    sha256: str
    group: str | None
    question: str | None
    options: tuple[str, ...]


def table_images_dir() -> Path:
    """Where images read from tables are stored, by content."""
    return medbench_home() / IMAGES_FOLDER


def image_suffix(data: bytes) -> str | None:
    """The file suffix of an image's bytes by their signature (None: not a known format)."""
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return None


def store_image(data: bytes, folder: Path) -> tuple[Path, str]:
    """The content-addressed file holding `data` (written once) and its sha256."""
    sha = hashlib.sha256(data).hexdigest()
    suffix = image_suffix(data) or ".bin"
    path = folder / f"{sha}{suffix}"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{sha}.{os.getpid()}.partial"
        partial.write_bytes(data)
        os.replace(partial, path)
    return path, sha


def read_table_source(
    task: TaskSpec, source: DataSourceSpec, base: Path | None, images: Path | None = None
) -> list[TableRow]:
    """Every row of a table source as samples' rows; `base` is the confined local path (None
    for a Hub dataset). Raises `ColumnError` naming the spec field a problem is about."""
    where = str(base) if base is not None else source.location
    batches, features = _open(source, base, where)
    reader = _Reader(task, source, where, features, images or table_images_dir())
    rows: list[TableRow] = []
    for batch in batches:
        if not rows and not reader.checked:
            reader.check_columns(batch.schema)
        rows.extend(reader.rows(batch))
        if reader.count > MAX_ROWS:
            raise DataError(f"{where}: over {MAX_ROWS} rows. Read a smaller split.")
    return rows


def _open(source: DataSourceSpec, base: Path | None, where: str) -> tuple[Iterator[Any], Any]:
    """The source's record batches (pyarrow) and its `datasets` features (or None)."""
    if source.format == "parquet":
        assert base is not None
        return _parquet_batches([base], where), None
    if base is not None and base.is_file():
        return _parquet_batches([base], where), None
    saved = base is None or any(
        (base / n).is_file() for n in ("dataset_info.json", "dataset_dict.json")
    )
    if not saved:
        assert base is not None
        files = sorted(p for p in base.rglob("*.parquet") if p.is_file()) if base.is_dir() else []
        if not files:
            raise ColumnError(f"{where}: no saved dataset and no parquet files here.", "path")
        return _parquet_batches(files, where), None
    dataset = _load_dataset(source, base, where)
    columns = [c for c in _columns(source) if c in dataset.column_names]
    return dataset.select_columns(columns).with_format("arrow").iter(batch_size=BATCH), (
        dataset.features
    )


def _parquet_batches(files: list[Path], where: str) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for file in files:
        if not file.is_file():
            raise ColumnError(f"{where}: parquet file not found.", "path")
        try:
            handle = pq.ParquetFile(file)
        except (pa.ArrowException, OSError) as e:
            raise ColumnError(f"{file}: not a readable parquet file ({e}).", "path") from e
        if handle.metadata.num_rows > MAX_ROWS:
            raise DataError(f"{file}: over {MAX_ROWS} rows. Read a smaller split.")
        yield from handle.iter_batches(batch_size=BATCH)


def _load_dataset(source: DataSourceSpec, base: Path | None, where: str) -> Any:
    import datasets

    if base is not None:
        if not base.is_dir():
            raise ColumnError(f"{where}: saved dataset not found.", "path")
        loaded = datasets.load_from_disk(str(base))
    else:
        assert source.repo is not None
        sha = resolve_dataset_revision(source.repo, source.revision or "main")
        try:
            loaded = datasets.load_dataset(source.repo, revision=sha, split=source.split)
        except (FileNotFoundError, ConnectionError, ValueError, OSError) as e:
            raise DataError(
                f"{where}: cannot load the dataset ({type(e).__name__}: {e}). Download it first "
                "(with network access, `datasets.load_dataset`) into the Hugging Face cache."
            ) from e
    if isinstance(loaded, datasets.DatasetDict):
        splits = sorted(loaded)
        if source.split is None or source.split not in loaded:
            given = f"has no split {source.split!r}" if source.split else "has several splits"
            raise ColumnError(f"{where}: the dataset {given} ({', '.join(splits)}).", "split")
        loaded = loaded[source.split]
    image = source.image_column
    if image in loaded.column_names and isinstance(loaded.features[image], datasets.Image):
        loaded = loaded.cast_column(image, datasets.Image(decode=False))
    return loaded


def resolve_dataset_revision(repo: str, revision: str) -> str:
    """The commit sha of a Hub dataset's revision: a sha as is, else asked of the hub, or
    (offline only) read from the local Hugging Face cache's `refs/<revision>`."""
    if len(revision) == 40 and all(c in string.hexdigits for c in revision):
        return revision.lower()
    if hub_offline():
        local = local_ref(repo, revision, "dataset", DataError)
        if local is None:
            raise DataError(
                f"{repo}@{revision}: cannot resolve the revision to a commit sha offline (no "
                "local copy). Download the dataset first, or pin `revision` to the "
                "40-character commit sha."
            )
        return local
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        sha = HfApi().dataset_info(repo, revision=revision).sha
    except (HfHubHTTPError, OfflineModeIsEnabled, OSError) as e:
        raise DataError(
            f"{repo}@{revision}: cannot resolve the revision to a commit sha on the Hugging Face "
            f"hub ({type(e).__name__}). Check the network, set HF_HUB_OFFLINE=1 to use the local "
            "cache, or pin `revision` to the 40-character commit sha."
        ) from e
    if not sha or not SHA_RE.match(str(sha)):
        raise DataError(f"{repo}@{revision}: the Hub gave no commit sha (got {sha!r}).")
    return str(sha)


def _columns(source: DataSourceSpec) -> list[str]:
    named = (
        source.image_column,
        source.label_column,
        source.id_column,
        source.question_column,
        source.options_column,
        *source.options_columns,
        source.group.column if source.group is not None else None,
    )
    return list(dict.fromkeys(c for c in named if c is not None))


class _Reader:
    """Turns record batches into rows, checking each column's type and each value."""

    def __init__(
        self, task: TaskSpec, source: DataSourceSpec, where: str, features: Any, images: Path
    ) -> None:
        self.task, self.source, self.where, self.images = task, source, where, images
        self.labels = {label.id for label in task.labels}
        self.class_names = _class_names(features, source.label_column)
        self.count = 0
        self.checked = False

    def check_columns(self, schema: Any) -> None:
        import pyarrow as pa

        s = self.source
        fields = {
            "image_column": s.image_column,
            "label_column": s.label_column,
            "id_column": s.id_column,
            "question_column": s.question_column,
            "options_column": s.options_column,
            "group": s.group.column if s.group is not None else None,
        }
        checks = [*fields.items(), *(("options_columns", c) for c in s.options_columns)]
        names = list(schema.names)
        for field, column in checks:
            if column is None:
                continue
            if column not in names:
                raise ColumnError(
                    f"{self.where}: no column {column!r} (columns: {', '.join(names)}).", field
                )
            kind = schema.field(column).type
            expected = _expected(field)
            if not _fits(pa, kind, field):
                raise ColumnError(
                    f"{self.where}: column {column!r} holds {kind}, expected {expected}.", field
                )
        self.checked = True

    def rows(self, batch: Any) -> Iterator[TableRow]:
        s = self.source
        columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
        for i in range(batch.num_rows):
            index = self.count
            self.count += 1
            at = f"{self.where}: row {index}"
            options = self._options(columns, i, at)
            label = self._label(columns[s.label_column][i], options, at)
            if label is None:
                continue
            data = _image_bytes(columns[s.image_column][i], at)
            path, sha = store_image(data, self.images)
            yield TableRow(
                self._id(columns, i, index, at),
                path,
                label,
                sha,
                self._group(columns, i, at),
                self._question(columns, i, at),
                options,
            )

    def _label(self, value: object, options: tuple[str, ...], at: str) -> str | None:
        if value is None:
            raise ColumnError(f"{at}: the label is empty.", "label_column")
        if self.task.answer_type == "multiple_choice":
            return _option_letter(str(value).strip(), options, at)
        if isinstance(value, int) and not isinstance(value, bool) and self.class_names:
            raw = self.class_names[value] if 0 <= value < len(self.class_names) else str(value)
        else:
            raw = str(value).strip()
        if raw in self.source.exclude:
            return None
        label = self.source.label_map.get(raw, raw)
        if self.task.answer_type == "yes_no":
            label = label.lower()  # "Yes", "NO": yes/no answers are read case-blind
        if label in self.labels:
            return label
        if self.source.unlabelled == "skip":
            return None
        raise ColumnError(
            f"{at}: label {raw[:80]!r} is not a label of task {self.task.id!r} "
            f"({', '.join(sorted(self.labels))}).",
            "label_column",
        )

    def _options(self, columns: dict[str, list[Any]], i: int, at: str) -> tuple[str, ...]:
        source = self.source
        if source.options_columns:
            field = "options_columns"
            given = [_unlettered(columns[c][i], n) for n, c in enumerate(source.options_columns)]
            while given and given[-1] in (None, ""):  # fewer options: the last ones blank
                given.pop()
            raw: object = given
        elif source.options_column is not None:
            field = "options_column"
            raw = columns[source.options_column][i]
        else:
            return ()
        if not isinstance(raw, list) or not 2 <= len(raw) <= MAX_OPTIONS:
            raise ColumnError(f"{at}: needs 2 to {MAX_OPTIONS} options.", field)
        options = tuple(str(o).strip() for o in raw if o is not None)
        if len(options) != len(raw) or not all(options):
            raise ColumnError(f"{at}: an option is empty.", field)
        if any(len(o) > MAX_OPTION for o in options):
            raise ColumnError(f"{at}: an option is over {MAX_OPTION} characters.", field)
        if len({o.lower() for o in options}) != len(options):
            raise ColumnError(f"{at}: two options are the same.", field)
        return options

    def _question(self, columns: dict[str, list[Any]], i: int, at: str) -> str | None:
        column = self.source.question_column
        if column is None:
            return None
        text = str(columns[column][i] or "").strip()
        if not text or len(text) > MAX_QUESTION:
            raise ColumnError(
                f"{at}: needs a question of 1 to {MAX_QUESTION} characters.", "question_column"
            )
        return text

    def _id(self, columns: dict[str, list[Any]], i: int, index: int, at: str) -> str:
        column = self.source.id_column
        if column is None:
            return f"row{index:06d}"
        value = str(columns[column][i] if columns[column][i] is not None else "").strip()
        if not value or len(value) > MAX_ID:
            raise ColumnError(f"{at}: needs an id of 1 to {MAX_ID} characters.", "id_column")
        return value

    def _group(self, columns: dict[str, list[Any]], i: int, at: str) -> str | None:
        if self.source.group is None or self.source.group.column is None:
            return None
        value = columns[self.source.group.column][i]
        group = str(value).strip() if value is not None else ""
        if not group:
            raise ColumnError(f"{at}: the group column is empty.", "group")
        return group


def _expected(field: str) -> str:
    return {
        "image_column": "an image (struct of bytes and path) or binary",
        "options_column": "a list of strings",
        "options_columns": "strings",
        "question_column": "strings",
    }.get(field, "strings or integers")


def _fits(pa: Any, kind: Any, field: str) -> bool:
    types = pa.types
    if field == "image_column":
        if pa.types.is_struct(kind):
            return bool(kind.get_field_index("bytes") >= 0)
        return bool(types.is_binary(kind) or types.is_large_binary(kind))
    if field == "options_column":
        return bool(
            (types.is_list(kind) or types.is_large_list(kind))
            and (types.is_string(kind.value_type) or types.is_large_string(kind.value_type))
        )
    text = types.is_string(kind) or types.is_large_string(kind)
    if field in ("question_column", "options_columns"):
        return bool(text)
    return bool(text or types.is_integer(kind))


def _class_names(features: Any, column: str | None) -> list[str]:
    if features is None or column is None or column not in features:
        return []
    names = getattr(features[column], "names", None)
    return [str(n) for n in names] if isinstance(names, list) else []


def _image_bytes(value: object, at: str) -> bytes:
    data = value.get("bytes") if isinstance(value, dict) else value
    if not isinstance(data, bytes) or not data:
        raise ColumnError(
            f"{at}: the image has no bytes (an image stored as a path is not read).",
            "image_column",
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise ColumnError(f"{at}: the image is over {MAX_IMAGE_BYTES} bytes.", "image_column")
    if image_suffix(data) is None:
        raise ColumnError(
            f"{at}: the image bytes are not PNG, JPEG, BMP, TIFF or WebP.", "image_column"
        )
    return data


def _unlettered(value: object, position: int) -> object:
    """An option without a leading letter that repeats its position (`A:` for the first)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    letter = OPTION_LETTERS[position].upper()
    if len(text) > 2 and text[0].upper() == letter and text[1] in ":.)":
        return text[2:].strip()
    return text


def _option_letter(value: str, options: tuple[str, ...], at: str) -> str:
    lowered = [o.lower() for o in options]
    if value.lower() in lowered:
        return OPTION_LETTERS[lowered.index(value.lower())]
    letter = value.rstrip(".):").lower()
    if len(letter) == 1 and letter in OPTION_LETTERS[: len(options)]:
        return letter
    raise ColumnError(
        f"{at}: answer {value[:80]!r} is neither one of the options nor a letter of one.",
        "label_column",
    )
