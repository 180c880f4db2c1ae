"""All-variants F1: an image counts as right only when every variant answers it right.

In the spirit of MMBench's CircularEval, each image gets one consensus answer: the answer
of its variants when they all agree, otherwise ``NO_CONSENSUS``, which matches no class
(like a refusal in ``f1_all``). The macro-F1 of the consensus answers rewards a model for
being right and stable at once: a constant or refusing model gains nothing from being
stable, a fragile one loses every image it flips on.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._classification import class_features, f1_all_from, kappa_from
from medbench.score.metrics._codes import (
    UNPARSEABLE,
    FeatureArray,
    IntArray,
    as_answers_for,
    as_truth,
    check_same_images,
)

NO_CONSENSUS = UNPARSEABLE
"""The consensus code of an image whose variants disagree: it matches no class."""


def consensus(answers: IntArray) -> IntArray:
    """Each image's answer when all its variants give the same one, else ``NO_CONSENSUS``.

    A unanimous refusal or unparseable answer stays what it is: it matches no class either.
    """
    first = answers[:, 0]
    agree = (answers == first[:, None]).all(axis=1)
    return np.where(agree, first, NO_CONSENSUS).astype(np.int64)


def consensus_features(truth: IntArray, answers: IntArray, n_classes: int) -> FeatureArray:
    """Per-image classification features (N, 4K+2) of the consensus answers."""
    return class_features(truth, consensus(answers), n_classes)


def all_variants_f1(answers: npt.ArrayLike, truth: npt.ArrayLike, n_classes: int) -> float:
    """Macro-F1 of the consensus answers: ``(1/K) sum_k 2 TP*_k / (n_k + P*_k)``.

    ``TP*_k`` counts images of class k that every variant answers k; ``P*_k`` images that
    every variant answers k. An image whose variants disagree, or that all variants
    refuse, is a false negative of its class only. With one variant it is ``f1_all``.
    """
    truth_ = as_truth(truth, n_classes)
    answers_ = as_answers_for(answers, n_classes)
    check_same_images(len(truth_), len(answers_), "answers")
    features = consensus_features(truth_, answers_, n_classes).astype(np.float64)
    return float(f1_all_from(features.sum(axis=0), n_classes))


def all_variants_kappa(answers: npt.ArrayLike, truth: npt.ArrayLike, n_classes: int) -> float:
    """Cohen's kappa of the consensus answers against truth: the chance-corrected headline.

    ``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the share of images every variant answers
    right and ``p_e = sum_k p_k q_k``, ``p_k`` the share of images of class k and ``q_k``
    the share every variant answers k. A constant, refusing, unparseable or random model
    (stable or not) scores about 0 whatever the class balance; one that flips loses each
    image it flips on. NaN when ``p_e = 1`` (one class, always answered). With one
    variant it is Cohen's kappa of that variant.
    """
    truth_ = as_truth(truth, n_classes)
    answers_ = as_answers_for(answers, n_classes)
    check_same_images(len(truth_), len(answers_), "answers")
    features = consensus_features(truth_, answers_, n_classes).astype(np.float64)
    return float(kappa_from(features.sum(axis=0), n_classes))
