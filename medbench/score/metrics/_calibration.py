"""Calibration of probabilities over options: ECE, Brier score, risk-coverage and its area.

Inputs are `probs`, an (N, K) array of probabilities over the K offered options (rows sum to
1), and `truth`, the index of the right option per item. Conventions:

- The prediction is the most probable option (ties: the first); its probability is the
  confidence.
- ECE (top-label): confidences fall into `bins` equal-width bins, right-closed,
  (0, 1/B], (1/B, 2/B], ... (a confidence of exactly 0 goes into the first bin); ECE is the
  sum over non-empty bins of (n_b / N) |accuracy_b - mean confidence_b|.
- Brier: the mean over items of sum_k (p_k - y_k)^2, as scikit-learn's multiclass
  `brier_score_loss`; for K = 2, half of it (the binary Brier score of either option's
  probability), which is what scikit-learn reports for two classes.
- Risk-coverage (selective prediction): answer only the items whose confidence is at least a
  threshold; each distinct confidence is a threshold, from the highest down. Coverage is the
  share answered, risk the error rate among them. The area (AURC) is the step integral of risk
  over coverage, which without ties is (1/N) sum_k risk(top k).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

ECE_BINS = 10


def _checked(probs: npt.ArrayLike, truth: npt.ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(truth, dtype=np.int64)
    if p.ndim != 2 or t.shape != (p.shape[0],):
        raise ValueError(f"expected probs (N, K) and truth (N,), got {p.shape} and {t.shape}")
    if len(t) and (t.min() < 0 or t.max() >= p.shape[1]):
        raise ValueError(f"truth indices must lie in 0..{p.shape[1] - 1}")
    return p, t


def confidence(probs: npt.ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    """The predicted option (argmax, first on ties) and its probability, per item."""
    p = np.asarray(probs, dtype=np.float64)
    pred = p.argmax(axis=1)
    return pred, p[np.arange(len(p)), pred]


def ece(probs: npt.ArrayLike, truth: npt.ArrayLike, bins: int = ECE_BINS) -> float:
    """Top-label expected calibration error over `bins` equal-width, right-closed bins."""
    p, t = _checked(probs, truth)
    if not len(t):
        return float("nan")
    pred, conf = confidence(p)
    correct = (pred == t).astype(np.float64)
    which = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return float(total)


def brier(probs: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Mean squared distance between the probabilities and the one-hot truth (halved for K=2)."""
    p, t = _checked(probs, truth)
    if not len(t):
        return float("nan")
    onehot = np.zeros_like(p)
    onehot[np.arange(len(t)), t] = 1.0
    score = float(((p - onehot) ** 2).sum(axis=1).mean())
    return score / 2 if p.shape[1] == 2 else score


@dataclass(frozen=True)
class RiskCoverage:
    """The risk-coverage curve (one point per distinct confidence, highest first) and its area."""

    thresholds: tuple[float, ...]
    coverage: tuple[float, ...]
    risk: tuple[float, ...]
    aurc: float


def risk_coverage(probs: npt.ArrayLike, truth: npt.ArrayLike) -> RiskCoverage:
    """Selective prediction: at each threshold, the share answered and their error rate."""
    p, t = _checked(probs, truth)
    if not len(t):
        return RiskCoverage((), (), (), float("nan"))
    pred, conf = confidence(p)
    wrong = (pred != t).astype(np.float64)
    thresholds = np.unique(conf)[::-1]
    coverage, risk = [], []
    for threshold in thresholds:
        answered = conf >= threshold
        coverage.append(float(answered.mean()))
        risk.append(float(wrong[answered].mean()))
    steps = np.diff(np.concatenate([[0.0], coverage]))
    return RiskCoverage(
        tuple(float(x) for x in thresholds),
        tuple(coverage),
        tuple(risk),
        float((steps * np.asarray(risk)).sum()),
    )


def softmax(scores: npt.ArrayLike) -> NDArray[Any]:
    """Row-wise softmax of log-likelihoods: probabilities over the offered options."""
    s = np.asarray(scores, dtype=np.float64)
    shifted = np.exp(s - s.max(axis=1, keepdims=True))
    out: NDArray[Any] = shifted / shifted.sum(axis=1, keepdims=True)
    return out


__all__ = ["ECE_BINS", "RiskCoverage", "brier", "confidence", "ece", "risk_coverage", "softmax"]
