"""The terminal summary of a scored suite: one row per model, readable at 80 columns.

Rows are ranked as the site ranks them (`medbench.score.ranks`): by the headline score
(all-variants kappa), the models whose interval lies above 0 first (the others show no
fragility), each rank a range where 95% intervals overlap; model ids are never
cut: an id too long for its column gets a line of its own, its numbers on the next. Described
pipelines follow their model as indented rungs, never as ranked models of their own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from medbench.score.ranks import rank_rows, skilled

WIDTH = 80
"""Columns the summary fits in."""
_HEADS = ("all-var. kappa", "fragil", "mean F1", "refused", "unparsed")
_WIDTHS = (16, 6, 7, 7, 8)
_RANK = 3
"""The rank column's least width (wider where a rank range needs it, the ids' column narrower)."""


def _value(row: dict[str, Any], name: str) -> float | None:
    value = row.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _est(row: dict[str, Any], name: str) -> str:
    value, lo, hi = (_value(row, n) for n in (name, f"{name}_lo", f"{name}_hi"))
    if value is None:
        return "-"
    if lo is None or hi is None:
        return _num(value)
    return f"{value:.2f} [{lo:.2f}-{hi:.2f}]"


def _rates(scores: pd.DataFrame, model: str, pipeline: str) -> tuple[float | None, float | None]:
    """Mean refusal and unparseable rates over the model's scored variant rows."""
    if scores.empty:
        return None, None
    mine = scores[(scores["model"] == model) & (scores["pipeline"] == pipeline)]
    found = []
    for name in ("refusal_rate", "unparseable_rate"):
        values = mine[name].dropna() if name in mine else pd.Series(dtype=float)
        found.append(float(values.mean()) if len(values) else None)
    return found[0], found[1]


def _shows_fragility(row: dict[str, Any]) -> bool:
    """No fragility for a model whose headline shows no skill (none measured: shown)."""
    return _value(row, "all_variants_kappa") is None or skilled(row)


def _numbers(row: dict[str, Any], scores: pd.DataFrame) -> list[str]:
    refused, unparsed = _rates(scores, str(row["model"]), str(row["pipeline"]))
    return [
        _est(row, "all_variants_kappa"),
        _num(_value(row, "fragility_index") if _shows_fragility(row) else None),
        _num(_value(row, "mean_f1_all")),
        _num(refused),
        _num(unparsed),
    ]


def reliance_lines(models: pd.DataFrame) -> list[str]:
    """A heading and one line per model measured without its image (direct pipeline): its
    visual reliance (the share of answers that change with no image, and with a blank one,
    95% CI) and its F1 without the image; numbers on a line of their own where an id is too
    long. None where no model was measured so."""
    names = ("visual_reliance", "visual_reliance_blank")
    if models.empty or not any(n in models.columns for n in names):
        return []
    lines = []
    rows = [{str(k): v for k, v in r.items()} for r in models.to_dict("records")]
    for row in sorted(rows, key=lambda r: str(r["model"])):
        parts = [
            f"{what} {_est(row, name)}"
            for name, what in zip(names, ("no image", "blank"), strict=True)
            if _value(row, name) is not None
        ]
        if row.get("pipeline") != "direct" or not parts:
            continue
        if _value(row, "mean_no_image_f1") is not None:
            parts.append(f"F1 {_num(_value(row, 'mean_no_image_f1'))}")
        numbers, head = ", ".join(parts), f"  {row['model']}:"
        if len(head) + 1 + len(numbers) <= WIDTH:
            lines.append(f"{head} {numbers}")
        else:
            lines += [head, f"    {numbers}"]
    if not lines:
        return []
    return ["visual reliance: answers changed with no image / a blank image; F1 no image", *lines]


def robustness_lines(severity_models: pd.DataFrame, quadrant_models: pd.DataFrame) -> list[str]:
    """A heading and one line per model (direct pipeline) with image quadrants or severity
    curves: its `dangerous` share (images answered the same under every wording and without
    the image, 95% CI) and its mean rAUC (95% CI); numbers on a line of their own where an id
    is too long. None where neither was measured."""
    found: dict[str, list[str]] = {}
    for frame, name, what in (
        (quadrant_models, "dangerous", "dangerous"),
        (severity_models, "rauc", "rAUC"),
    ):
        if frame.empty or name not in frame.columns:
            continue
        for record in frame.to_dict("records"):
            row = {str(k): v for k, v in record.items()}
            if row.get("pipeline") == "direct" and _value(row, name) is not None:
                found.setdefault(str(row["model"]), []).append(f"{what} {_est(row, name)}")
    lines = []
    for model in sorted(found):
        numbers, head = ", ".join(found[model]), f"  {model}:"
        if len(head) + 1 + len(numbers) <= WIDTH:
            lines.append(f"{head} {numbers}")
        else:
            lines += [head, f"    {numbers}"]
    if not lines:
        return []
    return [
        "image robustness: dangerous = share of images answered alike under every",
        "wording and without the image; rAUC = F1 under graded perturbations / clean F1",
        *lines,
    ]


def _line(rank: str, name: str, cells: list[str], widths: tuple[int, int]) -> str:
    numbers = " ".join(c.rjust(w) for c, w in zip(cells, _WIDTHS, strict=True))
    return f"{rank:>{widths[0]}} {name:<{widths[1]}} {numbers}".rstrip()


def summary_lines(
    suite: str, models: pd.DataFrame, scores: pd.DataFrame, test_models: set[str]
) -> list[str]:
    """The summary's lines: a title, a header, one row per model ranked by the headline
    score (its pipelines beneath it), and a legend; none wider than `WIDTH`."""
    rows: list[dict[str, Any]] = (
        []
        if models.empty
        else [{str(k): v for k, v in r.items()} for r in models.to_dict("records")]
    )
    ranked = rank_rows([r for r in rows if r.get("pipeline") == "direct"])
    rank_width = max([_RANK, *(len(rank.text) for _, rank in ranked)])
    name_width = WIDTH - rank_width - 2 - sum(_WIDTHS) - (len(_WIDTHS) - 1)
    widths = (rank_width, name_width)
    lines = [
        f"suite {suite}: ranked by all-variants kappa (chance-corrected; an image",
        "counts only if every variant answers it right), 95% CI; fragility =",
        "disagreement, shown only where the kappa interval lies above 0",
        _line("#", "model", list(_HEADS), widths),
    ]
    direct = [row for row, _ in ranked]
    for row, rank in ranked:
        model = str(row["model"])
        name = model + (" *" if model in test_models else "")
        entries = [(rank.text, name, row)]
        rungs = sorted(
            (r for r in rows if r.get("model") == model and r.get("pipeline") != "direct"),
            key=lambda r: str(r["pipeline"]),
        )
        entries += [("", f"  + {r['pipeline']}", r) for r in rungs]
        for shown_rank, shown, data in entries:
            cells = _numbers(data, scores)
            if len(shown) <= name_width:
                lines.append(_line(shown_rank, shown, cells, widths))
            else:
                lines.append(f"{shown_rank:>{rank_width}} {shown}")
                lines.append(_line("", "", cells, widths))
    if any(rank.best != rank.worst for _, rank in ranked):
        lines.append("# a–b: a rank range, where the models' 95% kappa intervals overlap")
    if any(r.get("model") in test_models for r in direct):
        lines.append("* test model: random or demonstration weights, not a real result")
    if len(direct) < len(rows):
        lines.append("+ a described pipeline: the model describes, a text model diagnoses")
    return lines + reliance_lines(models)


LADDER_RUNGS = (
    ("chance", ("chance_f1",)),
    ("no image", ("no_image_f1",)),
    ("answers", ("direct_f1_mean",)),
    ("likelihood", ("likelihood_f1_mean",)),
    ("described", ("described_f1_mean",)),
    ("probe", ("probe_vision_f1", "probe_projected_f1")),
    ("pixels", ("pixel_f1",)),
)
"""The ladder's rungs in order, as the terminal names them, and the columns each reads (the
best of them: the better of the two probes)."""


def ladder_lines(
    ladder: pd.DataFrame, truncated: Mapping[tuple[str, str], tuple[int, int]] | None = None
) -> list[str]:
    """Per probed model and task: every rung measured, in ladder order, and the reading. A rung
    the suite did not measure (no `no_image` variant, no likelihood or describe stage) is left
    out of the line. `truncated`: per (model, task), the descriptions cut at their token budget
    and all of them; the described rung says how many were cut."""
    if ladder.empty:
        return []
    probed = ladder[
        ladder.reindex(columns=["probe_vision_f1", "probe_projected_f1"]).notna().any(axis=1)
    ]
    lines = []
    for record in probed.to_dict("records"):
        row = {str(k): v for k, v in record.items()}
        rungs = []
        for name, keys in LADDER_RUNGS:
            values = [v for k in keys if (v := _value(row, k)) is not None]
            if values:
                rungs.append(f"{name} {max(values):.2f}")
                cut, total = (truncated or {}).get((str(row["model"]), str(row["task"])), (0, 0))
                if name == "described" and cut:
                    rungs[-1] += f" ({cut} of {total} descriptions truncated)"
        lines.append(f"  {row['model']} / {row['task']}: {', '.join(rungs)}: {row['reading']}")
    return lines
