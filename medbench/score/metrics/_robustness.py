"""Robustness summaries: F1 relative to the clean image over severity levels, pooled shares."""

# Both reuse the per-model machinery of `_model`: entries of one task share one image
# resample (their rows aligned by id, whole clusters drawn), and every number of a call is
# read off the same resampled feature sums. For relative F1 each entry's clean column and
# its severity columns are blocks of one row, so a resample draws an image's clean and
# perturbed answers together: a paired bootstrap of the ratio.

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._bootstrap import Estimate, bootstrap_sums, divide, estimates
from medbench.score.metrics._classification import (
    block_width,
    f1_all,
    variant_f1_from,
    variant_features,
)
from medbench.score.metrics._codes import FeatureArray, FloatArray, IntArray
from medbench.score.metrics._model import (
    TaskAnswers,
    _check_tasks,
    _entries,
    _Entry,
    _joint,
    _stratified,
)

NOT_ASKED = -9
"""Answer code of a row that a severity level did not ask (its features count nothing)."""


def _relative_metric(
    truth: IntArray, answers: IntArray, k: int
) -> tuple[FeatureArray, Callable[[FloatArray], FloatArray]]:
    asked = answers != NOT_ASKED
    features = variant_features(truth, np.where(asked, answers, 0), k)
    features *= np.repeat(asked, block_width(k), axis=1).astype(np.float32)
    n_columns = answers.shape[1]

    def of_sums(sums: FloatArray) -> FloatArray:
        f1 = variant_f1_from(sums, k, n_columns)
        ratios = divide(f1[..., 1:], f1[..., :1], np.nan)
        return np.asarray(ratios.mean(axis=-1), dtype=np.float64)

    return features, of_sums


def _relative_entries(tasks: Sequence[TaskAnswers], n_boot: int) -> list[_Entry]:
    """The entries, validated as `_entries` does with every NOT_ASKED code read as class 0
    (then put back); the clean column must be asked everywhere, each level somewhere."""
    _check_tasks(len(tasks), n_boot)
    raw = [np.asarray(t.answers) for t in tasks]
    for t, answers in enumerate(raw):
        if answers.ndim != 2 or answers.shape[1] < 2:
            raise ValueError(
                f"tasks[{t}].answers must be (images, 1 + levels) with at least one level, "
                f"got shape {answers.shape}"
            )
        asked = answers != NOT_ASKED
        if not asked[:, 0].all() or not asked[:, 1:].any(axis=0).all():
            raise ValueError(
                f"tasks[{t}].answers: the clean column must answer every image and each "
                f"level at least one"
            )
    masked = [
        t._replace(answers=np.where(a == NOT_ASKED, 0, a)) for t, a in zip(tasks, raw, strict=True)
    ]
    found = _entries(masked, n_boot, with_truth=True)
    return [
        dataclasses.replace(e, answers=a.astype(np.int64)) for e, a in zip(found, raw, strict=True)
    ]


def mean_relative_f1(
    tasks: Sequence[TaskAnswers], *, seed: int = 0, n_boot: int = 1000
) -> tuple[Estimate, int]:
    """Mean over entries of the entry's mean relative F1, with a stratified paired CI; and how
    many entries were left out because their clean F1 is 0 (the ratio is undefined).

    Each entry's ``answers`` are (N rows, 1 + S): column 0 the answers to the clean image,
    columns 1..S those under each severity level (``NOT_ASKED`` where a level did not ask the
    row). The entry's value is ``(1/S) sum_s f1_all(level s) / f1_all(clean)``, each F1 over
    the rows its column answered; the result is the mean over the entries whose clean F1 is
    not 0 (NaN when none is). Each task's rows are resampled within it, whole clusters where
    ``groups`` are given, the clean and perturbed answers of a row together; resamples where
    some entry's clean F1 is 0 are left out of the interval.
    """
    entries = _relative_entries(tasks, n_boot)
    kept = [e for e in entries if f1_all(e.truth, e.answers[:, 0], e.n_classes) > 0]
    left_out = len(entries) - len(kept)
    if not kept:
        return Estimate(float("nan"), float("nan"), float("nan")), left_out
    return _stratified(kept, _relative_metric, seed, n_boot), left_out


def _one_hot(
    truth: IntArray, answers: IntArray, k: int
) -> tuple[FeatureArray, Callable[[FloatArray], FloatArray]]:
    features = (truth[:, None] == np.arange(k)).astype(np.float32)
    return features, lambda sums: sums


def pooled_shares(
    categories: Sequence[npt.ArrayLike],
    n_categories: int,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    groups: Sequence[npt.ArrayLike | None] | None = None,
    tasks: Sequence[str | None] | None = None,
    images: Sequence[npt.ArrayLike | None] | None = None,
) -> list[Estimate]:
    """The share of each of C categories among every entry's images pooled, with CIs.

    ``categories`` holds one vector per entry, a category ``0..C-1`` per image; the share of
    category c is ``sum_e n_ec / sum_e n_e``. ``groups``, ``tasks`` and ``images`` are as in
    ``fragility_index``: each task's images are resampled within it (whole clusters where
    grouped), one resample shared by the entries of a task.
    """
    for name, given in (("groups", groups), ("tasks", tasks), ("images", images)):
        if given is not None and len(given) != len(categories):
            raise ValueError(
                f"{name} must hold one entry per entry ({len(categories)}), got {len(given)}"
            )
    rows = [
        TaskAnswers(
            np.asarray(found)[:, None],
            found,
            n_categories,
            None if groups is None else groups[t],
            None if tasks is None else tasks[t],
            None if images is None else images[t],
        )
        for t, found in enumerate(categories)
    ]
    entries = _entries(rows, n_boot, with_truth=True)
    rng = np.random.default_rng(seed)
    observed_total = np.zeros(n_categories)
    resampled_total = np.zeros((n_boot, n_categories))
    n_units = 0
    for task in dict.fromkeys(e.task for e in entries):
        units, features, parts = _joint([e for e in entries if e.task == task], _one_hot)
        n_units += units.n_units
        observed, resampled = bootstrap_sums(features, units.sizes, n_boot, rng)
        for part, _ in parts:
            observed_total += observed[part]
            resampled_total += resampled[:, part]
    shares = divide(observed_total, observed_total.sum(keepdims=True), np.nan)
    boot = divide(resampled_total, resampled_total.sum(axis=1, keepdims=True), np.nan)
    return estimates(shares, boot, n_units)
