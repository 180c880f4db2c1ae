"""Per-model summaries over tasks: fragility index, all-variants, mean and worst F1, chance."""

# The bootstrap is stratified: each resample draws every task's images within that
# task, and averages the per-task metrics with equal weight, as the point value does.

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._bootstrap import Estimate, bootstrap_sums, estimates
from medbench.score.metrics._circular import consensus_features
from medbench.score.metrics._classification import f1_all_from, variant_f1_from, variant_features
from medbench.score.metrics._codes import (
    FeatureArray,
    FloatArray,
    IntArray,
    as_answers,
    as_answers_for,
    as_truth,
    check_n_boot,
    check_same_images,
)
from medbench.score.metrics._family import agreement_features, disagreement_from
from medbench.score.metrics._units import as_clusters, group_units


class TaskAnswers(NamedTuple):
    """One task's answers for one model: (N, V) codes, their truth and class count."""

    answers: npt.ArrayLike
    """(N images, V variants) answer codes; V may be 1."""
    truth: npt.ArrayLike
    """Class index of each image."""
    n_classes: int
    """Number of task classes K."""
    groups: npt.ArrayLike | None = None
    """Cluster label of each image (e.g. the patient), or None for independent images."""


def _check_tasks(n_tasks: int, n_boot: int) -> None:
    if n_tasks == 0:
        raise ValueError("needs at least one task, got none")
    check_n_boot(n_boot)


def _mean_over_tasks(per_task: list[tuple[float, FloatArray]]) -> Estimate:
    value = np.mean([point for point, _ in per_task], keepdims=True)
    samples = np.mean([samples for _, samples in per_task], axis=0)
    return estimates(value, samples[:, None])[0]


def _clusters(groups: npt.ArrayLike | None, n_images: int, name: str) -> IntArray | None:
    return None if groups is None else as_clusters(groups, n_images, name)


def fragility_index(
    answers: Sequence[npt.ArrayLike],
    *,
    seed: int = 0,
    n_boot: int = 1000,
    groups: Sequence[npt.ArrayLike | None] | None = None,
) -> Estimate:
    """Mean over tasks of the per-task ``disagreement``, with a stratified bootstrap CI.

    ``FI = (1/T) sum_t disagreement(answers_t)``; ``answers`` holds one
    (N_t images, V_t >= 2 variants) matrix per task, ``groups`` (when given) one cluster
    label vector (or None) per task, whose clusters are then resampled within the task.
    """
    _check_tasks(len(answers), n_boot)
    if groups is not None and len(groups) != len(answers):
        raise ValueError(f"groups must hold one entry per task ({len(answers)}), got {len(groups)}")
    rng = np.random.default_rng(seed)
    per_task = []
    for t, matrix in enumerate(answers):
        answers_ = as_answers(matrix, name=f"answers[{t}]")
        clusters = _clusters(None if groups is None else groups[t], len(answers_), f"groups[{t}]")
        units = group_units(answers_, clusters)
        features = units.pool(agreement_features(units.rows))
        observed, resampled = bootstrap_sums(features, units.sizes, n_boot, rng)
        n_variants = answers_.shape[1]
        per_task.append(
            (
                float(disagreement_from(observed, n_variants)),
                disagreement_from(resampled, n_variants),
            )
        )
    return _mean_over_tasks(per_task)


TaskMetric = Callable[
    [IntArray, IntArray, int], tuple[FeatureArray, Callable[[FloatArray], FloatArray]]
]
"""(truth rows, answer rows, K) -> per-row features and the task's metric of their sums."""


def _over_tasks(
    tasks: Sequence[TaskAnswers], metric: TaskMetric, seed: int, n_boot: int
) -> Estimate:
    """Mean over tasks of a per-task metric, each task's images resampled within it."""
    _check_tasks(len(tasks), n_boot)
    rng = np.random.default_rng(seed)
    per_task = []
    for t, (answers, truth, n_classes, groups) in enumerate(tasks):
        truth_ = as_truth(truth, n_classes, name=f"tasks[{t}].truth")
        answers_ = as_answers_for(answers, n_classes, name=f"tasks[{t}].answers")
        check_same_images(len(truth_), len(answers_), f"tasks[{t}].answers", f"tasks[{t}].truth")
        clusters = _clusters(groups, len(truth_), f"tasks[{t}].groups")
        units = group_units(np.column_stack([truth_, answers_]), clusters)
        features, of_sums = metric(units.rows[:, 0], units.rows[:, 1:], n_classes)
        observed, resampled = bootstrap_sums(units.pool(features), units.sizes, n_boot, rng)
        per_task.append((float(of_sums(observed)), of_sums(resampled)))
    return _mean_over_tasks(per_task)


def _variant_f1s(
    truth: IntArray, answers: IntArray, n_classes: int
) -> tuple[FeatureArray, Callable[[FloatArray], FloatArray]]:
    n_variants = answers.shape[1]
    features = variant_features(truth, answers, n_classes)
    return features, lambda sums: variant_f1_from(sums, n_classes, n_variants)


def mean_f1_all(tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000) -> Estimate:
    """Mean over tasks of the task's mean ``f1_all`` over its variants, with a stratified CI.

    ``(1/T) sum_t (1/V_t) sum_v f1_all(truth_t, answers_t[:, v])``.
    """

    def metric(
        truth: IntArray, answers: IntArray, k: int
    ) -> tuple[FeatureArray, Callable[[FloatArray], FloatArray]]:
        features, f1 = _variant_f1s(truth, answers, k)
        return features, lambda sums: f1(sums).mean(axis=-1)

    return _over_tasks(tasks, metric, seed, n_boot)


def mean_worst_f1(tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000) -> Estimate:
    """Mean over tasks of the task's worst-variant ``f1_all``, with a stratified CI.

    ``(1/T) sum_t min_v f1_all(truth_t, answers_t[:, v])``.
    """

    def metric(
        truth: IntArray, answers: IntArray, k: int
    ) -> tuple[FeatureArray, Callable[[FloatArray], FloatArray]]:
        features, f1 = _variant_f1s(truth, answers, k)
        return features, lambda sums: f1(sums).min(axis=-1)

    return _over_tasks(tasks, metric, seed, n_boot)


def mean_all_variants_f1(
    tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000
) -> Estimate:
    """Mean over tasks of the task's all-variants F1, with a stratified CI: the headline score.

    ``(1/T) sum_t all_variants_f1(answers_t, truth_t)``: an image counts as right only
    when every variant of the family answers it right.
    """

    def metric(
        truth: IntArray, answers: IntArray, k: int
    ) -> tuple[FeatureArray, Callable[[FloatArray], FloatArray]]:
        return consensus_features(truth, answers, k), lambda sums: f1_all_from(sums, k)

    return _over_tasks(tasks, metric, seed, n_boot)


def worse_than_chance(ci_hi: float, chance: float) -> bool:
    """Whether a score is credibly below chance: its CI's upper end is under it.

    False when ``ci_hi`` is NaN (no interval, no claim).
    """
    return not math.isnan(ci_hi) and ci_hi < chance
