"""Shared helpers of the scoring tests: find rows in a scored table."""

from __future__ import annotations

from typing import Any

import pandas as pd


def one_row(frame: pd.DataFrame, **where: Any) -> pd.Series:
    """The one row of `frame` whose columns hold the values `where` names (asserted unique)."""
    mask = pd.Series(True, index=frame.index)
    for k, v in where.items():
        mask &= frame[k] == v
    found = frame[mask]
    assert len(found) == 1, where
    return found.iloc[0]
