"""The shared ranking: one order for the site and the terminal, and interval-overlap ranges."""

from __future__ import annotations

import pandas as pd
import pytest

from medbench.publish.site.ranking import rank_key
from medbench.score import rank_rows
from medbench.score.summary import summary_lines


def _row(model: str, value: float, lo: float, hi: float) -> dict[str, object]:
    return {
        "model": model,
        "pipeline": "direct",
        "all_variants_kappa": value,
        "all_variants_kappa_lo": lo,
        "all_variants_kappa_hi": hi,
        "mean_kappa": value,
    }


def _ranges(rows: list[dict[str, object]]) -> list[tuple[str, str]]:
    return [(str(row["model"]), rank.text) for row, rank in rank_rows(rows)]


def test_rank_rows_disjoint_intervals_give_exact_ranks() -> None:
    rows = [_row("c", 0.2, 0.15, 0.25), _row("a", 0.8, 0.75, 0.85), _row("b", 0.5, 0.45, 0.55)]
    assert _ranges(rows) == [("a", "1"), ("b", "2"), ("c", "3")]


def test_rank_rows_fully_overlapping_intervals_give_every_model_the_whole_range() -> None:
    rows = [_row(m, 0.5 + d, 0.3, 0.7) for m, d in (("a", 0.0), ("b", 0.01), ("c", -0.01))]
    assert _ranges(rows) == [("b", "1–3"), ("a", "1–3"), ("c", "1–3")]


def test_rank_rows_chained_overlaps_give_ranges_of_the_neighbours_only() -> None:
    # a overlaps b, b overlaps c, a lies wholly above c; d lies below all
    rows = [
        _row("a", 0.8, 0.6, 0.9),
        _row("b", 0.6, 0.45, 0.7),
        _row("c", 0.4, 0.3, 0.5),
        _row("d", 0.1, 0.05, 0.2),
    ]
    found = {row["model"]: (rank.best, rank.worst) for row, rank in rank_rows(rows)}
    assert found == {"a": (1, 2), "b": (1, 3), "c": (2, 3), "d": (4, 4)}


def test_rank_rows_model_without_headline_comes_last_without_a_range() -> None:
    rows = [{"model": "x", "pipeline": "direct"}, _row("a", 0.5, 0.4, 0.6)]
    found = [(row["model"], rank.position, rank.best, rank.text) for row, rank in rank_rows(rows)]
    assert found == [("a", 1, 1, "1"), ("x", 2, None, "2")]


@pytest.mark.parametrize("skill", [True, False])
def test_site_and_terminal_order_tied_estimates_alike(skill: bool) -> None:
    lo = 0.1 if skill else -0.1
    rows = [_row(m, 0.3, lo, 0.5) for m in ("m-c", "m-a", "m-b")]
    site = [str(r["model"]) for r in sorted(rows, key=rank_key)]
    lines = summary_lines("q", pd.DataFrame(rows), pd.DataFrame(), set())
    terminal = [line.split()[1] for line in lines[4:7]]
    assert site == terminal == ["m-a", "m-b", "m-c"]
    assert [line.split()[0] for line in lines[4:7]] == ["1–3"] * 3
