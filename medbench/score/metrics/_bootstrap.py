"""Bootstrap over images: vectorised resampling of per-image feature sums, percentile CIs."""

# Every metric is a formula on column sums of per-image features (counts of true
# positives, of refusals, of agreeing variant pairs...), so a resample only needs how
# many times it draws each image: its sums are ``counts @ features``. Images with equal
# answer rows have equal features, so rows are grouped first and a resample is a count
# vector over the G groups, distributed ``Multinomial(N, sizes / N)``: one matrix
# product per chunk of resamples replaces a Python loop over resamples.

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._codes import FeatureArray, FloatArray, IntArray

CONFIDENCE = 0.95
"""Coverage of every bootstrap interval (2.5th to 97.5th percentile, expanded for few units)."""

_CHUNK_ELEMENTS = 1 << 22
"""Most resample-by-image cells held at once (4 Mi: 32 MiB per int64 array)."""

_ROWS_PER_SUM = 1 << 16
"""Rows of features cast to float64 at once for exact observed sums."""

_MULTINOMIAL_ROW_COST = 150
"""Fixed cost of one multinomial row, in units of one image index draw (about 20 ns)."""

_MULTINOMIAL_GROUP_COST = 2.5
"""Cost of each group in a multinomial row, in the same units."""

_blas_controller: Any = None
"""Created on first use: inspecting the loaded BLAS libraries takes a moment."""


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% percentile bootstrap interval.

    ``lo`` and ``hi`` are NaN when no resample was drawn (``n_boot=0``) or the metric
    is undefined in every resample.
    """

    value: float
    """The metric on the observed images."""
    lo: float
    """2.5th percentile of the metric over bootstrap resamples."""
    hi: float
    """97.5th percentile of the metric over bootstrap resamples."""


def group_rows(keys: IntArray) -> tuple[IntArray, IntArray]:
    """Distinct rows of an (N, m) key matrix and how many images share each."""
    rows, sizes = np.unique(keys, axis=0, return_counts=True)
    return rows.astype(np.int64, copy=False), sizes.astype(np.int64, copy=False)


def resample_counts(sizes: IntArray, n_boot: int, rng: np.random.Generator) -> Iterator[IntArray]:
    """Yield (b, G) chunks of bootstrap draw counts per group, ``n_boot`` rows in all.

    Each row is the number of times a resample of the N = ``sizes.sum()`` images
    draws an image of each group. With few groups per image a row is drawn directly
    as ``Multinomial(N, sizes / N)``; otherwise as N uniform image indices mapped to
    their group and counted, which is cheaper then. Both give the same distribution.
    """
    n_groups = len(sizes)
    n_images = int(sizes.sum())
    if _MULTINOMIAL_ROW_COST + _MULTINOMIAL_GROUP_COST * n_groups < n_images:
        pvals = sizes / n_images
        step = max(1, _CHUNK_ELEMENTS // n_groups)
        for start in range(0, n_boot, step):
            b = min(step, n_boot - start)
            yield rng.multinomial(n_images, pvals, size=b).astype(np.int64, copy=False)
        return
    group_of = np.repeat(np.arange(n_groups, dtype=np.intp), sizes)
    step = max(1, _CHUNK_ELEMENTS // n_images)
    for start in range(0, n_boot, step):
        b = min(step, n_boot - start)
        draws = group_of[rng.integers(0, n_images, size=(b, n_images), dtype=np.intp)]
        draws += (np.arange(b, dtype=np.intp) * n_groups)[:, None]
        flat = np.bincount(draws.ravel(), minlength=b * n_groups)
        yield flat.reshape(b, n_groups).astype(np.int64, copy=False)


def feature_sums(features: FeatureArray, weights: IntArray | None = None) -> FloatArray:
    """Exact float64 column sums of (N, D) features, each row counted ``weights`` times."""
    sums = np.zeros(features.shape[1], dtype=np.float64)
    for start in range(0, len(features), _ROWS_PER_SUM):
        block = features[start : start + _ROWS_PER_SUM].astype(np.float64)
        if weights is None:
            sums += block.sum(axis=0)
        else:
            sums += weights[start : start + _ROWS_PER_SUM].astype(np.float64) @ block
    return sums


def bootstrap_sums(
    features: FeatureArray, sizes: IntArray, n_boot: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Column sums of per-group ``features`` (G, D): observed (D,) and per resample (B, D).

    Features are small non-negative integers, so the sums are exact: in float32 while
    every sum stays below 2**24, in float64 otherwise.
    """
    observed = feature_sums(features, sizes)
    resampled = np.empty((n_boot, features.shape[1]), dtype=np.float64)
    exact_in_float32 = float(sizes.sum()) * float(features.max(initial=0.0)) < 2**24
    dtype = np.float32 if exact_in_float32 else np.float64
    matrix: npt.NDArray[Any] = features.astype(dtype, copy=False)
    start = 0
    # The interleaved numpy work runs on one core; multithreaded BLAS workers spinning
    # between the small products starve it (4x slower on two cores), so use one thread.
    # The limit is process-wide while it lasts, as threadpoolctl's always is.
    with _single_threaded_blas():
        for counts in resample_counts(sizes, n_boot, rng):
            stop = start + len(counts)
            resampled[start:stop] = counts.astype(dtype) @ matrix
            start = stop
    return observed, resampled


def _single_threaded_blas() -> AbstractContextManager[object]:
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import (  # type: ignore[import-untyped, unused-ignore]
            ThreadpoolController,
        )

        _blas_controller = ThreadpoolController()
    limit: AbstractContextManager[object] = _blas_controller.limit(limits=1, user_api="blas")
    return limit


@functools.lru_cache(maxsize=1024)
def expanded_tail(n_units: int | None) -> float:
    """The lower quantile of a ``CONFIDENCE`` interval from ``n_units`` resampling units.

    Hesterberg's (2015) expanded percentile interval: the bootstrap distribution of a mean is
    too narrow by about ``sqrt((n - 1) / n)`` and has normal rather than t tails, so its
    percentile interval undercovers at small n (0.92 at 32 images, 0.79 at 12 clusters). The
    quantiles are taken at ``Phi(-sqrt(n / (n - 1)) t_{n-1, (1 + CONFIDENCE) / 2})``: 0.0191
    for 32 units, 0.0108 for 12, 0.025 in the limit. None (or fewer than 2 units): 0.025.
    """
    plain = (1.0 - CONFIDENCE) / 2.0
    if n_units is None or n_units < 2:
        return plain
    from scipy.stats import norm, t

    z = math.sqrt(n_units / (n_units - 1)) * float(t.ppf(1.0 - plain, n_units - 1))
    return float(norm.cdf(-z))


def percentile_intervals(
    samples: FloatArray, n_units: int | None = None
) -> tuple[FloatArray, FloatArray]:
    """Central ``CONFIDENCE`` percentile interval of each column of (B, M) samples.

    With ``n_units`` (the images or clusters a resample draws) the interval is the expanded
    percentile interval (see ``expanded_tail``). NaN samples (resamples where the metric is
    undefined) are left out; a column with no other sample gets a NaN interval.
    """
    n_metrics = samples.shape[1]
    lo = np.full(n_metrics, np.nan)
    hi = np.full(n_metrics, np.nan)
    tail = 100.0 * expanded_tail(n_units)
    missing = np.isnan(samples)
    clean = ~missing.any(axis=0) & (samples.shape[0] > 0)
    if clean.any():
        lo[clean], hi[clean] = np.percentile(samples[:, clean], [tail, 100.0 - tail], axis=0)
    for m in np.flatnonzero(~clean):
        finite = samples[~missing[:, m], m]
        if finite.size:
            lo[m], hi[m] = np.percentile(finite, [tail, 100.0 - tail])
    return lo, hi


def estimates(
    values: FloatArray, samples: FloatArray, n_units: int | None = None
) -> list[Estimate]:
    """One ``Estimate`` per metric from point values (M,) and bootstrap samples (B, M), with
    the expanded percentile interval for ``n_units`` resampling units (when given)."""
    lo, hi = percentile_intervals(samples, n_units)
    return [
        Estimate(value=float(v), lo=float(low), hi=float(high))
        for v, low, high in zip(values, lo, hi, strict=True)
    ]


Summary = Callable[[FloatArray], dict[str, FloatArray]]
"""Maps feature sums (R, D) to named metrics, each (R,) or (R, M) for M values."""


def bootstrap_summary(
    features: FeatureArray,
    sizes: IntArray,
    summarise: Summary,
    n_boot: int,
    rng: np.random.Generator,
) -> dict[str, list[Estimate]]:
    """Point values and intervals of named metrics, all on one shared set of resamples.

    ``sizes`` counts the resampling units (images or clusters) of each group; the intervals
    are expanded for their number. Each name maps to one ``Estimate`` per metric value (one
    for a scalar metric).
    """
    observed, resampled = bootstrap_sums(features, sizes, n_boot, rng)
    point = summarise(observed[None, :])
    boot = summarise(resampled)
    names = list(point)
    widths = [point[name].size for name in names]
    found = estimates(
        np.hstack([point[name].reshape(-1) for name in names]),
        np.hstack([boot[name].reshape(n_boot, w) for name, w in zip(names, widths, strict=True)]),
        int(sizes.sum()),
    )
    bounds = np.cumsum([0, *widths])
    return {name: found[bounds[i] : bounds[i + 1]] for i, name in enumerate(names)}


def divide(numerator: FloatArray, denominator: FloatArray, fill: float) -> FloatArray:
    """Elementwise ``numerator / denominator``, ``fill`` where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, fill, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out
