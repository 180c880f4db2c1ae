"""One table row -> a sample: its image bytes, label, question and options, checked column by
column against what the task's spec says the table holds.

Each cell's size is checked in Arrow before it is read into Python (`tablecells`): a text cell
holds at most `MAX_CELL_BYTES`, an image `MAX_IMAGE_BYTES`, and an image's header must declare no
more than `DEFAULT_MAX_PIXELS` pixels (as an image file's) before its bytes are stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.data.images import bytes_pixel_problem
from medbench.data.tablecells import binary_cells, cell_bytes, first_over
from medbench.data.tableimages import MAX_IMAGE_BYTES, image_suffix, store_image
from medbench.errors import DataError
from medbench.spec import (
    MAX_OPTION,
    MAX_OPTIONS,
    MAX_QUESTION,
    OPTION_LETTERS,
    DataSourceSpec,
    TaskSpec,
)

MAX_ID = 200
"""Characters of one sample id."""
MAX_CELL_BYTES = 64 << 10
"""Bytes of one text cell (a label, id, question, group, or all the options of a row): far above
what any is allowed to hold once read (a question holds at most 2,000 characters), so that a cell
of megabytes is refused before it is read into Python."""


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


class _Reader:
    """Turns record batches into rows, checking each column's type and each value."""

    def __init__(self, task: TaskSpec, source: DataSourceSpec, where: str, images: Path) -> None:
        self.task, self.source, self.where, self.images = task, source, where, images
        self.labels = {label.id for label in task.labels}
        self.class_names: list[str] = []
        self.fields = column_fields(source)
        self.count = 0

    def read_features(self, features: Any) -> None:
        """Take the label column's class names from a `datasets` table's features."""
        self.class_names = _class_names(features, self.source.label_column)

    def check_columns(self, schema: Any, where: str | None = None) -> None:
        """Check that the table's (or one file's) schema holds each named column, of its type."""
        import pyarrow as pa

        where = where or self.where
        names = list(schema.names)
        for field, column in named_columns(self.source):
            if column not in names:
                raise ColumnError(
                    f"{where}: no column {column!r} (columns: {', '.join(names)}).", field
                )
            kind = schema.field(column).type
            expected = _expected(field)
            if not _fits(pa, kind, field):
                raise ColumnError(
                    f"{where}: column {column!r} holds {kind}, expected {expected}.", field
                )

    def rows(self, batch: Any) -> Iterator[TableRow]:
        s, where = self.source, self.where
        texts = [name for name in batch.schema.names if name != s.image_column]
        for name in texts:
            sizes = cell_bytes(batch.column(name))
            first = first_over(sizes, MAX_CELL_BYTES)
            if first is not None:
                raise ColumnError(
                    f"{where}: row {self.count + first}: column {name!r} holds {sizes[first]} "
                    f"bytes, over the {MAX_CELL_BYTES} of a text cell.",
                    self.fields[name],
                )
        columns = {name: batch.column(name).to_pylist() for name in texts}
        images = binary_cells(batch.column(s.image_column))
        image_sizes = cell_bytes(images)
        for i in range(batch.num_rows):
            index = self.count
            self.count += 1
            at = f"{where}: row {index}"
            options = self._options(columns, i, at)
            label = self._label(columns[s.label_column][i], options, at)
            if label is None:
                continue
            if image_sizes[i] > MAX_IMAGE_BYTES:
                raise ColumnError(
                    f"{at}: the image is over {MAX_IMAGE_BYTES} bytes.", "image_column"
                )
            data = _image_bytes(images[i].as_py(), at)
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


def named_columns(source: DataSourceSpec) -> list[tuple[str, str]]:
    """(spec field, column) of each column the source names, in the spec's order."""
    fields = {
        "image_column": source.image_column,
        "label_column": source.label_column,
        "id_column": source.id_column,
        "question_column": source.question_column,
        "options_column": source.options_column,
        "group": source.group.column if source.group is not None else None,
    }
    named = [*fields.items(), *(("options_columns", c) for c in source.options_columns)]
    return [(field, column) for field, column in named if column is not None]


def column_fields(source: DataSourceSpec) -> dict[str, str]:
    """Each column the source names -> the spec field naming it (the first, if several do)."""
    fields: dict[str, str] = {}
    for field, column in named_columns(source):
        fields.setdefault(column, field)
    return fields


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


def _image_bytes(data: object, at: str) -> bytes:
    if not isinstance(data, bytes) or not data:
        raise ColumnError(
            f"{at}: the image has no bytes (an image stored as a path is not read).",
            "image_column",
        )
    if image_suffix(data) is None:
        raise ColumnError(
            f"{at}: the image bytes are not PNG, JPEG, BMP, TIFF or WebP.", "image_column"
        )
    problem = bytes_pixel_problem(data)
    if problem is not None:  # a decompression bomb: refused before its bytes are stored
        raise ColumnError(f"{at}: the image is {problem}.", "image_column")
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
