"""A model's option scores as published beside its record, and the calibration they give.

The answers sidecar holds no option scores, so a record's calibration figures come with a
second sidecar, `<model>.likelihood.csv.gz`: the likelihood stage's items of that model
(reproducible gzipped CSV). `verify` re-derives the calibration rows from it. It arrives by
pull request like any sidecar, so reading it checks every cell: lists of 2 to 26 options,
log-likelihoods finite and at most 0, token counts, and a truth among the classes.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from typing import Any

import pandas as pd

from medbench.score.likelihood import ITEM_COLUMNS, NORMALISATIONS, calibration

SUFFIX = ".likelihood.csv.gz"
KEYS = ("task", "family", "pipeline", "variant")
"""The columns that identify a calibration row (sorted by them)."""
MAX_OPTIONS = 26
LISTS = ("options", "classes", "total", "mean", "n_tokens")


def items_csv(items: pd.DataFrame) -> bytes:
    """A model's likelihood items as reproducible gzipped CSV (sorted, fixed columns, mtime 0)."""
    frame = items[ITEM_COLUMNS].sort_values(
        ["model", "task", "family", "variant", "sample"], kind="stable"
    )
    text = frame.to_csv(index=False, lineterminator="\r\n")
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def read_items_csv(raw: bytes) -> pd.DataFrame:
    """The items of a likelihood sidecar's bytes, every cell checked (ValueError naming the
    first bad row and column)."""
    from medbench.score import decompress

    frame = pd.read_csv(
        io.BytesIO(decompress(raw)), dtype=str, keep_default_na=False, na_values=[""]
    )
    missing = [c for c in ITEM_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"it lacks column(s) {', '.join(missing)}")
    for i, row in enumerate(frame.to_dict("records")):
        try:
            _check({str(k): v for k, v in row.items()})
        except (ValueError, TypeError, OverflowError) as e:
            raise ValueError(f"row {i + 1}: {e}") from e
    frame["truth_option"] = frame["truth_option"].astype(int)
    frame["merged"] = frame["merged"].map({"True": True, "False": False}).astype(bool)
    return frame[ITEM_COLUMNS]


def _check(row: dict[str, Any]) -> None:
    lists = {name: json.loads(str(row[name])) for name in LISTS}
    sizes = {len(v) if isinstance(v, list) else -1 for v in lists.values()}
    if len(sizes) != 1 or not 2 <= sizes.pop() <= MAX_OPTIONS:
        raise ValueError(f"options, classes and scores must be lists of 2 to {MAX_OPTIONS}, alike")
    for name in ("options", "classes"):
        if not all(isinstance(v, str) and len(v) <= 200 for v in lists[name]):
            raise ValueError(f"{name}: expected short texts")
    for name in ("total", "mean"):
        if not all(_log_probability(v) for v in lists[name]):
            raise ValueError(f"{name}: expected finite log-likelihoods of at most 0")
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in lists["n_tokens"]
    ):
        raise ValueError("n_tokens: expected counts")
    truth = int(str(row["truth_option"]))
    if not 0 <= truth < len(lists["classes"]) or lists["classes"][truth] != row["truth"]:
        raise ValueError("truth_option: does not name the truth among the classes")
    if row["merged"] not in ("True", "False"):
        raise ValueError("merged: expected True or False")


def _log_probability(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value <= 0
    )


def calibration_rows(items: pd.DataFrame) -> list[dict[str, Any]]:
    """The calibration rows of one model's items (both normalisations), without the model
    column, sorted by KEYS: what a record holds and what `verify` re-derives."""
    if items.empty:
        return []
    frame = pd.concat([calibration(items, norm) for norm in NORMALISATIONS])
    rows = frame.drop(columns="model").astype(object).to_dict("records")
    plain = [{str(k): v for k, v in row.items()} for row in rows]
    return sorted(plain, key=lambda r: tuple(str(r[k]) for k in KEYS))


__all__ = ["KEYS", "SUFFIX", "calibration_rows", "items_csv", "read_items_csv"]
