"""The answers sidecar: a model's scored answer rows as reproducible gzipped CSV, and back.

A record publishes its rows in this form, and the results folder scores the rows as they read
back from it, so the local site and a published record agree.
"""

from __future__ import annotations

import gzip
import io

import pandas as pd

from medbench.score.answers import ANSWER_COLUMNS, IMAGE_COLUMNS, with_image_columns

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
MAX_SIDECAR_BYTES = 256 * 1024 * 1024
"""Most bytes a sidecar may decompress to (a gzip bomb is refused, not expanded)."""


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
        if name == "image_ssim":
            frame[name] = frame[name] if name in frame.columns else None
        else:
            frame[name] = frame[name].fillna(default) if name in frame.columns else default
    frame["replicate"] = _whole(frame, "replicate") if "replicate" in frame.columns else 0
    frame["image_ssim"] = _similarity(frame["image_ssim"])
    missing = [c for c in ANSWER_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"the sidecar lacks column(s) {', '.join(missing)}")
    frame["correct"] = frame["correct"].map({"True": True, "False": False}).astype(bool)
    frame["parser_version"] = _whole(frame, "parser_version")
    return frame[ANSWER_COLUMNS]


def _similarity(cells: pd.Series) -> pd.Series:
    """The `image_ssim` column as floats in [-1, 1] (empty: not measured); anything else is a
    ValueError naming the first bad row."""
    values = pd.to_numeric(cells, errors="coerce").astype(float)
    bad = (cells.notna() & values.isna()) | ~(values.isna() | values.between(-1.0, 1.0))
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise ValueError(
            f"row {row + 1}: column 'image_ssim': expected an SSIM between -1 and 1, "
            f"got {cells.iloc[row]!r}"
        )
    return values


def _whole(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column of small whole numbers (0 to 999,999,999): anything else is a ValueError naming
    the first bad row, never an overflow."""
    cells = frame[column]
    good = cells.fillna("").str.fullmatch(r"[0-9]{1,9}")
    if not good.all():
        row = int(good.to_numpy().argmin())
        value = cells.iloc[row]
        raise ValueError(
            f"row {row + 1}: column '{column}': expected a whole number below 10**9, got {value!r}"
        )
    return cells.astype(int)
