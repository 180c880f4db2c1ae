"""Parquet files of a table source, read within bounds.

A file comes from a stranger: it is read only in the columns the source names (an image struct
only in its `bytes`), its sizes are checked from its metadata before a value is read, and what
its batches decode to is counted as they are read, since metadata can understate it and a value
stored once in a column's dictionary decodes once per row that repeats it. Text and image columns
are read as dictionaries, so such a value costs its size once in memory.

The bounds are sized for real medical VQA parquets: the bundled samples hold under 1 MiB, and the
Hugging Face shards of VQA-RAD, PathVQA and PMC-VQA hold their images (PNG or JPEG, which parquet
cannot compress further) in row groups of tens to a few hundred MiB, in files of about 500 MiB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medbench.data.tablecells import batch_bytes
from medbench.data.tablerows import ColumnError
from medbench.errors import DataError

MAX_ROWS = 200_000
"""Rows one table source may hold."""
BATCH = 256
"""Rows read at once, at most."""
MAX_BATCH_BYTES = 64 << 20
"""Bytes a batch is sized to hold, from the file's largest row group's bytes per row."""
MAX_COLUMN_CHUNK_BYTES = 1 << 30
"""Uncompressed bytes of one named column in one row group: a few times the largest real shards'
(a few hundred MiB), and what a batch can hold at worst, were its rows sized on a mean that one
huge value hides."""
MAX_TABLE_BYTES = 16 << 30
"""Bytes one file's (or one dataset's) named columns may decode to: every image is stored on disk
as it is read, `validate` included."""
MAX_EXPANSION = 100
"""How many times its size on disk a file's named columns may decode to. Images stored as PNG or
JPEG decode to their own size, text a few times it; 17 KB of zeros decoding to 481 MB of image
bytes does not."""
EXPANSION_FLOOR = 64 << 20
"""Bytes any file's named columns may decode to, however small the file (labels and questions
repeated on many rows compress far beyond `MAX_EXPANSION`)."""

Check = Callable[[Any, str], None]
"""Checks a file's Arrow schema against the source's columns; given the file's path."""


def parquet_batches(
    files: list[Path], where: str, image_column: str | None, fields: dict[str, str], check: Check
) -> Iterator[Any]:
    """The record batches of the named columns (`fields`: column -> spec field) of each file."""
    for file in files:
        if not file.is_file():
            raise ColumnError(f"{where}: parquet file not found.", "path")
        yield from _file_batches(file, image_column, fields, check)


def bounded_batches(batches: Iterator[Any], budget: int, problem: str) -> Iterator[Any]:
    """The batches, refused with `problem` once their cells add up to over `budget` bytes."""
    total = 0
    for batch in batches:
        total += batch_bytes(batch)
        if total > budget:
            raise ColumnError(problem, "path")
        yield batch


def size_text(size: int) -> str:
    """A size in KiB, MiB or GiB, as messages give it."""
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{size / 1024:.1f} KiB"


def _file_batches(
    file: Path, image_column: str | None, fields: dict[str, str], check: Check
) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as e:
        raise ColumnError(f"{file}: not a readable parquet file ({e}).", "path") from e
    meta = handle.metadata
    if meta.num_rows > MAX_ROWS:
        raise DataError(f"{file}: over {MAX_ROWS} rows. Read a smaller split.")
    check(handle.schema_arrow, str(file))
    selected = [_selected(handle.schema_arrow, column, image_column) for column in fields]
    leaves = {
        i: column
        for i in range(len(handle.schema))
        for column, name in zip(fields, selected, strict=True)
        if _within(handle.schema.column(i).path, name)
    }
    rows, budget, compressed = _sizes(file, meta, leaves, fields)
    text = [
        handle.schema.column(i).path
        for i in leaves
        if handle.schema.column(i).physical_type == "BYTE_ARRAY"
    ]
    try:
        reader = pq.ParquetFile(file, metadata=meta, read_dictionary=text)
        batches = reader.iter_batches(batch_size=rows, columns=selected)
        yield from bounded_batches(
            batches,
            budget,
            f"{file}: the named columns decode to over {size_text(budget)} from "
            f"{size_text(compressed)} on disk (at most {MAX_EXPANSION} times it): a value "
            "repeats on many rows, or the file's metadata understates its sizes.",
        )
    except (pa.ArrowException, OSError) as e:
        raise ColumnError(f"{file}: not a readable parquet file ({e}).", "path") from e


def _selected(schema: Any, column: str, image_column: str | None) -> str:
    """The column to read: an image struct's `bytes` only (its `path` is never read)."""
    import pyarrow as pa

    kind = schema.field(column).type
    if column == image_column and pa.types.is_struct(kind):
        return f"{column}.bytes"
    return column


def _within(path: str, name: str) -> bool:
    return path == name or path.startswith(f"{name}.")


def _sizes(
    file: Path, meta: Any, leaves: dict[int, str], fields: dict[str, str]
) -> tuple[int, int, int]:
    """Rows per batch, the bytes the named columns may decode to, and their bytes on disk, from
    the file's metadata; a column chunk, or the file, over its bound is refused."""
    uncompressed = compressed = 0
    per_row = 1
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        group_bytes = 0
        for leaf, column in leaves.items():
            chunk = group.column(leaf)
            size = max(0, chunk.total_uncompressed_size)
            if size > MAX_COLUMN_CHUNK_BYTES:
                raise ColumnError(
                    f"{file}: column {column!r}, row group {g}: {size_text(size)} uncompressed, "
                    f"over the {size_text(MAX_COLUMN_CHUNK_BYTES)} one column may hold in a row "
                    "group. Write the file in smaller row groups.",
                    fields[column],
                )
            group_bytes += size
            compressed += max(0, chunk.total_compressed_size)
        uncompressed += group_bytes
        per_row = max(per_row, group_bytes // max(1, group.num_rows))
    if uncompressed > MAX_TABLE_BYTES:
        raise ColumnError(
            f"{file}: the named columns hold {size_text(uncompressed)} uncompressed, over the "
            f"{size_text(MAX_TABLE_BYTES)} one file may hold. Split the table into files.",
            "path",
        )
    budget = min(MAX_TABLE_BYTES, max(EXPANSION_FLOOR, MAX_EXPANSION * compressed))
    if uncompressed > budget:
        raise ColumnError(
            f"{file}: the named columns decompress from {size_text(compressed)} to "
            f"{size_text(uncompressed)}, over {MAX_EXPANSION} times their size on disk (and over "
            f"{size_text(EXPANSION_FLOOR)}). Store the images compressed (PNG or JPEG).",
            "path",
        )
    return max(1, min(BATCH, MAX_BATCH_BYTES // per_row)), budget, compressed
