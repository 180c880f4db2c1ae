"""Ranks: the one order of models by the headline score, and each model's rank range."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

HEADLINE = "all_variants_kappa"
"""The score models are ranked by (95% interval in `_lo`, `_hi`)."""

Row = TypeVar("Row", bound=Mapping[str, Any])


@dataclass(frozen=True)
class Rank:
    """A model's place: its position in the order and, with an estimate, its rank range."""

    position: int
    """1-based position in the order (ties broken by model id): what tables sort by."""
    best: int | None
    """The best rank the intervals allow: 1 + the models whose interval lies wholly above."""
    worst: int | None
    """The worst rank the intervals allow: n - the models whose interval lies wholly below."""

    @property
    def text(self) -> str:
        """`best–worst` where the intervals allow more than one rank, else the single rank."""
        if self.best is None or self.worst is None:
            return str(self.position)
        return str(self.best) if self.best == self.worst else f"{self.best}–{self.worst}"


def _number(row: Mapping[str, Any], name: str) -> float | None:
    value = row.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return None
    return float(value)


def skilled(row: Mapping[str, Any]) -> bool:
    """Whether the headline's interval lies above 0 (without an interval: its value)."""
    lo, value = _number(row, f"{HEADLINE}_lo"), _number(row, HEADLINE)
    return (lo if lo is not None else (value if value is not None else 0.0)) > 0


def order_key(row: Mapping[str, Any]) -> tuple[bool, bool, float, str]:
    """Models with skill first, by the headline (highest first); then the models without
    skill, whose headline cannot be told from 0, by their mean kappa (the chance-corrected
    skill of single wordings); no headline last; ties by model id."""
    skill = skilled(row)
    first = _number(row, HEADLINE if skill else "mean_kappa")
    return (
        _number(row, HEADLINE) is None,
        not skill,
        -first if first is not None else math.inf,
        str(row["model"]),
    )


def rank_rows(rows: Sequence[Row]) -> list[tuple[Row, Rank]]:
    """The rows in `order_key`'s order, each with its `Rank`.

    The rank range is the standard, conservative interval-overlap range: of the n models
    with a headline, a model's best rank is 1 + the number whose 95% interval lies wholly
    above its own (their lower bound > its upper bound), its worst rank n - the number whose
    interval lies wholly below (their upper bound < its lower bound). Disjoint intervals give
    exact ranks; intervals that all overlap give every model `1–n`. A headline without an
    interval counts as the interval [value, value]; a model without a headline has no range.
    """
    ordered = sorted(rows, key=order_key)
    bounds: list[tuple[float, float] | None] = []
    for row in ordered:
        value = _number(row, HEADLINE)
        lo, hi = _number(row, f"{HEADLINE}_lo"), _number(row, f"{HEADLINE}_hi")
        bounds.append(
            None if value is None else (value if lo is None else lo, value if hi is None else hi)
        )
    los = sorted(b[0] for b in bounds if b is not None)
    his = sorted(b[1] for b in bounds if b is not None)
    found = []
    for position, (row, bound) in enumerate(zip(ordered, bounds, strict=True), start=1):
        if bound is None:
            found.append((row, Rank(position, None, None)))
            continue
        lo, hi = bound
        above = len(los) - bisect_right(los, hi)
        below = bisect_left(his, lo)
        found.append((row, Rank(position, 1 + above, len(his) - below)))
    return found
