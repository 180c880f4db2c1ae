"""Worse than chance: a score against the chance distribution at the task's size and balance."""

# The large-N chance reference (`chance_f1`) is a limit; at the few images of a sample the
# f1_all of a uniform random guesser is spread widely around it, so a score is compared with
# that spread: the guesser's answers to the n_j images of class j are Multinomial(n_j, 1/K),
# which gives its TP_k (the k-th count of class k) and P_k (the k-th counts summed), hence
# its f1_all, for many simulated guessers at once.

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._bootstrap import CONFIDENCE, divide

CHANCE_DRAWS = 20_000
"""Simulated guessers per test: a p-value near 0.025 has a Monte Carlo error of about 0.001."""


def chance_f1_draws(
    class_counts: npt.ArrayLike, *, seed: int = 0, n_draws: int = CHANCE_DRAWS
) -> npt.NDArray[np.float64]:
    """The f1_all of ``n_draws`` uniform random guessers on images of these class counts."""
    counts = np.asarray(class_counts, dtype=np.int64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f"class_counts must be non-negative with a positive sum, got {counts}")
    k = counts.size
    rng = np.random.default_rng(seed)
    # answers[d, j, c]: images of class j the d-th guesser answers c
    answers = np.stack([rng.multinomial(n, [1.0 / k] * k, size=n_draws) for n in counts], axis=1)
    tp = np.einsum("djj->dj", answers).astype(np.float64)
    predicted = answers.sum(axis=1).astype(np.float64)
    f1: npt.NDArray[np.float64] = divide(2.0 * tp, counts[None, :] + predicted, 0.0).mean(axis=1)
    return f1


def chance_p_value(
    f1: float, class_counts: npt.ArrayLike, *, seed: int = 0, n_draws: int = CHANCE_DRAWS
) -> float:
    """One-sided p-value that a uniform random guesser scores at most ``f1`` (its f1_all).

    ``(1 + #{draws <= f1}) / (1 + n_draws)`` over simulated guessers at the task's class
    counts; NaN when ``f1`` is NaN.
    """
    if math.isnan(f1):
        return math.nan
    counts = tuple(int(c) for c in np.asarray(class_counts).reshape(-1))
    draws = _sorted_draws(counts, seed, n_draws)
    at_most = int(np.searchsorted(draws, f1 + 1e-12, side="right"))
    return (1 + at_most) / (1 + n_draws)


@functools.lru_cache(maxsize=64)
def _sorted_draws(counts: tuple[int, ...], seed: int, n_draws: int) -> npt.NDArray[np.float64]:
    """Sorted guesser scores, kept: every variant and model of a task shares its counts."""
    return np.sort(chance_f1_draws(counts, seed=seed, n_draws=n_draws))


def worse_than_chance(f1: float, class_counts: npt.ArrayLike, *, seed: int = 0) -> bool:
    """Whether an f1_all is credibly below a random guesser's at this size and balance.

    True when ``chance_p_value`` is below ``(1 - CONFIDENCE) / 2`` (0.025, one-sided); False
    for NaN (no score, no claim).
    """
    p = chance_p_value(f1, class_counts, seed=seed)
    return not math.isnan(p) and p < (1.0 - CONFIDENCE) / 2.0
