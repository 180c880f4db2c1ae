"""The linear probe: can a logistic regression tell the classes apart from these features?

Scored by stratified k-fold cross-validation with macro-F1 (grouped folds, by patient or
source image, where the task has groups), against the same probe fitted on shuffled labels. A
model-free reference probes downsampled raw pixels.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from medbench.data import ImageError, load_image

if TYPE_CHECKING:
    from medbench.data import Sample

MAX_FOLDS = 5
PERMUTATIONS = 5
"""Label shufflings averaged into the permutation baseline."""
MAX_ITER = 2000
PIXEL_SIZE = 16


@dataclass(frozen=True)
class ProbeResult:
    """Cross-validated macro-F1 of a linear probe (NaN when a class has fewer than 2 images)."""

    f1: float
    """Mean macro-F1 over the folds."""
    f1_lo: float
    """Lower end of the 95% t-interval over the folds (clipped to [0, 1])."""
    f1_hi: float
    permutation_f1: float
    """The same cross-validation on shuffled labels: what the probe scores without signal."""
    k: int
    """Folds used; 0 when the probe could not run."""
    n: int
    """Images probed (rows with non-finite features are left out)."""
    n_classes: int
    predicted: tuple[str, ...] = ()
    """Per input row, the label predicted by the probe fitted on the other folds ("" for a row
    left out, or when the probe could not run): what the F1 is scored from."""
    fold: tuple[int, ...] = ()
    """Per input row, the fold it was predicted in (-1 where `predicted` is "")."""


def _pipeline(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER, random_state=seed))


def fold_scores(y: NDArray[Any], predicted: NDArray[Any], fold: NDArray[Any]) -> NDArray[Any]:
    """Macro-F1 of each fold's out-of-fold predictions, over every class of `y` (a class absent
    from a fold's test images counts as 0, as scikit-learn's `zero_division=0` has it)."""
    from sklearn.metrics import f1_score

    classes = np.unique(y)
    return np.asarray(
        [
            f1_score(
                y[fold == f], predicted[fold == f], labels=classes, average="macro", zero_division=0
            )
            for f in np.unique(fold)
        ],
        dtype=np.float64,
    )


def summarise(scores: NDArray[Any]) -> tuple[float, float, float]:
    """The mean of the folds' F1 and its 95% t-interval: a probe's `f1`, `f1_lo`, `f1_hi`."""
    lo, hi = _t_interval(scores)
    return float(scores.mean()), lo, hi


def _cross_validate(
    x: NDArray[Any], y: NDArray[Any], k: int, seed: int, groups: NDArray[Any] | None = None
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Each image's out-of-fold prediction and its fold, over k stratified folds (shuffled with
    `seed`); with `groups`, no group has images on both sides of a fold (scikit-learn's
    StratifiedGroupKFold)."""
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    predicted = np.empty(len(y), dtype=object)
    fold = np.full(len(y), -1, dtype=np.int64)
    template = _pipeline(seed)
    splitter = (
        StratifiedKFold(k, shuffle=True, random_state=seed)
        if groups is None
        else StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    )
    for i, (train, test) in enumerate(splitter.split(x, y, groups)):
        if len(np.unique(y[train])) < 2:
            # few patients: folding by patient left a class out of a training set
            raise _Unfoldable
        model = clone(template)
        with warnings.catch_warnings():
            # A probe stopped at the iteration limit still scores its folds fairly.
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x[train], y[train])
        predicted[test] = model.predict(x[test])
        fold[test] = i
    return predicted, fold


class _Unfoldable(Exception):
    """A fold's training set holds one class only (too few patients per class to fold)."""


def _t_interval(scores: NDArray[Any]) -> tuple[float, float]:
    """A 95% t-interval of the mean over folds (folds share training data: a rough interval)."""
    from scipy import stats

    k = len(scores)
    half = float(stats.t.ppf(0.975, k - 1)) * float(np.std(scores, ddof=1)) / math.sqrt(k)
    mean = float(np.mean(scores))
    return max(0.0, mean - half), min(1.0, mean + half)


def probe(
    x: NDArray[Any],
    y: Sequence[str] | NDArray[Any],
    *,
    seed: int = 0,
    folds: int | None = None,
    permutations: int = PERMUTATIONS,
    groups: Sequence[str] | NDArray[Any] | None = None,
) -> ProbeResult:
    """Standardise, then logistic regression, scored by stratified k-fold macro-F1.

    k is `folds` (default 5), at most the smallest class's size; a class with fewer than 2
    images (or a single class) gives NaN scores with k = 0. With `groups` (a patient or source
    image per row) the folds are grouped, so that a probe cannot score by recognising the
    patient, and k is also at most the smallest class's number of groups. Rows with non-finite
    features (images that could not be embedded) are left out. Deterministic for a seed.
    """
    features = np.asarray(x, dtype=np.float64)
    labels = np.asarray(y)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(
            f"expected features of shape (n, dim) and n labels; got {features.shape} "
            f"and {len(labels)} labels"
        )
    keep = np.isfinite(features).all(axis=1)
    features, labels = features[keep], labels[keep]
    clusters = None if groups is None else np.asarray(groups)[keep]
    classes, counts = np.unique(labels, return_counts=True)
    if clusters is not None:  # a class is only as many folds deep as its patients
        counts = np.array([len(np.unique(clusters[labels == c])) for c in classes])
    smallest = int(counts.min()) if len(counts) else 0
    k = min(folds or MAX_FOLDS, smallest)
    nan = float("nan")
    if len(counts) < 2 or k < 2 or features.shape[1] == 0:
        return ProbeResult(nan, nan, nan, nan, 0, len(labels), len(counts))
    try:
        predicted, fold = _cross_validate(features, labels, k, seed, clusters)
    except _Unfoldable:
        return ProbeResult(nan, nan, nan, nan, 0, len(labels), len(counts))
    f1, lo, hi = summarise(fold_scores(labels, predicted, fold))
    rng = np.random.default_rng(seed)
    shuffled = []
    for _ in range(permutations):
        permuted = rng.permutation(labels)
        try:
            folded = fold_scores(permuted, *_cross_validate(features, permuted, k, seed, clusters))
        except _Unfoldable:
            continue  # a shuffle that leaves a class out of a fold is not a null draw to count
        shuffled.append(float(folded.mean()))
    permutation_f1 = float(np.mean(shuffled)) if shuffled else float("nan")
    kept = iter(zip(predicted.tolist(), fold.tolist(), strict=True))
    each = [next(kept) if ok else ("", -1) for ok in np.asarray(keep, dtype=bool).reshape(-1)]
    return ProbeResult(
        f1,
        lo,
        hi,
        permutation_f1,
        k,
        len(labels),
        len(counts),
        tuple(str(p) for p, _ in each),
        tuple(int(f) for _, f in each),
    )


def sample_groups(samples: Sequence[Sample]) -> list[str] | None:
    """Each sample's cluster (patient, source image) for grouped probe folds; None when the
    task declares no groups (a sample without one is a cluster of its own)."""
    if all(s.group is None for s in samples):
        return None
    return [f"group:{s.group}" if s.group is not None else f"sample:{s.id}" for s in samples]


def pixel_features(paths: Sequence[Path], size: int = PIXEL_SIZE) -> NDArray[Any]:
    """Each image as RGB downsampled to size x size, flattened to [0, 1] floats (NaN rows for
    images that cannot be decoded): the model-free reference the probes are compared with."""
    out = np.full((len(paths), size * size * 3), np.nan, dtype=np.float32)
    for i, path in enumerate(paths):
        try:
            image = load_image(path)
        except ImageError:
            continue
        small = image.resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
    return out


__all__ = [
    "MAX_FOLDS",
    "PERMUTATIONS",
    "PIXEL_SIZE",
    "ProbeResult",
    "pixel_features",
    "probe",
    "fold_scores",
    "sample_groups",
    "summarise",
]
