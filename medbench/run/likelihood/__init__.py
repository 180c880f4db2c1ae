"""Likelihood requests: the option-scoring jobs of a suite and computing what the cache lacks."""

from __future__ import annotations

from medbench.run.likelihood.compute import LikelihoodRun, compute_likelihoods
from medbench.run.likelihood.jobs import (
    LIKELIHOOD_FORMAT,
    MODE,
    PIPELINE,
    LikelihoodAnswer,
    can_score,
    likelihood_jobs,
    likelihood_key,
    scored_options,
)

__all__ = [
    "LIKELIHOOD_FORMAT",
    "MODE",
    "PIPELINE",
    "LikelihoodAnswer",
    "LikelihoodRun",
    "can_score",
    "compute_likelihoods",
    "likelihood_jobs",
    "likelihood_key",
    "scored_options",
]
