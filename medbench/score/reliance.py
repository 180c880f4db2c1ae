"""Image variants scored: F1 per image variant, image fragility, visual reliance, pair differences.

An answer's `image_variant` names the image it saw: `original`, a harmless transform of it
(`jpeg`, `rotate`, ...) or an ablation (`no_image`, `blank`, ...). Every comparison pairs an
answer with the original-image answer to the same sample under the same prompt variant; the
bootstraps resample whole images (or the task's clusters), since one image is asked under
several prompt variants. The input is `scoring`'s encoded rows (codes `_t`, `_p`); the metrics
are `medbench.score.metrics`' own (no bootstrap of its own here). Beside each image variant's
scores stand its `severity` (from its transform's JSON, where it has one) and `ssim`: the mean
over the variant's distinct images of `image_ssim`, the SSIM between the original and the
varied image as the model received them (NaN where unknown: ablations, old answers).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medbench.score import metrics

ORIGINAL = "original"
"""The `image_variant` of an answer to the untouched image."""
ABLATIONS = ("no_image", "blank")
"""The ablations that visual reliance is measured with, in column order."""
IMAGE_KEYS = ["model", "task", "family", "pipeline", "image_variant"]
RELIANCE_KEYS = ["model", "task", "family", "pipeline"]
RELIANCE_PAIR_KEYS = ["model", "base", "task", "family", "pipeline"]
SSIM_COLUMN = "image_ssim"
"""The answers' SSIM between the original and the varied image as the model received it (NaN
for the original, `no_image`, `mismatched` or where unknown; frames without it: all NaN)."""


@dataclass(frozen=True)
class ImageLayout:
    """What image-variant scoring needs of the scoring layout."""

    classes: dict[str, dict[str, list[str]]]
    """task -> family -> the classes of its answer space."""
    transforms: dict[str, str]
    """image variant id -> its transform (or ablation) name."""
    answer_kinds: dict[str, str]
    """family -> `label` or `yes_no`."""
    clustered: frozenset[str] = frozenset()
    """Tasks whose images are grouped (patients): their bootstraps resample groups."""
    pairs: list[tuple[str, str]] = field(default_factory=list)
    seed: int = 0
    n_boot: int = 1000
    references: dict[str, str] = field(default_factory=dict)
    """family -> its reference prompt variant (the one ablations are asked under)."""


@dataclass(frozen=True)
class Paired:
    """One (model, task, family, pipeline, image variant): its answers beside the original's,
    one row per (sample, prompt variant) answered both ways, sorted."""

    keys: list[tuple[str, str]]
    """(sample, prompt variant) of each row."""
    original: NDArray[Any]
    changed: NDArray[Any]
    """The answer codes to the original image and to the image variant."""
    truth: NDArray[Any]
    clusters: NDArray[Any]
    """The image (or the task's cluster) of each row: what the bootstrap resamples."""


def has_image_variants(answers: pd.DataFrame) -> bool:
    """Whether any answer saw something else than the original image."""
    return "image_variant" in answers.columns and bool(
        (answers["image_variant"].fillna(ORIGINAL) != ORIGINAL).any()
    )


def original_only(answers: pd.DataFrame) -> pd.DataFrame:
    """The answers to the original image (a frame without the column: all of them)."""
    if "image_variant" not in answers.columns:
        return answers
    return answers[answers["image_variant"].fillna(ORIGINAL) == ORIGINAL]


def describe_transform(text: str) -> tuple[str, int | None]:
    """An image variant's perturbation and severity from its transform's JSON text.

    The perturbation is the transform's name with its parameters other than `severity` and
    `seed` (a draw, not a physical setting), sorted (`exposure(direction=under)`), or the bare
    name where it has none (`bias_field`); the
    severity is the whole number under `severity`, or None where there is none (`jpeg`,
    `rotate`, ... and the ablations: perturbations of their own, on no curve).
    """
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return "", None
    if not isinstance(data, dict):
        return "", None
    params = {str(k): v for k, v in data.items()}
    name = str(params.pop("transform", ""))
    level = params.pop("severity", None)
    params.pop("seed", None)
    if isinstance(level, float) and level.is_integer():
        level = int(level)
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        params["severity"], level = level, None  # not a level: shown as a parameter
    if params:
        shown = (f"{k}={_parameter(v)}" for k, v in sorted(params.items()))
        name += f"({','.join(shown)})"
    return name, level


def _parameter(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def transforms_of(encoded: pd.DataFrame) -> dict[str, str]:
    """Image variant id -> its transform's JSON text, as the answers carry it."""
    if encoded.empty or "image_transform" not in encoded.columns:
        return {}
    texts = encoded[["image_variant", "image_transform"]].dropna()
    texts = texts[texts["image_transform"] != ""]
    first = texts.groupby("image_variant", sort=True)["image_transform"].first()
    return {str(k): str(v) for k, v in first.items()}


def mean_ssim(encoded: pd.DataFrame) -> dict[tuple[str, str, str], float]:
    """(model, task, image variant) -> the mean `image_ssim` over its distinct images (each
    image's answers averaged first); left out where no image has one."""
    if encoded.empty or SSIM_COLUMN not in encoded.columns:
        return {}
    keys = ["model", "task", "image_variant", "sample"]
    frame = encoded[keys].assign(_ssim=pd.to_numeric(encoded[SSIM_COLUMN], errors="coerce"))
    per_image = frame.groupby(keys, sort=True)["_ssim"].mean()
    per_variant = per_image.groupby(level=[0, 1, 2], sort=True).mean()
    found: dict[tuple[str, str, str], float] = {}
    for (model, task, image_variant), value in zip(
        per_variant.index, per_variant.to_numpy(dtype=float), strict=True
    ):
        if not math.isnan(value):
            found[(str(model), str(task), str(image_variant))] = float(value)
    return found


def _est(prefix: str, e: metrics.Estimate) -> dict[str, float]:
    return {prefix: e.value, f"{prefix}_lo": e.lo, f"{prefix}_hi": e.hi}


def _clusters(rows: pd.DataFrame, clustered: bool) -> NDArray[Any]:
    sample: NDArray[Any] = "sample:" + rows["sample"].astype(str).to_numpy(dtype=object)
    if not clustered:
        return sample
    group = rows["group"].to_numpy(dtype=object)
    labels: NDArray[Any] = np.where(pd.isna(group), sample, "group:" + group.astype(str))
    return labels


def pair_answers(encoded: pd.DataFrame, clustered: frozenset[str]) -> dict[tuple[str, ...], Paired]:
    """Every image variant's answers beside the original ones, by (model, task, family,
    pipeline, image variant); rows answered only one way are left out."""
    out: dict[tuple[str, ...], Paired] = {}
    if encoded.empty:
        return out
    for group, rows in encoded.groupby(RELIANCE_KEYS, sort=True):
        key = tuple(str(k) for k in group)
        rows = rows.assign(_c=_clusters(rows, key[1] in clustered))
        by_variant = {str(v): part for v, part in rows.groupby("image_variant", sort=True)}
        base = by_variant.get(ORIGINAL)
        if base is None:
            continue
        base = base.set_index(["sample", "variant"])
        for image_variant, part in by_variant.items():
            if image_variant == ORIGINAL:
                continue
            both = base.join(part.set_index(["sample", "variant"]), how="inner", rsuffix="_x")
            both = both.sort_index()
            out[(*key, image_variant)] = Paired(
                keys=[(str(s), str(v)) for s, v in both.index],
                original=both["_p"].to_numpy(dtype=np.int64),
                changed=both["_p_x"].to_numpy(dtype=np.int64),
                truth=both["_t"].to_numpy(dtype=np.int64),
                clusters=both["_c"].to_numpy(dtype=object),
            )
    return out


def _original_rows(encoded: pd.DataFrame, layout: ImageLayout) -> list[dict[str, Any]]:
    """The `original` row of each (model, task, family, pipeline): F1 over all its answers."""
    rows = []
    originals = encoded[encoded["image_variant"] == ORIGINAL]
    for group, part in originals.groupby(RELIANCE_KEYS, sort=True):
        model, task, family, pipeline = (str(k) for k in group)
        scores = metrics.score_variant(
            part["_t"].to_numpy(dtype=np.int64),
            part["_p"].to_numpy(dtype=np.int64),
            len(layout.classes[task][family]),
            seed=layout.seed,
            n_boot=layout.n_boot,
            groups=_clusters(part, task in layout.clustered),
        )
        row: dict[str, Any] = {"model": model, "task": task, "family": family}
        row |= {"pipeline": pipeline, "image_variant": ORIGINAL, "transform": ORIGINAL}
        row["severity"] = None
        row |= {"n": len(part), "n_images": int(part["sample"].nunique())}
        rows.append(row | _est("f1_all", scores.f1_all))
    return rows


def score_image_variants(
    paired: Mapping[tuple[str, ...], Paired],
    layout: ImageLayout,
    transforms: Mapping[str, str] | None = None,
    ssim: Mapping[tuple[str, str, str], float] | None = None,
) -> list[dict[str, Any]]:
    """Per image variant: its F1, the original's F1 on the same answers, their difference and
    the image fragility (the share of answers that differ from the original's), with CIs; its
    severity (from `transforms`, id -> JSON text) and mean SSIM (`ssim`, see `mean_ssim`)."""
    rows = []
    for key, p in sorted(paired.items()):
        model, task, family, pipeline, image_variant = key
        row: dict[str, Any] = dict(zip(IMAGE_KEYS, key, strict=True))
        row["transform"] = layout.transforms.get(image_variant, "")
        row["severity"] = describe_transform((transforms or {}).get(image_variant, ""))[1]
        row["n"], row["n_images"] = len(p.keys), len({s for s, _ in p.keys})
        row["ssim"] = (ssim or {}).get((model, task, image_variant), math.nan)
        if not p.keys:
            rows.append(row)
            continue
        k = len(layout.classes[task][family])
        both = metrics.score_family(
            np.column_stack([p.original, p.changed]),
            p.truth,
            k,
            0,
            seed=layout.seed,
            n_boot=layout.n_boot,
            groups=p.clusters,
        )
        diff = metrics.paired_f1_difference(
            p.truth,
            p.changed,
            p.original,
            k,
            seed=layout.seed,
            n_boot=layout.n_boot,
            groups=p.clusters,
        )
        row |= _est("f1_all", both.f1_all[1]) | _est("f1_original", both.f1_all[0])
        row |= _est("f1_diff", diff) | _est("image_fragility", both.disagreement)
        rows.append(row)
    return rows


def ablation_of(layout: ImageLayout, ablation: str) -> str | None:
    """The image variant that measures an ablation (the first by id), or None."""
    found = sorted(i for i, t in layout.transforms.items() if t == ablation)
    return found[0] if found else None


def score_reliance(image_rows: pd.DataFrame, layout: ImageLayout) -> pd.DataFrame:
    """Per (model, task, family, pipeline): `reliance_no_image` and `reliance_blank` (the share
    of answers that change without the image, or with a blank one), the F1 with the image and
    without it, and their difference; read off the image-variant rows of the two ablations."""
    chosen = {a: ablation_of(layout, a) for a in ABLATIONS}
    if image_rows.empty or all(v is None for v in chosen.values()):
        return pd.DataFrame()
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for r in image_rows.to_dict("records"):
        for ablation, variant in chosen.items():
            if r["image_variant"] != variant or "image_fragility" not in r:
                continue
            key = tuple(str(r[k]) for k in RELIANCE_KEYS)
            row = rows.setdefault(key, dict(zip(RELIANCE_KEYS, key, strict=True)))
            row[f"n_{ablation}"] = r["n"]
            for suffix in ("", "_lo", "_hi"):
                row[f"reliance_{ablation}{suffix}"] = r[f"image_fragility{suffix}"]
                if ablation == "no_image":
                    row[f"image_f1{suffix}"] = r[f"f1_original{suffix}"]
                    row[f"no_image_f1{suffix}"] = r[f"f1_all{suffix}"]
                    row[f"no_image_f1_diff{suffix}"] = r[f"f1_diff{suffix}"]
    return pd.DataFrame([rows[k] for k in sorted(rows)])


def _row_ids(keys: list[tuple[str, str]]) -> NDArray[Any]:
    """An id per row: its (sample, prompt variant), numbered where a key repeats."""
    seen: dict[tuple[str, str], int] = {}
    ids = []
    for key in keys:
        seen[key] = seen.get(key, -1) + 1
        ids.append(f"{key[0]}|{key[1]}|{seen[key]}")
    return np.array(ids)


def score_model_reliance(
    paired: Mapping[tuple[str, ...], Paired], layout: ImageLayout
) -> pd.DataFrame:
    """Per (model, pipeline): `visual_reliance` (no image) and `visual_reliance_blank`, the mean
    over (task, family) of the share of answers that change, and `mean_no_image_f1` (label
    families), each with a bootstrap CI stratified by task, as the fragility index is."""
    chosen = {a: ablation_of(layout, a) for a in ABLATIONS}
    names = {"no_image": "visual_reliance", "blank": "visual_reliance_blank"}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for model, pipeline in sorted({(k[0], k[3]) for k in paired}):
        row: dict[str, Any] = {"model": model, "pipeline": pipeline}
        for ablation, variant in chosen.items():
            mine = [
                (k, p)
                for k, p in sorted(paired.items())
                if (k[0], k[3], k[4]) == (model, pipeline, variant) and p.keys
            ]
            if not mine:
                continue
            seed, n_boot = layout.seed, layout.n_boot
            # the families of a task ask the same images: one resample per task serves them
            ids = [_row_ids(p.keys) for _, p in mine]
            reliance = metrics.fragility_index(
                [np.column_stack([p.original, p.changed]) for _, p in mine],
                seed=seed,
                n_boot=n_boot,
                groups=[p.clusters for _, p in mine],
                tasks=[k[1] for k, _ in mine],
                images=ids,
            )
            row |= _est(names[ablation], reliance)
            tasks = [
                metrics.TaskAnswers(
                    p.changed[:, None],
                    p.truth,
                    len(layout.classes[k[1]][k[2]]),
                    p.clusters,
                    k[1],
                    i,
                )
                for (k, p), i in zip(mine, ids, strict=True)
                if layout.answer_kinds.get(k[2]) == "label"
            ]
            if ablation == "no_image" and tasks:
                row |= _est(
                    "mean_no_image_f1", metrics.mean_f1_all(tasks, seed=seed, n_boot=n_boot)
                )
        if len(row) > 2:
            out[(model, pipeline)] = row
    return pd.DataFrame([out[k] for k in sorted(out)])


def _common(a: Paired, b: Paired) -> tuple[NDArray[Any], NDArray[Any]]:
    """Row indices of the (sample, prompt variant) keys both answered, in sorted key order."""
    index_b = {key: i for i, key in enumerate(b.keys)}
    ia = [i for i, key in enumerate(a.keys) if key in index_b]
    ib = [index_b[a.keys[i]] for i in ia]
    return np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)


def _test(x: NDArray[Any], y: NDArray[Any], clusters: NDArray[Any]) -> metrics.McNemarResult:
    # Obuchowski's test where answers share an image (or patient), else McNemar's exact test.
    if len(set(clusters)) < len(clusters):
        return metrics.mcnemar_clustered(x, y, clusters)
    return metrics.mcnemar_exact(x, y)


def score_reliance_pairs(
    paired: Mapping[tuple[str, ...], Paired], layout: ImageLayout
) -> pd.DataFrame:
    """Per pair (medical model, base) and (task, family, pipeline): the difference in visual
    reliance (no image) and in no-image F1, paired by (image, prompt variant), with paired
    bootstrap CIs and a test each (on changed answers; on correct no-image answers)."""
    variant = ablation_of(layout, "no_image")
    rows: list[dict[str, Any]] = []
    if variant is None:
        return pd.DataFrame()
    seed, n_boot = layout.seed, layout.n_boot
    for model, base in layout.pairs:
        for key in sorted(k for k in paired if k[0] == model and k[4] == variant):
            _, task, family, pipeline, _ = key
            other = paired.get((base, task, family, pipeline, variant))
            if other is None:
                continue
            a, b = paired[key], other
            ia, ib = _common(a, b)
            if len(ia) == 0:
                continue
            clusters, truth, k = a.clusters[ia], a.truth[ia], len(layout.classes[task][family])
            matrix_a = np.column_stack([a.original[ia], a.changed[ia]])
            matrix_b = np.column_stack([b.original[ib], b.changed[ib]])
            reliance = metrics.paired_disagreement_difference(
                matrix_a, matrix_b, seed=seed, n_boot=n_boot, groups=clusters
            )
            changed_test = _test(
                matrix_a[:, 0] != matrix_a[:, 1], matrix_b[:, 0] != matrix_b[:, 1], clusters
            )
            f1 = metrics.paired_f1_difference(
                truth, a.changed[ia], b.changed[ib], k, seed=seed, n_boot=n_boot, groups=clusters
            )
            f1_test = _test(a.changed[ia] == truth, b.changed[ib] == truth, clusters)
            row: dict[str, Any] = dict(
                zip(RELIANCE_PAIR_KEYS, (model, base, task, family), strict=False)
            )
            row |= {"pipeline": pipeline, "n": len(ia)}
            row |= _est("reliance_diff", reliance) | {"reliance_p": changed_test.p_value}
            row |= _est("no_image_f1_diff", f1) | {"no_image_f1_p": f1_test.p_value}
            rows.append(row)
    return pd.DataFrame(rows)
