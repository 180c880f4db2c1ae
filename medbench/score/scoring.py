"""Score tables: the answers of a suite turned into per-variant, per-family, per-model, pair
and noise-floor tables with intervals (remembered for the same input)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from medbench.score import metrics
from medbench.score.answers import ScoringLayout, with_image_columns
from medbench.score.images import ImageTables, score_images
from medbench.score.matrices import Group, Matrix, _encode, _est, _group_labels, _groups, _matrix
from medbench.score.pairs import _score_pairs
from medbench.score.reliance import ORIGINAL, has_image_variants

SCORES_SCHEMA_VERSION = 5
"""2: answer rows carry `parser_version`. 3: the fragility table gains `all_variants_f1` and
the noise floor, the models table `all_variants_f1` and `mean_worst_f1` (with CIs); answers
gain `group` (and `replicate`), layout.json gains `groups` (clustered tasks). 4: answers gain
`image_variant` and `image_transform`; with image variants, layout.json gains
`image_variants`, the models table visual reliance, and `image_variants.csv`, `reliance.csv`
and `reliance_pairs.csv` are written. 5: `image_variants.csv` gains `severity` and `ssim`;
with ablations, `quadrants.csv` and `quadrant_models.csv` are written, with severity levels
`severity.csv` and `severity_models.csv`."""


@dataclass
class ScoreTables:
    """The published tables."""

    scores: pd.DataFrame
    """Per (model, task, family, variant, pipeline): n, f1_all, ... with CIs, chance."""
    fragility: pd.DataFrame
    """Per (model, task, family, pipeline): disagreement, flip_rate, ... with CIs; the noise
    floor where replicates were run."""
    models: pd.DataFrame
    """Per (model, pipeline): fragility index, all-variants F1 (the headline), mean and
    worst-variant f1_all over tasks, with CIs."""
    pairs: pd.DataFrame
    """Per (model, base, task, family, variant): paired differences and McNemar's test."""
    image_variants: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, task, family, pipeline, image variant): F1 and image fragility (empty when
    every answer saw the original image)."""
    reliance: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, task, family, pipeline): visual reliance and F1 without the image."""
    reliance_pairs: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, base, task, family, pipeline): the pair's reliance and no-image F1 difference."""
    severity: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, task, family, pipeline, perturbation, severity): F1, image fragility and
    SSIM along each severity curve, and the curve's rAUC (`medbench.score.severity`)."""
    severity_models: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, pipeline): the mean rAUC over its curves, with its CI."""
    quadrants: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, task, family, pipeline): the shares of images that are ideal, fragile,
    dangerous or worst (`medbench.score.quadrants`)."""
    quadrant_models: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (model, pipeline): the quadrant shares over tasks, images pooled."""


VARIANT_METRICS = (
    "f1_all",
    "f1_answered",
    "accuracy",
    "balanced_accuracy",
    "refusal_rate",
    "unparseable_rate",
    "kappa",
)
FAMILY_METRICS = (
    "disagreement",
    "prompt_sensitivity",
    "flip_rate",
    "refusal_flip_rate",
    "fleiss_kappa",
    "spread",
    "worst_f1",
    "all_variants_f1",
    "all_variants_kappa",
)

MODEL_METRICS = {
    "all_variants_kappa": metrics.mean_all_variants_kappa,  # the headline
    "all_variants_f1": metrics.mean_all_variants_f1,
    "mean_kappa": metrics.mean_kappa,
    "mean_worst_kappa": metrics.mean_worst_kappa,
    "mean_f1_all": metrics.mean_f1_all,
    "mean_worst_f1": metrics.mean_worst_f1,
}
"""The models table's label-family scores over tasks, each with its stratified CI."""


def _score_variants(
    answers: pd.DataFrame, encoded: pd.DataFrame, layout: ScoringLayout
) -> pd.DataFrame:
    keys = ["model", "task", "family", "variant", "pipeline"]
    scored = _groups(encoded, keys)
    truth_all, pred_all = encoded["_t"].to_numpy(), encoded["_p"].to_numpy()
    rows = []
    for group, index in _groups(answers, keys).items():
        model, task, family, variant, pipeline = group
        classes = layout.classes[task][family]
        mine = scored.get(group, np.zeros(0, dtype=np.int64))
        row: dict[str, Any] = dict(zip(keys, group, strict=True))
        row["n"], row["n_failed"] = len(mine), len(index) - len(mine)
        if len(mine) == 0:
            rows.append(row)
            continue
        truth, pred = truth_all[mine], pred_all[mine]
        groups = _group_labels(encoded.iloc[mine]) if task in layout.groups else None
        scores = metrics.score_variant(
            truth, pred, len(classes), seed=layout.seed, n_boot=layout.n_boot, groups=groups
        )
        chance = metrics.chance_f1(np.bincount(truth, minlength=len(classes)))
        row["chance_f1"] = chance
        for name in VARIANT_METRICS:
            row.update(_est(name, getattr(scores, name)))
        counts = np.bincount(truth, minlength=len(classes))
        row["chance_p"] = metrics.chance_p_value(scores.f1_all.value, counts, seed=layout.seed)
        row["worse_than_chance"] = metrics.worse_than_chance(
            scores.f1_all.value, counts, seed=layout.seed
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _score_families(
    answers: pd.DataFrame, matrices: dict[Group, Matrix], layout: ScoringLayout
) -> pd.DataFrame:
    rows = []
    keys = ["model", "task", "family", "pipeline"]
    for group in _groups(answers, keys):
        model, task, family, pipeline = group
        classes, variants = layout.classes[task][family], layout.variants[family]
        empty: Matrix = (np.zeros((0, 0)), np.zeros(0), [], None)
        matrix, truth, images, groups = matrices.get((model, task, family, pipeline), empty)
        row: dict[str, Any] = dict(zip(keys, group, strict=True))
        row["n_images"], row["n_variants"] = len(images), len(variants)
        if len(images) == 0 or len(variants) < 2:
            rows.append(row)
            continue
        reference = variants.index(layout.references[family])
        scores = metrics.score_family(
            matrix,
            truth,
            len(classes),
            reference,
            seed=layout.seed,
            n_boot=layout.n_boot,
            groups=groups,
        )
        for name in FAMILY_METRICS:
            row.update(_est(name, getattr(scores, name)))
        for variant, pdr in zip(variants, scores.pdr, strict=True):
            row[f"pdr.{variant}"] = pdr.value
        rows.append(row)
    return pd.DataFrame(rows)


def _score_models(
    answers: pd.DataFrame, matrices: dict[Group, Matrix], layout: ScoringLayout
) -> pd.DataFrame:
    rows = []
    for model, pipeline in _groups(answers, ["model", "pipeline"]):
        row: dict[str, Any] = {"model": model, "pipeline": pipeline}
        mine = sorted(
            (g, m) for g, m in matrices.items() if (g[0], g[3]) == (model, pipeline) and len(m[2])
        )
        fragile = [m for g, m in mine if len(layout.variants[g[2]]) >= 2]
        if fragile:
            fi = metrics.fragility_index(
                [m[0] for m in fragile],
                seed=layout.seed,
                n_boot=layout.n_boot,
                groups=[m[3] for m in fragile],
                tasks=[g[1] for g, m in mine if len(layout.variants[g[2]]) >= 2],
                images=[m[2] for m in fragile],
            )
            row.update(_est("fragility_index", fi))
        tasks = [
            metrics.TaskAnswers(m[0], m[1], len(layout.classes[g[1]][g[2]]), m[3], g[1], m[2])
            for g, m in mine
            if layout.answer_kinds[g[2]] == "label"
        ]
        if tasks:
            seed, n_boot = layout.seed, layout.n_boot
            for name, of in MODEL_METRICS.items():
                row.update(_est(name, of(tasks, seed=seed, n_boot=n_boot)))
            # distinct tasks: a task asked by two label families counts once
            row["n_tasks"] = len({g[1] for g, _ in mine if layout.answer_kinds[g[2]] == "label"})
        rows.append(row)
    return pd.DataFrame(rows)


def _noise_floors(
    encoded: pd.DataFrame, matrices: dict[Group, Matrix], layout: ScoringLayout
) -> pd.DataFrame:
    """Per (model, task, family, direct): the disagreement of the reference answers with their
    replicates over the images answered both times, with its CI (cluster-aware)."""
    rows = []
    replicates = encoded[encoded["replicate"] > 0]
    for (model, task, family), index in _groups(replicates, ["model", "task", "family"]).items():
        again = replicates.iloc[index]
        first = matrices.get((model, task, family, "direct"))
        if first is None or family not in layout.references:
            continue
        column = layout.variants[family].index(layout.references[family])
        position = {sample: i for i, sample in enumerate(first[2])}
        keep = [i for i, sample in enumerate(again["sample"]) if sample in position]
        if not keep:
            continue
        at = [position[again["sample"].iloc[i]] for i in keep]
        groups = None if first[3] is None else first[3][at]
        floor = metrics.noise_floor(
            first[0][at, column],
            again["_p"].to_numpy()[keep],
            len(layout.classes[task][family]),
            seed=layout.seed,
            n_boot=layout.n_boot,
            groups=groups,
        )
        row = {"model": model, "task": task, "family": family, "pipeline": "direct"}
        rows.append({**row, "noise_floor_n": len(keep), **_est("noise_floor", floor)})
    return pd.DataFrame(rows)


def _with_noise_floors(fragility: pd.DataFrame, floors: pd.DataFrame) -> pd.DataFrame:
    """The fragility table with the noise floor beside each measured row, and whether the
    fragility is above it: its CI's lower end over the noise floor's upper end."""
    if floors.empty or fragility.empty or "disagreement_lo" not in fragility.columns:
        return fragility
    merged = fragility.merge(floors, on=["model", "task", "family", "pipeline"], how="left")
    measured = merged["noise_floor"].notna() & merged["disagreement_lo"].notna()
    above = merged["disagreement_lo"] > merged["noise_floor_hi"]
    merged["above_noise_floor"] = [
        bool(a) if m else None for a, m in zip(above, measured, strict=True)
    ]
    return merged


_SCORED: dict[str, ScoreTables] = {}
"""The last tables scored in this process, by the content of their input (see score_answers)."""
SCORED_KEPT = 4
"""How many inputs' tables `_SCORED` keeps: a run scores its answers, its likelihood answers,
then its answers again for the local site's records, so one would not be enough."""


def _input_digest(answers: pd.DataFrame, layout: ScoringLayout) -> str:
    rows = answers[sorted(answers.columns)].to_csv(index=False, lineterminator="\n")
    layout_json = json.dumps(layout.to_json(), sort_keys=True)
    return hashlib.sha256(f"{layout_json}\n{rows}".encode()).hexdigest()


def score_answers(answers: pd.DataFrame, layout: ScoringLayout) -> ScoreTables:
    """Every published table from parsed answers; deterministic for the layout's seed.

    The same rows (same values, same order) and layout scored twice in one process, as
    `medbench run` does for its results and then for its local site's records, are scored
    once: the second call gets copies of the first call's tables (the last SCORED_KEPT
    inputs are kept).
    """
    key = _input_digest(answers, layout)
    tables = _SCORED.pop(key, None)
    if tables is None:
        tables = _score(answers, layout)
    _SCORED[key] = tables  # the most recent last
    while len(_SCORED) > SCORED_KEPT:
        del _SCORED[next(iter(_SCORED))]
    return ScoreTables(*(frame.copy() for frame in _frames(tables)))


def _frames(tables: ScoreTables) -> tuple[pd.DataFrame, ...]:
    return tuple(getattr(tables, f.name) for f in fields(tables))


def _score(answers: pd.DataFrame, layout: ScoringLayout) -> ScoreTables:
    if "replicate" not in answers.columns:
        answers = answers.assign(replicate=0)
    answers = with_image_columns(answers)
    every_image = answers[answers["replicate"] == 0]
    # The prompt-side tables read the original image's answers only.
    answers = answers[answers["image_variant"] == ORIGINAL]
    replicated = _encode(answers[answers["replicate"] > 0], layout)
    answers = answers[answers["replicate"] == 0]
    encoded = _encode(answers, layout)
    matrices: dict[Group, Matrix] = {}
    for group, index in _groups(encoded, ["model", "task", "family", "pipeline"]).items():
        model, task, family, pipeline = group
        matrices[(model, task, family, pipeline)] = _matrix(
            encoded.iloc[index], layout.variants[family], task in layout.groups
        )
    models = _score_models(answers, matrices, layout)
    images = (
        score_images(_encode(every_image, layout), layout.image_layout())
        if has_image_variants(every_image)
        else ImageTables()
    )
    if not images.models.empty and not models.empty:
        models = models.merge(images.models, on=["model", "pipeline"], how="left")
    return ScoreTables(
        scores=_score_variants(answers, encoded, layout),
        fragility=_with_noise_floors(
            _score_families(answers, matrices, layout),
            _noise_floors(replicated, matrices, layout),
        ),
        models=models,
        pairs=_score_pairs(matrices, layout),
        image_variants=images.image_variants,
        reliance=images.reliance,
        reliance_pairs=images.reliance_pairs,
        severity=images.severity,
        severity_models=images.severity_models,
        quadrants=images.quadrants,
        quadrant_models=images.quadrant_models,
    )


def finite(value: Any) -> Any:
    """A JSON-safe number: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
