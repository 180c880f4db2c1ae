"""Paired comparison of two models on the same images: F1 and fragility differences, McNemar."""

# Paired bootstrap: each resample draws the same images for both models (their answers
# are grouped jointly), so the interval reflects the per-image pairing. With clusters
# (patients) it draws whole clusters, both models' answers on every image of each: a
# paired cluster bootstrap. McNemar's exact test assumes independent images; with clusters
# Obuchowski's (1998) test for correlated proportions replaces it. With few clusters neither
# asymptotic method holds its level: the exact cluster permutation test replaces
# Obuchowski's, and the F1 difference's interval is that of the cluster swap test.

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._bootstrap import Estimate, bootstrap_sums, estimates
from medbench.score.metrics._classification import block_width, f1_all_from, variant_features
from medbench.score.metrics._codes import (
    FeatureArray,
    FloatArray,
    as_answers,
    as_predictions,
    as_truth,
    check_n_boot,
    check_same_images,
)
from medbench.score.metrics._family import agreement_features, disagreement_from
from medbench.score.metrics._swap import SwapTest, swap_test
from medbench.score.metrics._units import Units, as_clusters, group_units

MIN_CLUSTERS_ASYMPTOTIC = 30
"""Fewer clusters than this: Obuchowski's chi-square reference is anticonservative (8% false
positives at 12 clusters, 11% at 5), so the exact cluster permutation test replaces it; the
paired F1 difference's interval is then the cluster swap test's (the bootstrap's excluded 0 in
6.3% of null pairs at 12 clusters)."""


def _f1_units(
    truth: npt.ArrayLike,
    pred_a: npt.ArrayLike,
    pred_b: npt.ArrayLike,
    n_classes: int,
    groups: npt.ArrayLike | None,
) -> tuple[Units, FeatureArray, int]:
    truth_ = as_truth(truth, n_classes)
    a = as_predictions(pred_a, n_classes, name="pred_a")
    b = as_predictions(pred_b, n_classes, name="pred_b")
    check_same_images(len(truth_), len(a), "pred_a")
    check_same_images(len(truth_), len(b), "pred_b")
    clusters = None if groups is None else as_clusters(groups, len(truth_))
    units = group_units(np.column_stack([truth_, a, b]), clusters)
    features = units.pool(variant_features(units.rows[:, 0], units.rows[:, 1:], n_classes))
    return units, features, len(truth_)


def _f1_difference(n_classes: int) -> Callable[[FloatArray], FloatArray]:
    width = block_width(n_classes)

    def difference(sums: FloatArray) -> FloatArray:
        return f1_all_from(sums[..., :width], n_classes) - f1_all_from(sums[..., width:], n_classes)

    return difference


def _few_clusters(units: Units, n_images: int) -> bool:
    """Clustered images in fewer than ``MIN_CLUSTERS_ASYMPTOTIC`` clusters, some of them
    holding several images (singletons are independent images: the bootstrap holds)."""
    return units.members is not None and units.n_units < min(MIN_CLUSTERS_ASYMPTOTIC, n_images)


def paired_f1_difference(
    truth: npt.ArrayLike,
    pred_a: npt.ArrayLike,
    pred_b: npt.ArrayLike,
    n_classes: int,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    groups: npt.ArrayLike | None = None,
) -> Estimate:
    """``f1_all(a) - f1_all(b)`` with a paired percentile bootstrap CI over images.

    With ``groups`` (a cluster label per image) it is a paired cluster bootstrap; with fewer
    than ``MIN_CLUSTERS_ASYMPTOTIC`` clusters, not all single images, the interval is that of
    ``paired_f1_test`` (``n_boot=0``: none either way).
    """
    check_n_boot(n_boot)
    units, features, n_images = _f1_units(truth, pred_a, pred_b, n_classes, groups)
    difference = _f1_difference(n_classes)
    if _few_clusters(units, n_images):
        found = _swap(units, features, difference, seed).estimate
        return found if n_boot else Estimate(found.value, math.nan, math.nan)
    observed, resampled = bootstrap_sums(features, units.sizes, n_boot, np.random.default_rng(seed))
    return estimates(difference(observed[None, :]), difference(resampled)[:, None], units.n_units)[
        0
    ]


def paired_f1_test(
    truth: npt.ArrayLike,
    pred_a: npt.ArrayLike,
    pred_b: npt.ArrayLike,
    n_classes: int,
    groups: npt.ArrayLike,
    *,
    seed: int = 0,
) -> SwapTest:
    """The cluster swap test of ``f1_all(a) - f1_all(b) = 0`` for images in clusters, with
    the interval of differences it does not reject (it excludes 0 exactly when p < 0.05).

    Under the null the two models are exchangeable within each cluster: swapping their
    answers on every image of any set of clusters is as likely as the observed data, so p is
    the share of the ``2**C`` swaps (``SWAPS`` seeded random ones beyond
    ``EXACT_SWAP_CLUSTERS`` clusters, the observed one added) whose ``|difference|`` reaches
    the observed one. The interval is the difference plus or minus the largest value that at
    least 5% of those ``|difference|`` reach: exact under the null hypothesis, approximate
    where the models differ.
    """
    units, features, _ = _f1_units(truth, pred_a, pred_b, n_classes, groups)
    return _swap(units, features, _f1_difference(n_classes), seed)


def _swap(
    units: Units,
    features: FeatureArray,
    difference: Callable[[FloatArray], FloatArray],
    seed: int,
) -> SwapTest:
    per_cluster = np.repeat(features.astype(np.float64), units.sizes, axis=0)
    return swap_test(per_cluster, difference, np.random.default_rng(seed))


def paired_disagreement_difference(
    answers_a: npt.ArrayLike,
    answers_b: npt.ArrayLike,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    groups: npt.ArrayLike | None = None,
) -> Estimate:
    """``disagreement(a) - disagreement(b)`` (the fragility difference), paired bootstrap CI.

    Both matrices have one row per image, in the same order; their variant counts may
    differ. With ``groups`` (a cluster label per image) it is a paired cluster bootstrap.
    """
    a = as_answers(answers_a, name="answers_a")
    b = as_answers(answers_b, name="answers_b")
    check_same_images(len(a), len(b), "answers_b", "answers_a")
    check_n_boot(n_boot)
    clusters = None if groups is None else as_clusters(groups, len(a))
    units = group_units(np.hstack([a, b]), clusters)
    rows = units.rows
    n_a, n_b = a.shape[1], b.shape[1]
    features_a = agreement_features(rows[:, :n_a])
    features = units.pool(np.hstack([features_a, agreement_features(rows[:, n_a:])]))
    observed, resampled = bootstrap_sums(features, units.sizes, n_boot, np.random.default_rng(seed))
    split = features_a.shape[1]

    def difference(sums: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return disagreement_from(sums[..., :split], n_a) - disagreement_from(sums[..., split:], n_b)

    return estimates(difference(observed[None, :]), difference(resampled)[:, None], units.n_units)[
        0
    ]


class McNemarResult(NamedTuple):
    """A paired test of correctness: McNemar's exact test, or a clustered one."""

    statistic: float
    """``min(n01, n10)`` for the exact test; Obuchowski's ``X2``; for the cluster permutation
    test ``sum_c (x_c - y_c)``, the difference in images right."""
    p_value: float
    """Two-sided p-value (exact binomial of ``n01`` vs ``n10`` under p = 1/2 for McNemar's)."""
    n01: int
    """Images model a got wrong and model b right."""
    n10: int
    """Images model a got right and model b wrong."""
    method: str = "mcnemar_exact"
    """`mcnemar_exact`, `obuchowski` or `cluster_permutation`: which test gave ``p_value``."""


PERMUTATIONS = 9999
"""Random sign flips of the cluster permutation test beyond ``2**C`` (below: all of them)."""


def _correctness(
    correct_a: npt.ArrayLike, correct_b: npt.ArrayLike
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"correct_a and correct_b must be vectors of one length, got {a.shape} and {b.shape}"
        )
    if a.dtype != np.bool_ or b.dtype != np.bool_:
        raise ValueError(f"correct_a and correct_b must be boolean, got {a.dtype} and {b.dtype}")
    return a, b


def mcnemar_exact(correct_a: npt.ArrayLike, correct_b: npt.ArrayLike) -> McNemarResult:
    """McNemar's exact test of whether two models on the same images differ in accuracy.

    Only discordant images count: under the null each is equally likely to favour
    either model, so ``n01 ~ Binomial(n01 + n10, 1/2)``; p is 1 when there are none.
    Computed with statsmodels' ``mcnemar(table, exact=True)``.
    """
    from statsmodels.stats.contingency_tables import mcnemar  # type: ignore[import-untyped, unused-ignore]

    a, b = _correctness(correct_a, correct_b)
    n11 = int((a & b).sum())
    n10 = int((a & ~b).sum())
    n01 = int((~a & b).sum())
    n00 = int((~a & ~b).sum())
    result = mcnemar(np.array([[n11, n10], [n01, n00]]), exact=True)
    return McNemarResult(
        statistic=float(result.statistic), p_value=float(result.pvalue), n01=n01, n10=n10
    )


def mcnemar_clustered(
    correct_a: npt.ArrayLike, correct_b: npt.ArrayLike, groups: npt.ArrayLike, *, seed: int = 0
) -> McNemarResult:
    """A test that two models' accuracies differ, for images in C clusters (patients).

    With at least ``MIN_CLUSTERS_ASYMPTOTIC`` clusters and a positive variance, Obuchowski's
    (1998) test: with ``x_c``, ``y_c`` the images of cluster c (of ``n_c``, out of N) that
    models a and b got right, ``p_a = sum_c x_c / N``, ``p_b = sum_c y_c / N``,
    ``d_c = (x_c - y_c) - n_c (p_a - p_b)`` and ``var = C / (C - 1) * sum_c d_c**2 / N**2``,
    ``X2 = (p_a - p_b)**2 / var`` is referred to chi-square with 1 degree of freedom.

    Otherwise (few clusters, or a zero variance estimate, where the chi-square reference
    would give p = 0) the cluster permutation test: under the null the two models' results
    are exchangeable within each cluster, so each ``x_c - y_c`` is as likely to have either
    sign; p is the share of the ``2**C`` sign flips (or ``PERMUTATIONS`` random ones, seeded)
    whose ``|sum_c +-(x_c - y_c)|`` reaches the observed one (scipy's ``permutation_test``
    with ``permutation_type="samples"``). p is 1 when no image differs.
    """
    a, b = _correctness(correct_a, correct_b)
    clusters = as_clusters(groups, len(a))
    n_clusters = int(clusters.max()) + 1 if len(clusters) else 0
    x = np.bincount(clusters, weights=a, minlength=n_clusters)
    y = np.bincount(clusters, weights=b, minlength=n_clusters)
    counts = {"n01": int((~a & b).sum()), "n10": int((a & ~b).sum())}
    if not (x != y).any():
        return McNemarResult(0.0, 1.0, **counts, method="cluster_permutation")
    if n_clusters >= MIN_CLUSTERS_ASYMPTOTIC:
        found = _obuchowski(x, y, np.bincount(clusters, minlength=n_clusters), n_clusters)
        if found is not None:
            statistic, p_value = found
            return McNemarResult(statistic, p_value, **counts, method="obuchowski")
    from scipy.stats import permutation_test

    def total(u: npt.NDArray[np.float64], v: npt.NDArray[np.float64], axis: int) -> Any:
        return np.sum(u - v, axis=axis)

    result = permutation_test(
        (x, y),
        total,
        permutation_type="samples",
        vectorized=True,
        n_resamples=PERMUTATIONS,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return McNemarResult(
        float(result.statistic),
        min(1.0, float(result.pvalue)),
        **counts,
        method="cluster_permutation",
    )


def _obuchowski(
    x: npt.NDArray[Any], y: npt.NDArray[Any], sizes: npt.NDArray[Any], c: int
) -> tuple[float, float] | None:
    """Obuchowski's ``(X2, p)``, or None when its variance estimate is 0."""
    from scipy.stats import chi2

    n = float(sizes.sum())
    difference = (x.sum() - y.sum()) / n
    residual = (x - y) - sizes * difference
    variance = c / (c - 1) * float((residual**2).sum()) / n**2
    if variance <= 0:
        return None
    statistic = difference**2 / variance
    return float(statistic), float(chi2.sf(statistic, 1))


def holm(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Holm's step-down adjustment of a family of p-values: the i-th smallest of m becomes
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``.

    NaN entries (no test) are left out of the family and stay NaN. The values are statsmodels'
    ``multipletests(method="holm")`` (tested), written out because that function runs a full
    garbage collection on every call (0.15 s, once per pair, family and variant).
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    m = len(order)
    steps = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted
