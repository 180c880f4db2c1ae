"""The noise floor of fragility: how often the same prompt, asked again, is answered otherwise."""

# A replicate answers the reference variant a second time for the same images under another
# batch arrangement. Its disagreement with the first answer is what fragility would read if
# no wording changed at all: the numerical noise of batched inference (or of sampling).

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from medbench.score.metrics._bootstrap import CONFIDENCE, Estimate, bootstrap_summary
from medbench.score.metrics._codes import (
    FloatArray,
    as_predictions,
    check_n_boot,
    check_same_images,
)
from medbench.score.metrics._family import agreement_features, disagreement_from
from medbench.score.metrics._units import as_clusters, group_units


def noise_floor(
    first: npt.ArrayLike,
    replicate: npt.ArrayLike,
    n_classes: int,
    *,
    seed: int = 0,
    n_boot: int = 1000,
    groups: npt.ArrayLike | None = None,
) -> Estimate:
    """Share of images whose replicate answer differs from the first: ``(1/n) sum_i [a_i != r_i]``.

    The disagreement of the two-column matrix (first, replicate), comparable with the
    fragility (the disagreement of a pair of variants). Its interval is the exact
    Clopper-Pearson 95% interval of the count of differing images (statsmodels' ``beta``
    method), valid at the few images a replicate set holds: 0 differences in 8 images give
    [0, 0.369], where the bootstrap gives [0, 0]. With ``groups`` the images of a cluster are
    not independent, so the interval spans both the exact one and the cluster bootstrap's.
    NaN with ``n_boot=0``. Codes as in ``score_variant``.
    """
    from statsmodels.stats.proportion import proportion_confint  # type: ignore[import-untyped, unused-ignore]

    a = as_predictions(first, n_classes, name="first")
    r = as_predictions(replicate, n_classes, name="replicate")
    check_same_images(len(a), len(r), "replicate", "first")
    check_n_boot(n_boot)
    clusters = None if groups is None else as_clusters(groups, len(a))
    differing = int((a != r).sum())
    value = differing / len(a)
    if n_boot == 0:
        return Estimate(value, math.nan, math.nan)
    lo, hi = (
        float(x) for x in proportion_confint(differing, len(a), alpha=1 - CONFIDENCE, method="beta")
    )
    if clusters is not None and len(np.unique(clusters)) < len(clusters):
        units = group_units(np.column_stack([a, r]), clusters)
        features = units.pool(agreement_features(units.rows))

        def summarise(sums: FloatArray) -> dict[str, FloatArray]:
            return {"noise_floor": disagreement_from(sums, 2)}

        rng = np.random.default_rng(seed)
        boot = bootstrap_summary(features, units.sizes, summarise, n_boot, rng)["noise_floor"][0]
        lo, hi = min(lo, boot.lo), max(hi, boot.hi)
    return Estimate(value, lo, hi)
