"""Option log-likelihoods: which offered option does the model itself find most likely?

A model that refuses, rambles or misformats under one wording may still put most probability
on the right option. This package plans the likelihood jobs (`jobs`), computes the missing ones
with the hf backend (`compute`), scores them like generated answers plus calibration (`score`),
and writes the suite's `likelihood/` results with reliability diagrams (`stage`).
"""

from __future__ import annotations

from medbench.run.likelihood import (
    LIKELIHOOD_FORMAT,
    MODE,
    LikelihoodAnswer,
    LikelihoodRun,
    can_score,
    compute_likelihoods,
    likelihood_jobs,
    likelihood_key,
    scored_options,
)
from medbench.score.likelihood.score import (
    ITEM_COLUMNS,
    NORMALISATIONS,
    answers_frame,
    calibration,
    collect_likelihoods,
)
from medbench.score.likelihood.stage import (
    FOLDER,
    RELIABILITY,
    LikelihoodResult,
    ladder_scores,
    run_likelihood_stage,
    summary_lines,
)

__all__ = [
    "FOLDER",
    "ITEM_COLUMNS",
    "NORMALISATIONS",
    "RELIABILITY",
    "answers_frame",
    "calibration",
    "LIKELIHOOD_FORMAT",
    "MODE",
    "NORMALISATIONS",
    "LikelihoodAnswer",
    "LikelihoodResult",
    "LikelihoodRun",
    "can_score",
    "collect_likelihoods",
    "compute_likelihoods",
    "ladder_scores",
    "likelihood_jobs",
    "likelihood_key",
    "run_likelihood_stage",
    "scored_options",
    "summary_lines",
]
