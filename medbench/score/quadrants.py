"""Four quadrants per image: is its answer the same under every wording, does it need the image?

Per (model, task, family, pipeline), an image is classified where it has (i) original-image
answers under at least 2 prompt variants of the family and (ii) under the family's reference
variant (`ScoringLayout.references`) both an original-image answer and an ablation answer (the
suite's `no_image` and `blank` image variants; the first by id of each kind, as visual reliance
takes them). Answers are compared as codes: a refusal and an unparseable answer are answers
(each its own value, as in every agreement metric); a failed job (status `error`) is no answer
and is left out, as in every table.

- *consistent*: every original-image answer of the image, under each prompt variant it was
  asked, is the same;
- *relies*: under the reference variant, the original-image answer differs from the answer
  under some ablation the image was asked: `no_image`, or `blank`, or either where both were
  asked. So *does not rely* means the same answer with no image and with a blank image alike:
  the model gives this diagnosis without looking.

Quadrants: *ideal* (consistent, relies), *fragile* (inconsistent, relies), *dangerous*
(consistent, does not rely: a stable answer that does not come from the image) and *worst*
(inconsistent, does not rely). `quadrants` gives each share of the n images with a 95%
expanded percentile bootstrap interval over images (whole clusters for a clustered task, as
every interval of the tables; one shared resample for the four shares), `quadrant_models` the
shares per (model, pipeline) over every (task, family) entry's images pooled (an image counts
once per family that classifies it), each task's images resampled within it, one resample
shared by the task's families. The `dangerous` share is the headline. A share of 0 or 1 has
the degenerate interval of a bootstrap (every resample agrees).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medbench.score import metrics
from medbench.score.reliance import (
    ABLATIONS,
    ORIGINAL,
    RELIANCE_KEYS,
    ImageLayout,
    _clusters,
    _est,
    ablation_of,
)

QUADRANTS = ("ideal", "fragile", "dangerous", "worst")
"""The quadrants, in code order: 2 * (not relies) + (not consistent)."""


@dataclass(frozen=True)
class Classified:
    """The images of one (model, task, family, pipeline) in their quadrants, sorted by sample."""

    samples: NDArray[Any]
    quadrant: NDArray[Any]
    """Index into QUADRANTS of each image."""
    clusters: NDArray[Any]
    """The image (or the task's cluster) of each: what the bootstrap resamples."""
    ablations: tuple[str, ...]
    """The ablation kinds (`no_image`, `blank`) some classified image was compared with."""


def _answers(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Samples x `column` values: the answer code (NaN where not asked)."""
    table = rows.groupby(["sample", column], sort=True)["_p"].first().unstack(column)
    return table.astype("float64")


def _classify(
    rows: pd.DataFrame, reference: str, ablations: Mapping[str, str], clustered: bool
) -> Classified | None:
    original = rows[rows["image_variant"] == ORIGINAL]
    ablated = rows[rows["image_variant"].isin(list(ablations)) & (rows["variant"] == reference)]
    if original.empty or ablated.empty:
        return None
    answers = _answers(original, "variant")
    if reference not in answers.columns:
        return None
    without = _answers(ablated, "image_variant").reindex(answers.index)
    with_image = answers[reference]
    asked = answers.notna().sum(axis=1) >= 2
    keep = (asked & with_image.notna() & without.notna().any(axis=1)).to_numpy()
    if not keep.any():
        return None
    consistent = (answers.nunique(axis=1) == 1).to_numpy()
    differs = without.notna() & without.ne(with_image, axis=0)
    relies = differs.any(axis=1).to_numpy()
    quadrant = 2 * (~relies).astype(np.int64) + (~consistent).astype(np.int64)
    first = original.drop_duplicates("sample").set_index("sample").reindex(answers.index)
    clusters = _clusters(first.reset_index(), clustered)
    used = without[keep].notna().any(axis=0)
    kinds = tuple(
        sorted({ablations[str(v)] for v, u in used.items() if u}, key=list(ABLATIONS).index)
    )
    return Classified(
        answers.index.to_numpy(dtype=str)[keep], quadrant[keep], clusters[keep], kinds
    )


def classify_images(
    encoded: pd.DataFrame, layout: ImageLayout
) -> dict[tuple[str, ...], Classified]:
    """Every (model, task, family, pipeline)'s classified images (none without an ablation)."""
    ablations = {v: a for a in ABLATIONS if (v := ablation_of(layout, a)) is not None}
    found: dict[tuple[str, ...], Classified] = {}
    if encoded.empty or not ablations:
        return found
    for group, rows in encoded.groupby(RELIANCE_KEYS, sort=True):
        key = tuple(str(k) for k in group)
        reference = layout.references.get(key[2])
        if reference is None:
            continue
        classified = _classify(rows, reference, ablations, key[1] in layout.clustered)
        if classified is not None:
            found[key] = classified
    return found


def _shares(estimates: list[metrics.Estimate]) -> dict[str, float]:
    row: dict[str, float] = {}
    for name, estimate in zip(QUADRANTS, estimates, strict=True):
        row |= _est(name, estimate)
    return row


def score_quadrants(
    encoded: pd.DataFrame, layout: ImageLayout
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `quadrants` and `quadrant_models` tables (empty without an ablation or a family
    asked under two prompt variants)."""
    classified = classify_images(encoded, layout)
    seed, n_boot = layout.seed, layout.n_boot
    rows = []
    for key, c in classified.items():
        shares = metrics.pooled_shares(
            [c.quadrant], len(QUADRANTS), seed=seed, n_boot=n_boot, groups=[c.clusters]
        )
        row: dict[str, Any] = dict(zip(RELIANCE_KEYS, key, strict=True))
        row |= {"reference": layout.references[key[2]], "ablation": "+".join(c.ablations)}
        rows.append(row | {"n_images": len(c.samples)} | _shares(shares))
    models = []
    for model, pipeline in sorted({(k[0], k[3]) for k in classified}):
        mine = [(k, c) for k, c in classified.items() if (k[0], k[3]) == (model, pipeline)]
        shares = metrics.pooled_shares(
            [c.quadrant for _, c in mine],
            len(QUADRANTS),
            seed=seed,
            n_boot=n_boot,
            groups=[c.clusters for _, c in mine],
            tasks=[k[1] for k, _ in mine],
            images=[c.samples for _, c in mine],
        )
        row = {"model": model, "pipeline": pipeline}
        row |= {"n_images": sum(len(c.samples) for _, c in mine)}
        row |= {"n_tasks": len({k[1] for k, _ in mine})}
        found = _shares(shares)
        headline = {n: found.pop(n) for n in ("dangerous", "dangerous_lo", "dangerous_hi")}
        models.append(row | headline | found)
    return pd.DataFrame(rows), pd.DataFrame(models)
