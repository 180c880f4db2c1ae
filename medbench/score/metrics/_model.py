"""Per-model summaries over tasks: fragility index, the headline kappa, mean and worst scores."""

# The bootstrap is stratified: each resample draws every task's images within that task,
# and averages the per-entry metrics with equal weight, as the point value does. Entries
# (prompt families) of one task ask the same images, so they share one image resample:
# their answers to an image are one row of a joint key, and an entry's metric reads its
# own columns of the resampled feature sums. An image an entry did not answer has zero
# features there, so each entry's sums cover its own images only.

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._bootstrap import Estimate, bootstrap_sums, estimates
from medbench.score.metrics._circular import consensus_features
from medbench.score.metrics._classification import (
    f1_all_from,
    kappa_from,
    variant_features,
)
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
from medbench.score.metrics._units import Units, as_clusters, group_units

_ABSENT = -99
"""Key code of an image an entry of its task did not answer."""


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
    task: str | None = None
    """The task the images belong to: entries of one task share one image resample (None:
    a task of its own)."""
    images: npt.ArrayLike | None = None
    """An id per image, to align entries of one task (None: rows are the same images)."""


TaskMetric = Callable[
    [IntArray, IntArray, int], tuple[FeatureArray, Callable[[FloatArray], FloatArray]]
]
"""(truth rows, answer rows, K) -> per-row features and the task's metric of their sums."""


@dataclass(frozen=True)
class _Entry:
    answers: IntArray
    truth: IntArray
    n_classes: int
    clusters: npt.NDArray[Any] | None
    task: str
    images: npt.NDArray[Any]


def _check_tasks(n_tasks: int, n_boot: int) -> None:
    if n_tasks == 0:
        raise ValueError("needs at least one task, got none")
    check_n_boot(n_boot)


def _labels(values: npt.ArrayLike | None, n_images: int, name: str) -> npt.NDArray[Any] | None:
    if values is None:
        return None
    labels = np.asarray(values)
    as_clusters(labels, n_images, name)  # validates the shape
    return labels


Joint = tuple[Units, FeatureArray, list[tuple[slice, Callable[[FloatArray], FloatArray]]]]
"""A task's resampling units, its entries' side-by-side features, each entry's columns and
metric of their sums."""


def _joint(entries: list[_Entry], metric: TaskMetric) -> Joint:
    """The resampling units of one task's entries and their side-by-side features."""
    union = np.unique(np.concatenate([e.images for e in entries]))
    blocks: list[IntArray] = []
    labels: npt.NDArray[Any] | None = None
    for e in entries:
        at = np.searchsorted(union, e.images)
        block = np.full((len(union), 1 + e.answers.shape[1]), _ABSENT, dtype=np.int64)
        block[at, 0], block[at, 1:] = e.truth, e.answers
        blocks.append(block)
        if e.clusters is not None:
            if labels is None:
                labels = np.full(len(union), None, dtype=object)
            labels[at] = e.clusters
    clusters: IntArray | None = None
    if labels is not None:  # an image no clustered entry answered is a cluster of its own
        alone = np.array([c is None for c in labels])
        labels[alone] = [f"image:{i}" for i in np.flatnonzero(alone)]
        clusters = as_clusters(labels.astype(str), len(union))
    units = group_units(np.hstack(blocks), clusters)
    features, parts, start = [], [], 0
    splits = np.cumsum([b.shape[1] for b in blocks])[:-1]
    for e, mine in zip(entries, np.split(units.rows, splits, axis=1), strict=True):
        present = mine[:, 0] != _ABSENT
        rows: IntArray = np.where(present[:, None], mine, 0).astype(np.int64)
        found, of_sums = metric(rows[:, 0], rows[:, 1:], e.n_classes)
        features.append(found * present[:, None].astype(found.dtype))
        parts.append((slice(start, start + found.shape[1]), of_sums))
        start += found.shape[1]
    return units, units.pool(np.hstack(features).astype(np.float32)), parts


def _stratified(entries: list[_Entry], metric: TaskMetric, seed: int, n_boot: int) -> Estimate:
    """Mean over entries of a per-entry metric; one image resample per task serves its entries."""
    rng = np.random.default_rng(seed)
    per_entry: dict[int, tuple[float, FloatArray]] = {}
    n_units = 0
    for task in dict.fromkeys(e.task for e in entries):
        members = [i for i, e in enumerate(entries) if e.task == task]
        mine = [entries[i] for i in members]
        units, features, parts = _joint(mine, metric)
        n_units += units.n_units
        observed, resampled = bootstrap_sums(features, units.sizes, n_boot, rng)
        for i, (part, of_sums) in zip(members, parts, strict=True):
            per_entry[i] = (float(of_sums(observed[part])), of_sums(resampled[:, part]))
    found = [per_entry[i] for i in range(len(entries))]
    value = np.mean([point for point, _ in found], keepdims=True)
    samples = np.mean([samples for _, samples in found], axis=0)
    return estimates(value, samples[:, None], n_units)[0]


def _entries(tasks: Sequence[TaskAnswers], n_boot: int, *, with_truth: bool) -> list[_Entry]:
    _check_tasks(len(tasks), n_boot)
    found = []
    for t, (answers, truth, n_classes, groups, task, images) in enumerate(tasks):
        if with_truth:
            truth_ = as_truth(truth, n_classes, name=f"tasks[{t}].truth")
            answers_ = as_answers_for(answers, n_classes, name=f"tasks[{t}].answers")
            check_same_images(
                len(truth_), len(answers_), f"tasks[{t}].answers", f"tasks[{t}].truth"
            )
        else:
            answers_ = as_answers(answers, name=f"answers[{t}]")
            truth_ = np.zeros(len(answers_), dtype=np.int64)
        n = len(answers_)
        ids = _labels(images, n, f"tasks[{t}].images")
        if ids is not None and len(np.unique(ids)) != n:
            raise ValueError(f"tasks[{t}].images must name each image once")
        found.append(
            _Entry(
                answers_,
                truth_,
                n_classes,
                _labels(groups, n, f"tasks[{t}].groups"),
                f"#{t}" if task is None else f"task:{task}",
                np.arange(n) if ids is None else ids,
            )
        )
    for task in {e.task for e in found}:
        mine = [t for t, e in enumerate(found) if e.task == task]
        unnamed = [t for t in mine if tasks[t].images is None]
        if unnamed and len({len(found[t].images) for t in mine}) > 1:
            raise ValueError(
                f"the entries of {task} hold different images: name them with `images`"
            )
    return found


def fragility_index(
    answers: Sequence[npt.ArrayLike],
    *,
    seed: int = 0,
    n_boot: int = 1000,
    groups: Sequence[npt.ArrayLike | None] | None = None,
    tasks: Sequence[str | None] | None = None,
    images: Sequence[npt.ArrayLike | None] | None = None,
) -> Estimate:
    """Mean over entries of the per-entry ``disagreement``, with a stratified bootstrap CI.

    ``FI = (1/T) sum_t disagreement(answers_t)``; ``answers`` holds one
    (N_t images, V_t >= 2 variants) matrix per entry (a task's prompt family), ``groups``
    (when given) one cluster label vector (or None) per entry, whose clusters are then
    resampled. ``tasks`` names each entry's task: entries of one task share one image
    resample (aligned by ``images``, one id vector per entry, or by row when None);
    without it every entry is a task of its own.
    """
    for name, given in (("groups", groups), ("tasks", tasks), ("images", images)):
        if given is not None and len(given) != len(answers):
            raise ValueError(
                f"{name} must hold one entry per task ({len(answers)}), got {len(given)}"
            )
    rows = [
        TaskAnswers(
            matrix,
            np.zeros(0),
            1,
            None if groups is None else groups[t],
            None if tasks is None else tasks[t],
            None if images is None else images[t],
        )
        for t, matrix in enumerate(answers)
    ]

    def metric(
        truth: IntArray, answers_: IntArray, k: int
    ) -> tuple[FeatureArray, Callable[[FloatArray], FloatArray]]:
        n_variants = answers_.shape[1]
        return agreement_features(answers_), lambda sums: disagreement_from(sums, n_variants)

    return _stratified(_entries(rows, n_boot, with_truth=False), metric, seed, n_boot)


def _over_tasks(
    tasks: Sequence[TaskAnswers], metric: TaskMetric, seed: int, n_boot: int
) -> Estimate:
    """Mean over entries of a per-entry metric, each task's images resampled within it."""
    return _stratified(_entries(tasks, n_boot, with_truth=True), metric, seed, n_boot)


def _per_variant(
    score: Callable[[FloatArray, int], FloatArray], reduce: Callable[[FloatArray], FloatArray]
) -> TaskMetric:
    """A task metric reducing a per-variant score (f1_all or kappa) over the variants."""

    def metric(
        truth: IntArray, answers: IntArray, k: int
    ) -> tuple[FeatureArray, Callable[[FloatArray], FloatArray]]:
        n_variants = answers.shape[1]
        width = 4 * k + 2

        def of_sums(sums: FloatArray) -> FloatArray:
            blocks = [sums[..., v * width : (v + 1) * width] for v in range(n_variants)]
            return reduce(np.stack([score(b, k) for b in blocks], axis=-1))

        return variant_features(truth, answers, k), of_sums

    return metric


def _consensus(score: Callable[[FloatArray, int], FloatArray]) -> TaskMetric:
    def metric(
        truth: IntArray, answers: IntArray, k: int
    ) -> tuple[FeatureArray, Callable[[FloatArray], FloatArray]]:
        return consensus_features(truth, answers, k), lambda sums: score(sums, k)

    return metric


def _mean(values: FloatArray) -> FloatArray:
    return np.asarray(values.mean(axis=-1), dtype=np.float64)


def _min(values: FloatArray) -> FloatArray:
    return np.asarray(values.min(axis=-1), dtype=np.float64)


def mean_f1_all(tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000) -> Estimate:
    """Mean over tasks of the task's mean ``f1_all`` over its variants, with a stratified CI.

    ``(1/T) sum_t (1/V_t) sum_v f1_all(truth_t, answers_t[:, v])``.
    """
    return _over_tasks(tasks, _per_variant(f1_all_from, _mean), seed, n_boot)


def mean_worst_f1(tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000) -> Estimate:
    """Mean over tasks of the task's worst-variant ``f1_all``, without an interval.

    ``(1/T) sum_t min_v f1_all(truth_t, answers_t[:, v])``: a minimum over variants, biased
    low in every resample, so a percentile interval would miss its own point value (NaN
    bounds; ``n_boot`` is only validated).
    """
    check_n_boot(n_boot)
    return _over_tasks(tasks, _per_variant(f1_all_from, _min), seed, 0)


def mean_kappa(tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000) -> Estimate:
    """Mean over tasks of the task's mean Cohen's kappa over its variants (chance-corrected).

    ``(1/T) sum_t (1/V_t) sum_v kappa(truth_t, answers_t[:, v])``.
    """
    return _over_tasks(tasks, _per_variant(kappa_from, _mean), seed, n_boot)


def mean_worst_kappa(
    tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000
) -> Estimate:
    """Mean over tasks of the task's worst-variant Cohen's kappa, without an interval (an
    extreme-value statistic, as ``mean_worst_f1``)."""
    check_n_boot(n_boot)
    return _over_tasks(tasks, _per_variant(kappa_from, _min), seed, 0)


def mean_all_variants_f1(
    tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000
) -> Estimate:
    """Mean over tasks of the task's all-variants F1, with a stratified CI.

    ``(1/T) sum_t all_variants_f1(answers_t, truth_t)``: an image counts as right only
    when every variant of the family answers it right.
    """
    return _over_tasks(tasks, _consensus(f1_all_from), seed, n_boot)


def mean_all_variants_kappa(
    tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000
) -> Estimate:
    """Mean over tasks of the task's all-variants kappa, with a stratified CI: the headline.

    ``(1/T) sum_t all_variants_kappa(answers_t, truth_t)``: chance-corrected, so constant,
    refusing, unparseable and random models score about 0, and an image counts as right
    only when every variant answers it right.
    """
    return _over_tasks(tasks, _consensus(kappa_from), seed, n_boot)


def has_skill(estimate: Estimate) -> bool:
    """Whether a chance-corrected score's interval lies above 0 (NaN interval: its value)."""
    if math.isnan(estimate.lo):
        return not math.isnan(estimate.value) and estimate.value > 0
    return estimate.lo > 0
