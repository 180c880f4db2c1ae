"""The likelihood stage of a suite: compute the missing option likelihoods, score them, and
write `results/<suite>/likelihood/` (items, scores, fragility, calibration, risk-coverage
curves, moves, diagrams)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medbench.run.backends import BackendContext
from medbench.run.likelihood import LikelihoodRun, compute_likelihoods
from medbench.score.answers import ScoringLayout
from medbench.score.likelihood.reliability import Curve, reliability_svg
from medbench.score.likelihood.score import (
    NORMALISATIONS,
    answers_frame,
    calibration,
    collect_scored,
    moves,
    pipeline_name,
    probabilities,
    risk_coverage_curves,
)
from medbench.score.scoring import ScoreTables, score_answers
from medbench.spec import LikelihoodStage

if TYPE_CHECKING:
    from medbench.run import Cache, Plan
    from medbench.spec.loading import SpecSet

FOLDER = "likelihood"
RELIABILITY = "reliability"
"""`likelihood/reliability/<model>/<task>.svg`: the diagrams that publishing copies."""


@dataclass
class LikelihoodResult:
    """What the stage computed and scored."""

    run: LikelihoodRun
    items: pd.DataFrame
    tables: ScoreTables
    """Scored like generated answers, pipelines `likelihood/total` and `likelihood/mean`."""
    calibration: pd.DataFrame
    moves: pd.DataFrame
    answer: str
    """The normalisation of the ladder's likelihood answer."""
    left_out: dict[tuple[str, str], str] = field(default_factory=dict)
    """(model, family) -> why that family is not scored for that model (located)."""


def _csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n", float_format="%.10g")


def run_likelihood_stage(
    specs: SpecSet,
    plan: Plan,
    cache: Cache,
    generated: pd.DataFrame,
    layout: ScoringLayout,
    out: Path,
    context: BackendContext | None,
) -> LikelihoodResult:
    """Compute (with a `context`) and score the plan's option likelihoods; write them into
    `out/likelihood/`. `generated` holds the parsed generated answers (`collect_answers`)."""
    stage = plan.suite.likelihood or LikelihoodStage()
    run = compute_likelihoods(plan, specs, cache, context)
    items, left_out = collect_scored(specs, plan, cache)
    answers = pd.concat([answers_frame(items, norm) for norm in NORMALISATIONS])
    tables = score_answers(answers.reset_index(drop=True), layout)
    calib = pd.concat([calibration(items, norm) for norm in NORMALISATIONS])
    moved = moves(generated, answers)
    folder = out / FOLDER
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _csv(items, folder / "items.csv")
    _csv(tables.scores, folder / "scores.csv")
    _csv(tables.fragility, folder / "fragility.csv")
    _csv(calib, folder / "calibration.csv")
    _csv(moved, folder / "moves.csv")
    curves = pd.concat([risk_coverage_curves(items, norm) for norm in NORMALISATIONS])
    _csv(curves, folder / "risk_coverage.csv")
    _write_diagrams(items, stage.answer, folder / RELIABILITY)
    return LikelihoodResult(run, items, tables, calib, moved, stage.answer, left_out)


def _write_diagrams(items: pd.DataFrame, norm: str, folder: Path) -> None:
    """One reliability diagram per (model, task): a line per family, over all its variants."""
    if items.empty:
        return
    frame = items.assign(_p=probabilities(items, norm))
    for (model, task), group in frame.groupby(["model", "task"], sort=True):
        curves: list[Curve] = []
        for family, part in group.groupby("family", sort=True):
            curves.append(
                (
                    str(family),
                    np.stack(list(part["_p"])),
                    part["truth_option"].to_numpy(dtype=np.int64),
                )
            )
        title = f"{model} on {task}: reliability of option probabilities ({pipeline_name(norm)})"
        path = folder / str(model) / f"{task}.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(reliability_svg(curves, title), encoding="utf-8")


def ladder_scores(result: LikelihoodResult) -> pd.DataFrame:
    """The likelihood rows the ladder reads: the stage's answer normalisation only."""
    scores = result.tables.scores
    if scores.empty:
        return scores
    return scores[scores["pipeline"] == pipeline_name(result.answer)]


def summary_lines(result: LikelihoodResult) -> list[str]:
    """Per model and task: generated f1 beside likelihood f1 (mean over variants), and ECE."""
    lines = result.run.lines() + [f"  {why}" for why in result.left_out.values()]
    scores = result.tables.scores
    if scores.empty:
        return lines
    calib = result.calibration
    name = pipeline_name(result.answer)
    mine = scores[scores["pipeline"] == name]
    for (model, task), group in mine.groupby(["model", "task"], sort=True):
        pooled = calib[
            (calib["model"] == model)
            & (calib["task"] == task)
            & (calib["pipeline"] == name)
            & (calib["variant"] == "*")
        ]
        ece = ", ".join(f"{r['family']} ECE {r['ece']:.2f}" for r in pooled.to_dict("records"))
        lines.append(f"  {model} / {task}: likelihood f1_all {group['f1_all'].mean():.2f}; {ece}")
    return lines


__all__ = [
    "FOLDER",
    "RELIABILITY",
    "LikelihoodResult",
    "ladder_scores",
    "run_likelihood_stage",
    "summary_lines",
]
