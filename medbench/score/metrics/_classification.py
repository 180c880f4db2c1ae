"""Classification metrics of one prompt variant: F1, accuracy, refusal rates and chance."""

# Each metric is a formula on column sums of per-image features, one block of 4K + 2
# columns per prediction vector, so the bootstrap can reuse it on resampled sums:
# S (one-hot truth), TP (one-hot truth where right), P (one-hot prediction, answered
# only), A (one-hot truth where answered), R (refused), U (unparseable).

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._bootstrap import (
    Estimate,
    Summary,
    bootstrap_summary,
    divide,
    feature_sums,
)
from medbench.score.metrics._codes import (
    REFUSAL,
    UNPARSEABLE,
    FeatureArray,
    FloatArray,
    IntArray,
    as_answers_for,
    as_predictions,
    as_truth,
    check_n_boot,
    check_same_images,
)
from medbench.score.metrics._units import as_clusters, group_units


def block_width(n_classes: int) -> int:
    """Number of feature columns per prediction vector."""
    return 4 * n_classes + 2


def class_features(truth: IntArray, pred: IntArray, n_classes: int) -> FeatureArray:
    """Per-image features (N, 4K+2) of one prediction vector: S, TP, P, A, R, U."""
    classes = np.arange(n_classes)
    is_true = truth[:, None] == classes
    is_pred = pred[:, None] == classes
    answered = (pred >= 0)[:, None]
    return np.hstack(
        [
            is_true,
            is_true & is_pred,
            is_pred,
            is_true & answered,
            (pred == REFUSAL)[:, None],
            (pred == UNPARSEABLE)[:, None],
        ]
    ).astype(np.float32)


def _split(sums: FloatArray, k: int) -> tuple[FloatArray, ...]:
    return (
        sums[..., 0:k],
        sums[..., k : 2 * k],
        sums[..., 2 * k : 3 * k],
        sums[..., 3 * k : 4 * k],
        sums[..., 4 * k],
        sums[..., 4 * k + 1],
    )


def f1_all_from(sums: FloatArray, n_classes: int) -> FloatArray:
    """``mean_k 2 TP_k / (S_k + P_k)``, a class term 0 when ``S_k + P_k = 0``."""
    support, tp, predicted, _, _, _ = _split(sums, n_classes)
    f1 = divide(2.0 * tp, support + predicted, 0.0)
    return np.asarray(f1.mean(axis=-1), dtype=np.float64)


def kappa_from(sums: FloatArray, n_classes: int) -> FloatArray:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` of predictions against truth, NaN if ``p_e = 1``.

    ``p_o = sum_k TP_k / N``, ``p_e = sum_k S_k P_k / N**2``: a refusal or unparseable
    answer is a category truth never takes, so it adds to neither (scikit-learn's
    ``cohen_kappa_score`` with those codes as labels gives the same value).
    """
    support, tp, predicted, _, _, _ = _split(sums, n_classes)
    n = support.sum(axis=-1)
    observed = divide(tp.sum(axis=-1), n, np.nan)
    expected = divide((support * predicted).sum(axis=-1), n * n, np.nan)
    return divide(observed - expected, 1.0 - expected, np.nan)


def f1_answered_from(sums: FloatArray, n_classes: int) -> FloatArray:
    """``mean_k 2 TP_k / (A_k + P_k)`` over answered images, NaN when none is answered."""
    _, tp, predicted, answered, _, _ = _split(sums, n_classes)
    f1 = divide(2.0 * tp, answered + predicted, 0.0).mean(axis=-1)
    return np.where(answered.sum(axis=-1) > 0, f1, np.nan)


def accuracy_from(sums: FloatArray, n_classes: int) -> FloatArray:
    """``sum_k TP_k / N``."""
    support, tp, _, _, _, _ = _split(sums, n_classes)
    return divide(tp.sum(axis=-1), support.sum(axis=-1), np.nan)


def balanced_accuracy_from(sums: FloatArray, n_classes: int) -> FloatArray:
    """``mean over {k: S_k > 0} of TP_k / S_k``."""
    support, tp, _, _, _, _ = _split(sums, n_classes)
    present = support > 0
    recall_sum = divide(tp, support, 0.0).sum(axis=-1)
    return divide(recall_sum, present.sum(axis=-1).astype(np.float64), np.nan)


def refusal_rate_from(sums: FloatArray, n_classes: int) -> FloatArray:
    """``R / N``."""
    support, _, _, _, refused, _ = _split(sums, n_classes)
    return divide(refused, support.sum(axis=-1), np.nan)


def unparseable_rate_from(sums: FloatArray, n_classes: int) -> FloatArray:
    """``U / N``."""
    support, _, _, _, _, unparsed = _split(sums, n_classes)
    return divide(unparsed, support.sum(axis=-1), np.nan)


def variant_features(
    truth: IntArray, answers: IntArray, n_classes: int, lead: FeatureArray | None = None
) -> FeatureArray:
    """Per-image classification features of every variant column, side by side.

    ``lead`` columns, when given, come first; filling one array in place keeps the
    peak memory at one copy of the features.
    """
    lead_ = np.empty((len(truth), 0), dtype=np.float32) if lead is None else lead
    width = block_width(n_classes)
    start = lead_.shape[1]
    features = np.empty((len(truth), start + width * answers.shape[1]), dtype=np.float32)
    features[:, :start] = lead_
    for v in range(answers.shape[1]):
        block = slice(start + v * width, start + (v + 1) * width)
        features[:, block] = class_features(truth, answers[:, v], n_classes)
    return features


def variant_f1_from(sums: FloatArray, n_classes: int, n_variants: int) -> FloatArray:
    """``f1_all`` of each variant (..., V) from side-by-side feature sums."""
    width = block_width(n_classes)
    return np.stack(
        [f1_all_from(sums[..., v * width : (v + 1) * width], n_classes) for v in range(n_variants)],
        axis=-1,
    )


def _observed(truth: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> FloatArray:
    truth_ = as_truth(truth, n_classes)
    pred_ = as_predictions(pred, n_classes)
    check_same_images(len(truth_), len(pred_), "pred")
    return feature_sums(class_features(truth_, pred_, n_classes))


def f1_all(truth: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> float:
    """Macro-F1 over the K classes counting refusal and unparseable as wrong answers.

    ``F1_all = (1/K) sum_k 2 TP_k / (2 TP_k + FP_k + FN_k)`` where a refusal or an
    unparseable answer adds to ``FN`` of the true class only; a class with
    ``TP + FP + FN = 0`` scores 0 (scikit-learn's ``zero_division=0``).
    """
    return float(f1_all_from(_observed(truth, pred, n_classes), n_classes))


def f1_answered(truth: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> float:
    """Macro-F1 over the K classes on the answered images only; NaN when none is answered.

    The ``F1_all`` formula restricted to images whose prediction is a class index.
    """
    return float(f1_answered_from(_observed(truth, pred, n_classes), n_classes))


def accuracy(truth: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> float:
    """Share of images predicted right: ``(1/N) sum_i [pred_i = truth_i]``."""
    return float(accuracy_from(_observed(truth, pred, n_classes), n_classes))


def kappa(truth: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> float:
    """Cohen's kappa of the predictions against truth, refusal and unparseable as categories.

    ``(p_o - p_e) / (1 - p_e)``, ``p_o`` the accuracy and ``p_e = sum_k p_k q_k`` with
    ``p_k`` the share of images of class k and ``q_k`` the share predicted k; NaN when
    ``p_e = 1``. A constant or random guesser scores about 0 whatever the class balance.
    """
    return float(kappa_from(_observed(truth, pred, n_classes), n_classes))


def balanced_accuracy(truth: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> float:
    """Mean recall over the classes present in truth: ``mean_{k: n_k > 0} TP_k / n_k``.

    A refusal or unparseable answer counts as wrong.
    """
    return float(balanced_accuracy_from(_observed(truth, pred, n_classes), n_classes))


def refusal_rate(truth: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> float:
    """Share of images refused: ``(1/N) sum_i [pred_i = REFUSAL]``."""
    return float(refusal_rate_from(_observed(truth, pred, n_classes), n_classes))


def unparseable_rate(truth: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int) -> float:
    """Share of images with an unparseable answer: ``(1/N) sum_i [pred_i = UNPARSEABLE]``."""
    return float(unparseable_rate_from(_observed(truth, pred, n_classes), n_classes))


def chance_f1(class_counts: npt.ArrayLike) -> float:
    """Expected ``f1_all`` of a guesser that picks one of the K classes uniformly at random.

    With prevalences ``p_k = n_k / N``, for large N the guesser's expected counts are
    ``TP_k = N p_k / K``, ``TP_k + FN_k = N p_k`` and ``TP_k + FP_k = N / K``, hence
    ``chance_f1 = (1/K) sum_k 2 p_k / (K p_k + 1)``: ``1/K`` for balanced classes, and 0
    for a class absent from truth, as in ``f1_all``.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"class_counts must be a non-empty vector, got shape {counts.shape}")
    if (counts < 0).any() or counts.sum() <= 0:
        raise ValueError(f"class_counts must be non-negative with a positive sum, got {counts}")
    k = counts.size
    p = counts / counts.sum()
    return float(np.mean(2.0 * p / (k * p + 1.0)))


@dataclass(frozen=True)
class VariantScores:
    """Metrics of one (model, task, prompt variant) over its images, with 95% CIs."""

    n: int
    """Number of images."""
    n_answered: int
    """Number of images answered with a class (neither refused nor unparseable)."""
    f1_all: Estimate
    """Macro-F1 with refusal and unparseable counted as wrong."""
    f1_answered: Estimate
    """Macro-F1 over answered images (NaN when none)."""
    accuracy: Estimate
    """Share of images predicted right."""
    balanced_accuracy: Estimate
    """Mean recall over the classes present in truth."""
    refusal_rate: Estimate
    """Share of images refused."""
    unparseable_rate: Estimate
    """Share of images with an unparseable answer."""
    kappa: Estimate
    """Cohen's kappa against truth, refusal and unparseable as categories (NaN if undefined)."""


def score_variant(
    truth: npt.ArrayLike,
    pred: npt.ArrayLike,
    n_classes: int,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    groups: npt.ArrayLike | None = None,
) -> VariantScores:
    """All metrics of one prediction vector, each with a percentile bootstrap CI over images.

    The ``n_boot`` resamples (drawn from ``np.random.default_rng(seed)``) are shared by
    all metrics; resamples where a metric is undefined (``f1_answered`` with no
    answered image) are left out of its interval. With ``groups`` (a cluster label per
    image, e.g. the patient) the resamples draw whole clusters: a cluster bootstrap.
    """
    truth_ = as_truth(truth, n_classes)
    pred_ = as_predictions(pred, n_classes)
    check_same_images(len(truth_), len(pred_), "pred")
    check_n_boot(n_boot)
    clusters = None if groups is None else as_clusters(groups, len(truth_))
    units = group_units(np.column_stack([truth_, pred_]), clusters)
    features = units.pool(class_features(units.rows[:, 0], units.rows[:, 1], n_classes))
    found = bootstrap_summary(
        features, units.sizes, _summarise(n_classes, 1), n_boot, np.random.default_rng(seed)
    )
    return _variant_scores(found, 0, len(truth_), int((pred_ >= 0).sum()))


def score_variants(
    truth: npt.ArrayLike,
    answers: npt.ArrayLike,
    n_classes: int,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    groups: npt.ArrayLike | None = None,
) -> tuple[VariantScores, ...]:
    """``score_variant`` of every column of an (N images, V variants) answer matrix at once.

    The values are ``score_variant``'s. One set of image resamples serves all columns,
    so each interval differs from ``score_variant``'s only by Monte Carlo noise. The
    cost is that of one resampling of the N images: far below V ``score_variant`` calls
    for groups of a few hundred images, above them for large N, where one column has
    few distinct (truth, answer) rows and resamples cheaply.
    """
    truth_ = as_truth(truth, n_classes)
    answers_ = as_answers_for(answers, n_classes)
    check_same_images(len(truth_), len(answers_), "answers")
    check_n_boot(n_boot)
    n_variants = answers_.shape[1]
    clusters = None if groups is None else as_clusters(groups, len(truth_))
    units = group_units(np.column_stack([truth_, answers_]), clusters)
    features = units.pool(variant_features(units.rows[:, 0], units.rows[:, 1:], n_classes))
    found = bootstrap_summary(
        features,
        units.sizes,
        _summarise(n_classes, n_variants),
        n_boot,
        np.random.default_rng(seed),
    )
    answered = (answers_ >= 0).sum(axis=0)
    return tuple(
        _variant_scores(found, v, len(truth_), int(answered[v])) for v in range(n_variants)
    )


_METRICS: dict[str, Callable[[FloatArray, int], FloatArray]] = {
    "f1_all": f1_all_from,
    "f1_answered": f1_answered_from,
    "accuracy": accuracy_from,
    "balanced_accuracy": balanced_accuracy_from,
    "refusal_rate": refusal_rate_from,
    "unparseable_rate": unparseable_rate_from,
    "kappa": kappa_from,
}


def _summarise(n_classes: int, n_variants: int) -> Summary:
    """Every metric of each of ``n_variants`` side-by-side feature blocks, as (R, V) arrays."""
    width = block_width(n_classes)

    def summarise(sums: FloatArray) -> dict[str, FloatArray]:
        blocks = [sums[..., v * width : (v + 1) * width] for v in range(n_variants)]
        return {
            name: np.stack([metric(block, n_classes) for block in blocks], axis=-1)
            for name, metric in _METRICS.items()
        }

    return summarise


def _variant_scores(
    found: dict[str, list[Estimate]], variant: int, n: int, n_answered: int
) -> VariantScores:
    return VariantScores(
        n=n,
        n_answered=n_answered,
        f1_all=found["f1_all"][variant],
        f1_answered=found["f1_answered"][variant],
        accuracy=found["accuracy"][variant],
        balanced_accuracy=found["balanced_accuracy"][variant],
        refusal_rate=found["refusal_rate"][variant],
        unparseable_rate=found["unparseable_rate"][variant],
        kappa=found["kappa"][variant],
    )
