"""Cells of a table's record batches: each row's size, read from Arrow's offsets before any value
becomes a Python object, so that an oversized cell is refused before it costs memory.

A column read as a dictionary (`read_dictionary`) holds one copy of a value that many rows repeat;
its rows' sizes count that value once per row, as reading them into Python would.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def cell_bytes(column: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The bytes of each row's value of a column (an Array or ChunkedArray): text and binary
    lengths, summed over a list's items and a struct's fields; 0 for nulls and numbers."""
    if isinstance(column, pa.ChunkedArray):
        parts = [cell_bytes(chunk) for chunk in column.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    kind = column.type
    types = pa.types
    if types.is_dictionary(kind):
        values = pa.array(cell_bytes(column.dictionary), pa.int64())
        return _filled(pc.take(values, column.indices))
    if types.is_binary(kind) or types.is_large_binary(kind):
        return _filled(pc.binary_length(column))
    if types.is_string(kind) or types.is_large_string(kind):
        return _filled(pc.binary_length(column))
    if types.is_list(kind) or types.is_large_list(kind):
        ends = np.concatenate(([0], np.cumsum(cell_bytes(column.values))))
        offsets = column.offsets.to_numpy(zero_copy_only=False)
        sizes = ends[offsets[1:]] - ends[offsets[:-1]]
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        return np.where(valid, sizes, 0).astype(np.int64)
    if types.is_struct(kind):
        total = np.zeros(len(column), np.int64)
        for field in column.flatten():
            total += cell_bytes(field)
        return total
    return np.zeros(len(column), np.int64)


def batch_bytes(batch: Any) -> int:
    """The bytes a record batch's cells take once read into Python (see `cell_bytes`)."""
    return sum(int(cell_bytes(batch.column(i)).sum()) for i in range(batch.num_columns))


def first_over(sizes: np.ndarray[Any, np.dtype[np.int64]], limit: int) -> int | None:
    """The position of the first size over `limit`, or None."""
    over = np.flatnonzero(sizes > limit)
    return int(over[0]) if over.size else None


def binary_cells(column: Any) -> Any:
    """An image column's bytes: the `bytes` field of a struct (Hugging Face's image), or the
    column itself (binary)."""
    if isinstance(column, pa.ChunkedArray):
        return pa.chunked_array(
            [binary_cells(chunk) for chunk in column.chunks], _binary_type(column.type)
        )
    if pa.types.is_struct(column.type):
        return pc.struct_field(column, "bytes")
    return column


def _binary_type(kind: Any) -> Any:
    return kind.field("bytes").type if pa.types.is_struct(kind) else kind


def _filled(lengths: Any) -> np.ndarray[Any, np.dtype[np.int64]]:
    filled = pc.fill_null(lengths, 0).cast(pa.int64())
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.int64)
