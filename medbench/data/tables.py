"""Table data sources (Hugging Face datasets, parquet files) -> rows with their image's bytes.

Each image is written once to a content-addressed file (`<sha256>.<ext>`) in medbench's home
folder (`tableimages`), so that a sample read from a table has a path like any other and the
same cache key as the same image read from a folder: everything downstream reads `Sample.path`.
How a row's columns become a sample is `tablerows`; how a parquet file is read within bounds,
`tablefiles`.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medbench.data.hubcache import SHA_RE, hub_offline, local_ref
from medbench.data.tablefiles import (
    BATCH,
    MAX_ROWS,
    MAX_TABLE_BYTES,
    bounded_batches,
    parquet_batches,
    size_text,
)
from medbench.data.tableimages import table_images_dir
from medbench.data.tablerows import ColumnError, TableRow, _Reader, column_fields
from medbench.errors import DataError
from medbench.spec import (
    DataSourceSpec,
    TaskSpec,
)


def read_table_source(
    task: TaskSpec, source: DataSourceSpec, base: Path | None, images: Path | None = None
) -> list[TableRow]:
    """Every row of a table source as samples' rows; `base` is the confined local path (None
    for a Hub dataset). Raises `ColumnError` naming the spec field a problem is about."""
    where = str(base) if base is not None else source.location
    reader = _Reader(task, source, where, images or table_images_dir())
    rows: list[TableRow] = []
    for batch in _batches(source, base, where, reader):
        rows.extend(reader.rows(batch))
        if reader.count > MAX_ROWS:
            raise DataError(f"{where}: over {MAX_ROWS} rows. Read a smaller split.")
    return rows


def _batches(
    source: DataSourceSpec, base: Path | None, where: str, reader: _Reader
) -> Iterator[Any]:
    """The record batches (pyarrow) of the columns the source names, each file's or dataset's
    columns checked first."""
    fields = column_fields(source)
    if source.format == "parquet" or (base is not None and base.is_file()):
        assert base is not None
        return parquet_batches([base], where, source.image_column, fields, reader.check_columns)
    saved = base is None or any(
        (base / n).is_file() for n in ("dataset_info.json", "dataset_dict.json")
    )
    if not saved:
        assert base is not None
        files = sorted(p for p in base.rglob("*.parquet") if p.is_file()) if base.is_dir() else []
        if not files:
            raise ColumnError(f"{where}: no saved dataset and no parquet files here.", "path")
        return parquet_batches(files, where, source.image_column, fields, reader.check_columns)
    dataset = _load_dataset(source, base, where)
    reader.read_features(dataset.features)
    reader.check_columns(dataset.features.arrow_schema)
    batches = dataset.select_columns(list(fields)).with_format("arrow").iter(batch_size=BATCH)
    problem = f"{where}: the named columns hold over {size_text(MAX_TABLE_BYTES)}."
    return bounded_batches(batches, MAX_TABLE_BYTES, f"{problem} Read a smaller split.")


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
    if not sha or not SHA_RE.fullmatch(str(sha)):
        raise DataError(f"{repo}@{revision}: the Hub gave no commit sha (got {sha!r}).")
    return str(sha)
