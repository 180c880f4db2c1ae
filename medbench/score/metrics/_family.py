"""Fragility of one prompt family: how answers to the same images change across variants."""

# With n_ic the number of variants giving image i the answer code c, image i has
# e_i = sum_c n_ic (n_ic - 1) / 2 agreeing variant pairs out of V (V-1) / 2, so
# disagreement is one minus Fleiss' observed agreement P_bar, and both disagreement
# and kappa are formulas on column sums of per-image features, as the bootstrap needs.

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._bootstrap import (
    Estimate,
    bootstrap_summary,
    divide,
    feature_sums,
)
from medbench.score.metrics._circular import consensus_features
from medbench.score.metrics._classification import (
    f1_all_from,
    kappa_from,
    variant_f1_from,
    variant_features,
)
from medbench.score.metrics._codes import (
    REFUSAL,
    FeatureArray,
    FloatArray,
    IntArray,
    as_answers,
    as_answers_for,
    as_truth,
    check_n_boot,
    check_same_images,
)
from medbench.score.metrics._units import as_clusters, group_units

_ONES, _AGREEING, _FLIPPED, _REFUSAL_FLIPPED, _COUNTS = 0, 1, 2, 3, 4


def agreement_features(answers: IntArray) -> FeatureArray:
    """Per-image features (N, 4 + C): 1, agreeing pairs, flipped, refusal-flipped, counts.

    The last C columns count, per distinct code in ``answers``, the variants giving it.
    """
    codes, inverse = np.unique(answers, return_inverse=True)
    n_images, n_variants = answers.shape
    cells = inverse.reshape(answers.shape) + (np.arange(n_images) * len(codes))[:, None]
    counts = np.bincount(cells.ravel(), minlength=n_images * len(codes))
    counts = counts.reshape(n_images, len(codes))
    agreeing = (counts * (counts - 1) // 2).sum(axis=1)
    refused = answers == REFUSAL
    return np.column_stack(
        [
            np.ones(n_images),
            agreeing,
            agreeing < n_variants * (n_variants - 1) // 2,
            refused.any(axis=1) & ~refused.all(axis=1),
            counts,
        ]
    ).astype(np.float32)


def disagreement_from(sums: FloatArray, n_variants: int) -> FloatArray:
    """``1 - sum_i e_i / (N V (V-1) / 2)``."""
    pairs = n_variants * (n_variants - 1) / 2
    return 1.0 - sums[..., _AGREEING] / (sums[..., _ONES] * pairs)


def flip_rate_from(sums: FloatArray) -> FloatArray:
    """``(1/N) sum_i [answers of image i not all equal]``."""
    return sums[..., _FLIPPED] / sums[..., _ONES]


def refusal_flip_rate_from(sums: FloatArray) -> FloatArray:
    """``(1/N) sum_i [image i refused under some variants and not under others]``."""
    return sums[..., _REFUSAL_FLIPPED] / sums[..., _ONES]


def fleiss_kappa_from(sums: FloatArray, n_variants: int) -> FloatArray:
    """``(P_bar - P_e) / (1 - P_e)``, ``P_e = sum_c p_c^2``; NaN when ``P_e = 1``.

    ``sums`` must end with the code counts: only ``agreement_features`` columns.
    """
    observed = 1.0 - disagreement_from(sums, n_variants)
    shares = sums[..., _COUNTS:] / (sums[..., _ONES, None] * n_variants)
    expected = (shares**2).sum(axis=-1)
    return divide(observed - expected, 1.0 - expected, np.nan)


def sensitivity_features(truth: IntArray, answers: IntArray) -> FeatureArray:
    """Per-image (N, 1): ``c (V - c)``, the variant pairs of which one answers right and one
    not, c being the variants that answer the image right."""
    right: IntArray = (answers == truth[:, None]).sum(axis=1).astype(np.int64)
    features: FeatureArray = (right * (answers.shape[1] - right))[:, None].astype(np.float32)
    return features


def prompt_sensitivity_from(
    differing: FloatArray | np.float64, n_images: FloatArray | np.float64, n_variants: int
) -> FloatArray:
    """``sum_i c_i (V - c_i) / (N V (V-1) / 2)``."""
    return np.asarray(differing / (n_images * n_variants * (n_variants - 1) / 2), np.float64)


def prompt_sensitivity(answers: npt.ArrayLike, truth: npt.ArrayLike, n_classes: int) -> float:
    """ProSA's PromptSensiScore: mean over images of the mean over variant pairs of
    ``|correct(a_iu) - correct(a_iv)|``.

    ``(1/N) sum_i (2 / (V (V-1))) sum_{u<v} |[a_iu = y_i] - [a_iv = y_i]|``. Unlike
    ``disagreement``, which counts any change of answer, it counts only changes of
    correctness: a switch between two wrong answers (or a refusal and a wrong answer) adds
    nothing.
    """
    answers_, truth_ = _family_inputs(answers, truth, n_classes)
    if answers_.shape[1] < 2:
        raise ValueError(f"answers must have at least 2 variant columns, got {answers_.shape[1]}")
    sums = feature_sums(
        np.hstack([np.ones((len(truth_), 1), np.float32), sensitivity_features(truth_, answers_)])
    )
    return float(prompt_sensitivity_from(sums[1], sums[0], answers_.shape[1]))


def disagreement(answers: npt.ArrayLike) -> float:
    """Mean over the ``V (V-1) / 2`` variant pairs of the share of images answered differently.

    ``(2 / (V (V-1))) sum_{u<v} (1/N) sum_i [a_iu != a_iv]``: the probability that two
    distinct variants, drawn at random, give an image different answers.
    """
    answers_ = as_answers(answers)
    sums = feature_sums(agreement_features(answers_))
    return float(disagreement_from(sums, answers_.shape[1]))


def flip_rate(answers: npt.ArrayLike) -> float:
    """Share of images whose answer is not identical under every variant."""
    return float(flip_rate_from(feature_sums(agreement_features(as_answers(answers)))))


def refusal_flip_rate(answers: npt.ArrayLike) -> float:
    """Share of images refused under some variants and not refused under others.

    An unparseable answer counts as not refused.
    """
    return float(refusal_flip_rate_from(feature_sums(agreement_features(as_answers(answers)))))


def fleiss_kappa(answers: npt.ArrayLike) -> float:
    """Fleiss' kappa: images are subjects, variants raters, answer codes categories.

    ``kappa = (P_bar - P_e) / (1 - P_e)`` with ``P_bar`` the mean share of agreeing
    variant pairs per image and ``P_e = sum_c p_c^2``, ``p_c`` the share of all answers
    in category c (classes, refusal, unparseable; an unused category adds nothing).
    NaN when every answer falls in one category (``P_e = 1``).
    """
    answers_ = as_answers(answers)
    sums = feature_sums(agreement_features(answers_))
    return float(fleiss_kappa_from(sums, answers_.shape[1]))


def _family_inputs(
    answers: npt.ArrayLike, truth: npt.ArrayLike, n_classes: int
) -> tuple[IntArray, IntArray]:
    truth_ = as_truth(truth, n_classes)
    answers_ = as_answers_for(answers, n_classes)
    check_same_images(len(truth_), len(answers_), "answers")
    return answers_, truth_


def _pdr(f1: FloatArray, reference: int) -> FloatArray:
    ref = f1[..., reference, None]
    return divide(ref - f1, np.broadcast_to(ref, f1.shape), np.nan)


def _variant_f1(answers: npt.ArrayLike, truth: npt.ArrayLike, n_classes: int) -> FloatArray:
    answers_, truth_ = _family_inputs(answers, truth, n_classes)
    sums = feature_sums(variant_features(truth_, answers_, n_classes))
    return variant_f1_from(sums, n_classes, answers_.shape[1])


def spread(answers: npt.ArrayLike, truth: npt.ArrayLike, n_classes: int) -> float:
    """``max_v f1_all_v - min_v f1_all_v`` over the variant columns."""
    f1 = _variant_f1(answers, truth, n_classes)
    return float(f1.max() - f1.min())


def worst_f1(answers: npt.ArrayLike, truth: npt.ArrayLike, n_classes: int) -> float:
    """``min_v f1_all_v`` over the variant columns."""
    return float(_variant_f1(answers, truth, n_classes).min())


def _check_reference(reference: int, n_variants: int) -> None:
    if not 0 <= reference < n_variants:
        raise ValueError(
            f"reference must be a variant column in 0..{n_variants - 1}, got {reference}"
        )


def pdr(answers: npt.ArrayLike, truth: npt.ArrayLike, n_classes: int, reference: int) -> FloatArray:
    """Performance drop rate of each variant: ``(f1_ref - f1_v) / f1_ref``, NaN if ``f1_ref = 0``.

    Returns one value per variant column; the reference's own is 0 (or NaN).
    """
    f1 = _variant_f1(answers, truth, n_classes)
    _check_reference(reference, len(f1))
    return _pdr(f1, reference)


def _without_interval(estimate: Estimate) -> Estimate:
    """A max or min over variants with no interval: its resamples are biased (the maximum of
    noisy F1s rises, the minimum falls), so a percentile interval can miss its own point value
    and almost never covers a true spread of 0. Reported as a point value only."""
    return Estimate(estimate.value, math.nan, math.nan)


@dataclass(frozen=True)
class FamilyScores:
    """Fragility of one (model, task, prompt family) across its variants, with 95% CIs."""

    n_images: int
    """Number of images (rows of the answer matrix)."""
    n_variants: int
    """Number of prompt variants (columns of the answer matrix)."""
    reference: int
    """Column of the reference variant that ``pdr`` compares against."""
    disagreement: Estimate
    """Mean share of images answered differently by a pair of variants (the fragility)."""
    prompt_sensitivity: Estimate
    """ProSA's PromptSensiScore: the same over changes of correctness only."""
    flip_rate: Estimate
    """Share of images whose answer is not the same under every variant."""
    refusal_flip_rate: Estimate
    """Share of images refused under some variants and not refused under others."""
    fleiss_kappa: Estimate
    """Fleiss' kappa with variants as raters (NaN when undefined)."""
    spread: Estimate
    """Max minus min ``f1_all`` over variants (no interval: an extreme-value statistic)."""
    worst_f1: Estimate
    """Min ``f1_all`` over variants (no interval: an extreme-value statistic)."""
    all_variants_f1: Estimate
    """Macro-F1 counting an image right only when every variant answers it right."""
    all_variants_kappa: Estimate
    """Cohen's kappa of the consensus answers: chance-corrected, the headline's task term."""
    f1_all: tuple[Estimate, ...]
    """``f1_all`` of each variant, in column order."""
    pdr: tuple[Estimate, ...]
    """Performance drop rate of each variant against the reference, in column order."""


def score_family(
    answers: npt.ArrayLike,
    truth: npt.ArrayLike,
    n_classes: int,
    reference: int,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    groups: npt.ArrayLike | None = None,
) -> FamilyScores:
    """All fragility metrics of an answer matrix, with percentile bootstrap CIs over images.

    One set of ``n_boot`` image resamples (from ``np.random.default_rng(seed)``) serves
    every metric, so each resample keeps an image's answers under all variants
    together. Resamples where a metric is undefined are left out of its interval. With
    ``groups`` (a cluster label per image) the resamples draw whole clusters.
    """
    answers_, truth_ = _family_inputs(answers, truth, n_classes)
    n_variants = answers_.shape[1]
    if n_variants < 2:
        raise ValueError(f"answers must have at least 2 variant columns, got {n_variants}")
    _check_reference(reference, n_variants)
    check_n_boot(n_boot)
    clusters = None if groups is None else as_clusters(groups, len(truth_))
    units = group_units(np.column_stack([truth_, answers_]), clusters)
    rows = units.rows
    agreement = np.hstack(
        [agreement_features(rows[:, 1:]), sensitivity_features(rows[:, 0], rows[:, 1:])]
    )
    lead = np.hstack([agreement, consensus_features(rows[:, 0], rows[:, 1:], n_classes)])
    features = units.pool(variant_features(rows[:, 0], rows[:, 1:], n_classes, lead=lead))
    offset, width = agreement.shape[1], lead.shape[1]

    def summarise(sums: FloatArray) -> dict[str, FloatArray]:
        agree = sums[:, : offset - 1]
        f1 = variant_f1_from(sums[:, width:], n_classes, n_variants)
        return {
            "disagreement": disagreement_from(agree, n_variants),
            "prompt_sensitivity": prompt_sensitivity_from(
                sums[:, offset - 1], sums[:, _ONES], n_variants
            ),
            "flip_rate": flip_rate_from(agree),
            "refusal_flip_rate": refusal_flip_rate_from(agree),
            "fleiss_kappa": fleiss_kappa_from(agree, n_variants),
            "spread": f1.max(axis=-1) - f1.min(axis=-1),
            "worst_f1": f1.min(axis=-1),
            "all_variants_f1": f1_all_from(sums[:, offset:width], n_classes),
            "all_variants_kappa": kappa_from(sums[:, offset:width], n_classes),
            "f1_all": f1,
            "pdr": _pdr(f1, reference),
        }

    found = bootstrap_summary(features, units.sizes, summarise, n_boot, np.random.default_rng(seed))
    return FamilyScores(
        n_images=len(truth_),
        n_variants=n_variants,
        reference=reference,
        disagreement=found["disagreement"][0],
        prompt_sensitivity=found["prompt_sensitivity"][0],
        flip_rate=found["flip_rate"][0],
        refusal_flip_rate=found["refusal_flip_rate"][0],
        fleiss_kappa=found["fleiss_kappa"][0],
        spread=_without_interval(found["spread"][0]),
        worst_f1=_without_interval(found["worst_f1"][0]),
        all_variants_f1=found["all_variants_f1"][0],
        all_variants_kappa=found["all_variants_kappa"][0],
        f1_all=tuple(found["f1_all"]),
        pdr=tuple(found["pdr"]),
    )
