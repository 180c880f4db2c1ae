"""Severity curves: F1 and image fragility as a perturbation grows, and their relative robustness.

A *perturbation* is an image transform with its parameters other than `severity`, named
`transform(key=value,...)` with the keys sorted (`exposure(direction=under)`), or by the bare
transform where it has no other parameter (`bias_field`). Only image variants whose transform
JSON holds a whole-number `severity` lie on a curve; the others (`jpeg`, `rotate`, ... and the
ablations) are perturbations of their own, scored in `image_variants` only. Where two image
variants are one perturbation at one severity, the first by id is on the curve.

`severity` table, per (model, task, family, pipeline, perturbation) with at least one level,
over R: the (sample, prompt variant) rows answered on the original image and under at least
one of the curve's levels (each level's own rows R_s are those of its `image_variants` row):

- severity 0, the original image: `f1_all` of the original-image answers over R with its CI;
  `image_fragility` 0 and `ssim` 1 by definition;
- severity s: the image variant's `image_variants` numbers, read from there: `f1_all` over R_s
  and `image_fragility` (the share of R_s whose answer differs from the original's), with CIs,
  and `ssim` (the mean `image_ssim` over its distinct images; NaN where unknown);
- `relative_f1` = F1_s / F1_0 (1 at severity 0);
- `rauc`, the curve's relative robustness (in the spirit of ImageNet-C's relative mCE): the
  mean over the S severities present of F1_s / F1_0, i.e. the area under the curve of F1
  relative to the clean image over the levels present, each level weighing 1/S (levels absent
  from the suite are not interpolated). 1: no loss; it may exceed 1 where a perturbation
  helps. With F1_0 = 0 the ratio is undefined: `rauc` is NaN (a model with no skill on the
  clean images has no robustness to lose). Its 95% interval is the expanded percentile
  bootstrap over images (or the task's clusters), each resample drawing an image's clean and
  perturbed answers, under every prompt variant, together (`metrics.mean_relative_f1`).

`severity_models` table, per (model, pipeline): `rauc`, the mean of the curves' rAUC over
(task, label family, perturbation) with F1_0 > 0 (label families, as the models table's F1
means; `n_curves` of them, `n_curves_undefined` left out for F1_0 = 0), with a stratified
bootstrap interval: each task's images resampled within it, one resample shared by every
family and perturbation of the task, clean and perturbed F1 from the same resample; resamples
in which some curve's clean F1 is 0 are left out of the interval.
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
    IMAGE_KEYS,
    ORIGINAL,
    ImageLayout,
    Paired,
    _est,
    _row_ids,
    describe_transform,
)

CURVE_KEYS = ["model", "task", "family", "pipeline", "perturbation"]
"""The columns that identify a curve (with `severity`, a row of the `severity` table)."""
_READ = ("f1_all", "image_fragility")
"""The image-variant numbers (with their CIs) a level's row reads off `image_variants`."""


@dataclass(frozen=True)
class Curve:
    """One perturbation's answers: a row per (sample, prompt variant) answered on the original
    image and under some level, clean answers first, then one column per level."""

    transform: str
    levels: list[tuple[int, str]]
    """(severity, image variant id) of each level column, by severity."""
    answers: NDArray[Any]
    """(rows, 1 + levels) codes: the original image's, then each level's (`NOT_ASKED`)."""
    truth: NDArray[Any]
    clusters: NDArray[Any]
    ids: NDArray[Any]
    """An id per row: its (sample, prompt variant)."""
    samples: frozenset[str]
    """The images the rows ask about."""


def _levels(
    paired: Mapping[tuple[str, ...], Paired], transforms: Mapping[str, str]
) -> dict[tuple[str, ...], dict[int, str]]:
    """(model, task, family, pipeline, perturbation) -> severity -> image variant id."""
    found: dict[tuple[str, ...], dict[int, str]] = {}
    for key in sorted(paired):
        perturbation, severity = describe_transform(transforms.get(key[4], ""))
        if severity is None or not paired[key].keys:
            continue
        levels = found.setdefault((*key[:4], perturbation), {})
        levels.setdefault(severity, key[4])  # sorted keys: the first id wins
    return found


def _curve(
    key: tuple[str, ...], levels: dict[int, str], paired: Mapping[Any, Paired], transform: str
) -> Curve:
    order = sorted(levels.items())
    parts = [paired[(*key[:4], variant)] for _, variant in order]
    ids = [_row_ids(p.keys) for p in parts]
    union = np.unique(np.concatenate(ids))
    answers = np.full((len(union), 1 + len(parts)), metrics.NOT_ASKED, dtype=np.int64)
    truth = np.zeros(len(union), dtype=np.int64)
    clusters = np.empty(len(union), dtype=object)
    for column, (p, mine) in enumerate(zip(parts, ids, strict=True), start=1):
        at = np.searchsorted(union, mine)
        answers[at, 0], answers[at, column] = p.original, p.changed
        truth[at], clusters[at] = p.truth, p.clusters
    samples = frozenset(sample for p in parts for sample, _ in p.keys)
    return Curve(transform, order, answers, truth, clusters, union, samples)


def curves_of(
    paired: Mapping[tuple[str, ...], Paired], layout: ImageLayout, transforms: Mapping[str, str]
) -> dict[tuple[str, ...], Curve]:
    """Every perturbation's curve, by (model, task, family, pipeline, perturbation)."""
    return {
        key: _curve(key, levels, paired, layout.transforms.get(levels[min(levels)], ""))
        for key, levels in sorted(_levels(paired, transforms).items())
    }


def _task_answers(key: tuple[str, ...], curve: Curve, layout: ImageLayout) -> metrics.TaskAnswers:
    k = len(layout.classes[key[1]][key[2]])
    return metrics.TaskAnswers(curve.answers, curve.truth, k, curve.clusters, key[1], curve.ids)


def _curve_rows(
    key: tuple[str, ...],
    curve: Curve,
    image_rows: Mapping[tuple[str, ...], dict[str, Any]],
    layout: ImageLayout,
) -> list[dict[str, Any]]:
    seed, n_boot = layout.seed, layout.n_boot
    rauc, _ = metrics.mean_relative_f1(
        [_task_answers(key, curve, layout)], seed=seed, n_boot=n_boot
    )
    clean = metrics.score_variant(
        curve.truth,
        curve.answers[:, 0],
        len(layout.classes[key[1]][key[2]]),
        seed=seed,
        n_boot=n_boot,
        groups=curve.clusters,
    ).f1_all
    head: dict[str, Any] = dict(zip(CURVE_KEYS, key, strict=True)) | {"transform": curve.transform}
    tail = _est("rauc", rauc)
    rows = [
        head
        | {"severity": 0, "image_variant": ORIGINAL}
        | {"n": len(curve.ids), "n_images": len(curve.samples)}
        | _est("f1_all", clean)
        | {"image_fragility": 0.0, "image_fragility_lo": 0.0, "image_fragility_hi": 0.0}
        | {"ssim": 1.0, "relative_f1": 1.0 if clean.value > 0 else np.nan}
        | tail
    ]
    for severity, variant in curve.levels:
        found = image_rows[(*key[:4], variant)]
        row = head | {"severity": severity, "image_variant": variant}
        row |= {"n": found["n"], "n_images": found["n_images"]}
        for name in _READ:
            row |= {n: found[n] for n in (name, f"{name}_lo", f"{name}_hi")}
        f1 = float(found["f1_all"])
        row |= {"ssim": found.get("ssim", np.nan)}
        row |= {"relative_f1": f1 / clean.value if clean.value > 0 else np.nan} | tail
        rows.append(row)
    return rows


def score_severity(
    paired: Mapping[tuple[str, ...], Paired],
    image_rows: pd.DataFrame,
    layout: ImageLayout,
    transforms: Mapping[str, str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `severity` and `severity_models` tables (both empty where no image variant has a
    severity); `image_rows` is the `image_variants` table, `transforms` image variant id ->
    its transform's JSON text."""
    curves = curves_of(paired, layout, transforms)
    if not curves:
        return pd.DataFrame(), pd.DataFrame()
    by_key = {
        tuple(str(r[k]) for k in IMAGE_KEYS): {str(k): v for k, v in r.items()}
        for r in image_rows.to_dict("records")
    }
    rows = [row for key, curve in curves.items() for row in _curve_rows(key, curve, by_key, layout)]
    table = pd.DataFrame(rows).astype({"severity": "int64"})
    return table, _score_models(curves, layout)


def _score_models(curves: Mapping[tuple[str, ...], Curve], layout: ImageLayout) -> pd.DataFrame:
    rows = []
    for model, pipeline in sorted({(k[0], k[3]) for k in curves}):
        mine = [
            (k, c)
            for k, c in curves.items()
            if (k[0], k[3]) == (model, pipeline) and layout.answer_kinds.get(k[2]) == "label"
        ]
        if not mine:
            continue
        rauc, undefined = metrics.mean_relative_f1(
            [_task_answers(k, c, layout) for k, c in mine], seed=layout.seed, n_boot=layout.n_boot
        )
        row: dict[str, Any] = {"model": model, "pipeline": pipeline} | _est("rauc", rauc)
        row |= {"n_curves": len(mine) - undefined, "n_curves_undefined": undefined}
        row |= {
            "n_tasks": len({k[1] for k, _ in mine}),
            "n_perturbations": len({k[4] for k, _ in mine}),
        }
        rows.append(row)
    return pd.DataFrame(rows)
