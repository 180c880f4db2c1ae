"""The knowledge ladder: where between the image and the answer is the diagnosis lost?

Per (model, task), in rung order: chance, the F1 without the image (when the suite has a
`no_image` image variant), the closed question's generated `f1_all` (mean and best variant),
the likelihood answers' `f1_all` (the offered option the model finds most likely; mean and
best variant), describe then diagnose, a linear probe on each of the model's
embeddings, and a probe on raw pixels, with a one-line reading. `run_probe_stage` measures
the probes for a planned suite and writes `probe.csv`, `ladder.csv` and a t-SNE map per
(model, task).
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medbench.errors import BackendError
from medbench.run import step
from medbench.run.backends import BackendContext
from medbench.score.metrics import chance_f1
from medbench.score.probe.classifier import PIXEL_SIZE, ProbeResult, pixel_features, sample_groups
from medbench.score.probe.embeddings import EmbeddingStore, can_embed, get_embeddings, store_path
from medbench.score.probe.memo import ProbeMemo, array_digest, images_digest, memo_path
from medbench.score.reliance import original_only
from medbench.spec import ProbeStage

if TYPE_CHECKING:
    from medbench.run import Plan
    from medbench.spec.loading import SpecSet
from medbench.score.probe.reading import NEAR_CHANCE, SEPARABLE_MARGIN, _num, reading

PIXELS = "pixels"
ALL_MODELS = "*"
"""The model column of model-free rows (the pixel probe)."""

PROBE_COLUMNS = [
    "model",
    "task",
    "embedding",
    "n",
    "n_classes",
    "dim",
    "k",
    "chance_f1",
    "f1",
    "f1_lo",
    "f1_hi",
    "permutation_f1",
]
LADDER_COLUMNS = [
    "model",
    "task",
    "chance_f1",
    "direct_f1_mean",
    "direct_f1_best",
    "direct_best_variant",
    "likelihood_f1_mean",
    "likelihood_f1_best",
    "likelihood_best_variant",
    "described_f1",
    "described_best",
    "described_f1_mean",
    "probe_vision_f1",
    "probe_vision_f1_lo",
    "probe_vision_f1_hi",
    "probe_projected_f1",
    "probe_projected_f1_lo",
    "probe_projected_f1_hi",
    "pixel_f1",
    "pixel_f1_lo",
    "pixel_f1_hi",
    "reading",
]
PREDICTION_COLUMNS = ["model", "task", "embedding", "sample", "fold", "predicted"]
"""`probe_predictions.csv`: each probed image's out-of-fold prediction by a model's probe,
from which a record's probe F1 is re-derived (`medbench.publish.rungs`)."""
NO_IMAGE_COLUMN = "no_image_f1"
"""The no-image rung, after `chance_f1`: mean over label families of the F1 of the answers
given without the image (a ladder has it only where the suite measured it)."""


def _best(rows: pd.DataFrame) -> tuple[float, str]:
    """The highest f1_all of the rows and its name (ties: the first in sorted order)."""
    rows = rows.dropna(subset=["f1_all"])
    if rows.empty:
        return math.nan, ""
    top = rows.sort_values(["name"]).sort_values("f1_all", ascending=False, kind="stable").iloc[0]
    return float(top["f1_all"]), str(top["name"])


def _no_image(
    reliance: pd.DataFrame | None, families: Sequence[str]
) -> dict[tuple[str, str], float]:
    """(model, task) -> mean over `families` of the direct pipeline's F1 without the image."""
    if reliance is None or reliance.empty or "no_image_f1" not in reliance.columns:
        return {}
    rows = reliance[reliance["family"].isin(list(families)) & (reliance["pipeline"] == "direct")]
    found: dict[tuple[str, str], float] = {}
    for (model, task), part in rows.dropna(subset=["no_image_f1"]).groupby(["model", "task"]):
        found[(str(model), str(task))] = float(part["no_image_f1"].mean())
    return found


def _answer_columns(
    scores: pd.DataFrame, families: Sequence[str], reliance: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Per (model, task): chance, direct mean and best, described best, over `families`;
    with `reliance` (the visual-reliance table) measuring it, the no-image rung too."""
    found = _no_image(reliance, families)
    frame = _scored_columns(scores, families)
    if found:
        rung = [
            found.get((str(m), str(t)), math.nan)
            for m, t in zip(frame["model"], frame["task"], strict=True)
        ]
        frame.insert(list(frame.columns).index("chance_f1") + 1, NO_IMAGE_COLUMN, rung)
    return frame


def _scored_columns(scores: pd.DataFrame, families: Sequence[str]) -> pd.DataFrame:
    columns = ["model", "task", "chance_f1", "direct_f1_mean", "direct_f1_best"]
    columns += ["direct_best_variant", "likelihood_f1_mean", "likelihood_f1_best"]
    columns += ["likelihood_best_variant", "described_f1", "described_best", "described_f1_mean"]
    if scores.empty:
        return pd.DataFrame(columns=columns)
    rows = scores[scores["family"].isin(list(families))].copy()
    rows["name"] = rows["family"] + "/" + rows["variant"]
    out = []
    for (model, task), group in rows.groupby(["model", "task"], sort=True):
        direct = group[group["pipeline"] == "direct"]
        described = group[group["pipeline"].str.startswith("described/")].copy()
        described["name"] = described["pipeline"] + "/" + described["name"]
        likely = group[group["pipeline"].str.startswith("likelihood/")]
        best, best_name = _best(direct)
        likely_best, likely_name = _best(likely)
        described_f1, described_name = _best(described)
        out.append(
            {
                "model": model,
                "task": task,
                "chance_f1": _num(direct["chance_f1"].mean()) if len(direct) else math.nan,
                "direct_f1_mean": _num(direct["f1_all"].mean()) if len(direct) else math.nan,
                "direct_f1_best": best,
                "direct_best_variant": best_name,
                "likelihood_f1_mean": _num(likely["f1_all"].mean()) if len(likely) else math.nan,
                "likelihood_f1_best": likely_best,
                "likelihood_best_variant": likely_name,
                "described_f1": described_f1,
                "described_best": described_name,
                # like with like: the reading compares this mean with the direct mean
                "described_f1_mean": (
                    _num(described["f1_all"].mean()) if len(described) else math.nan
                ),
            }
        )
    return pd.DataFrame(out, columns=columns)


def ladder_rows(
    scores: pd.DataFrame,
    probes: pd.DataFrame,
    families: Sequence[str],
    reliance: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ladder per (model, task) from the score table and the probe table (`probe.csv`).

    `families` names the prompt families (answer kind `label`) whose `f1_all` counts; with
    `reliance` (the visual-reliance table) measuring it, the ladder gains the no-image rung.
    """
    answers = _answer_columns(scores, families, reliance)
    columns = list(LADDER_COLUMNS)
    if NO_IMAGE_COLUMN in answers.columns:
        columns.insert(columns.index("chance_f1") + 1, NO_IMAGE_COLUMN)
    probes = probes if not probes.empty else pd.DataFrame(columns=PROBE_COLUMNS)
    by_model = probes[probes["model"] != ALL_MODELS]
    pixels = probes[(probes["model"] == ALL_MODELS) & (probes["embedding"] == PIXELS)]
    pixel_of = {str(r["task"]): r for _, r in pixels.iterrows()}
    keys = {(str(m), str(t)) for m, t in zip(answers["model"], answers["task"], strict=True)}
    keys |= {(str(m), str(t)) for m, t in zip(by_model["model"], by_model["task"], strict=True)}
    answer_of: dict[tuple[str, str], dict[str, Any]] = {
        (str(r["model"]), str(r["task"])): {str(k): v for k, v in r.items()}
        for r in answers.to_dict("records")
    }
    rows = []
    for model, task in sorted(keys):
        row: dict[str, Any] = {"model": model, "task": task}
        row.update(direct_best_variant="", likelihood_best_variant="", described_best="")
        row.update(answer_of.get((model, task), {}))
        mine = by_model[(by_model["model"] == model) & (by_model["task"] == task)]
        found: dict[str, float] = {}
        for kind in ("vision", "projected"):
            hit = mine[mine["embedding"] == kind]
            f1 = _num(hit["f1"].iloc[0]) if len(hit) else math.nan
            row[f"probe_{kind}_f1"] = f1
            row[f"probe_{kind}_f1_lo"] = _num(hit["f1_lo"].iloc[0]) if len(hit) else math.nan
            row[f"probe_{kind}_f1_hi"] = _num(hit["f1_hi"].iloc[0]) if len(hit) else math.nan
            if len(hit):
                found[kind] = f1
        pixel = pixel_of.get(task)
        for suffix in ("", "_lo", "_hi"):
            row[f"pixel_f1{suffix}"] = _num(pixel[f"f1{suffix}"]) if pixel is not None else math.nan
        if math.isnan(_num(row.get("chance_f1"))):
            fallback = pd.concat([mine["chance_f1"], pixels[pixels["task"] == task]["chance_f1"]])
            row["chance_f1"] = _num(fallback.iloc[0]) if len(fallback) else math.nan
        row["reading"] = reading(
            _written(row["chance_f1"]),
            _written(row.get("direct_f1_mean")),
            {kind: _written(f1) for kind, f1 in found.items()},
            _written(row["pixel_f1"]),
            _written(row.get("described_f1_mean")),
            _written(row.get("likelihood_f1_mean")),
            _written(row.get(NO_IMAGE_COLUMN)),
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def answer_marks(
    answers: pd.DataFrame, model: str, task: str, family: str | None, reference: str
) -> dict[str, str]:
    """Per sample: `refused` or `wrong` under the reference variant, else `flipped` when the
    answer differs under another variant of the family, else `right` (`unknown`: no answer)."""
    if family is None or answers.empty:
        return {}
    rows = answers[
        (answers["model"] == model)
        & (answers["task"] == task)
        & (answers["family"] == family)
        & (answers["pipeline"] == "direct")
        & (answers["status"] != "error")
    ]
    if "replicate" in rows.columns:  # noise-floor replicates are not variants
        rows = rows[rows["replicate"] == 0]
    rows = original_only(rows)  # the marks are of the prompt variants, on the original image
    marks: dict[str, str] = {}
    for sample, group in rows.groupby("sample", sort=True):
        ref = group[group["variant"] == reference]
        if ref.empty:
            continue
        status, correct = str(ref["status"].iloc[0]), bool(ref["correct"].iloc[0])
        said = {(str(s), str(p)) for s, p in zip(group["status"], group["parsed"], strict=True)}
        if status == "refusal":
            marks[str(sample)] = "refused"
        elif not correct:
            marks[str(sample)] = "wrong"
        elif len(said) > 1:
            marks[str(sample)] = "flipped"
        else:
            marks[str(sample)] = "right"
    return marks


def _probe_row(
    model: str, task: str, kind: str, dim: int, chance: float, r: ProbeResult
) -> dict[str, Any]:
    fields = {k: v for k, v in asdict(r).items() if k not in ("predicted", "fold")}
    return {
        "model": model,
        "task": task,
        "embedding": kind,
        "dim": dim,
        "chance_f1": chance,
        **fields,
    }


FLOAT_FORMAT = "%.10g"
"""How probe.csv and ladder.csv write numbers: a record holds them so."""


def _written(value: Any) -> float:
    """A number as `ladder.csv` holds it, so that the reading computed here is the one its
    written columns give (`verify` recomputes it from them)."""
    return float(FLOAT_FORMAT % _num(value))


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n", float_format=FLOAT_FORMAT)


def run_probe_stage(
    specs: SpecSet,
    plan: Plan,
    cache_path: Path,
    answers: pd.DataFrame,
    scores: pd.DataFrame,
    out: Path,
    context: BackendContext,
    reliance: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Probe every embeddable model of the plan on exactly the planned samples; write
    `out/probe.csv`, `out/ladder.csv` and `out/tsne/<model>/<task>.svg`; return the ladder
    (with the no-image rung where `reliance`, the visual-reliance table, measured it)."""
    stage = plan.suite.probe or ProbeStage()
    label_families = [f for f in plan.suite.prompt_families if specs.families[f].answer == "label"]
    tasks = sorted(plan.samples)
    chance = {
        t: chance_f1(
            [sum(s.label == lab.id for s in plan.samples[t]) for lab in specs.tasks[t].labels]
        )
        for t in tasks
    }
    rows: list[dict[str, Any]] = []
    with ProbeMemo(memo_path(cache_path)) as memo, step("pixel probes", len(tasks)) as shown:
        for t in tasks:
            samples = plan.samples[t]
            made_of = f"{PIXELS}/{PIXEL_SIZE}/{images_digest([s.sha256 for s in samples])}"
            result = memo.probe(
                made_of,
                partial(pixel_features, [s.path for s in samples]),
                [s.label for s in samples],
                seed=stage.seed,
                folds=stage.folds,
                groups=sample_groups(samples),
            )
            dim = 3 * PIXEL_SIZE * PIXEL_SIZE
            rows.append(_probe_row(ALL_MODELS, t, PIXELS, dim, chance[t], result))
            shown.advance()
        predicted: list[dict[str, Any]] = []
        maps = _embedding_probes(
            specs, plan, cache_path, answers, context, memo, rows, chance, predicted
        )
    probes = pd.DataFrame(rows, columns=PROBE_COLUMNS).sort_values(["model", "task", "embedding"])
    ladder = ladder_rows(scores, probes, label_families, reliance)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(probes, out / "probe.csv")
    _write_csv(ladder, out / "ladder.csv")
    _write_csv(pd.DataFrame(predicted, columns=PREDICTION_COLUMNS), out / "probe_predictions.csv")
    shutil.rmtree(out / "tsne", ignore_errors=True)
    for name, svg in sorted(maps.items()):
        path = out / "tsne" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(svg, encoding="utf-8")
    return ladder


def _embedding_probes(
    specs: SpecSet,
    plan: Plan,
    cache_path: Path,
    answers: pd.DataFrame,
    context: BackendContext,
    memo: ProbeMemo,
    rows: list[dict[str, Any]],
    chance: dict[str, float],
    predicted: list[dict[str, Any]],
) -> dict[str, str]:
    """Probe each embeddable model's embeddings per task (rows appended, and each image's
    out-of-fold prediction to `predicted`); its t-SNE maps."""
    stage = plan.suite.probe or ProbeStage()
    label_families = [f for f in plan.suite.prompt_families if specs.families[f].answer == "label"]
    mark_family = label_families[0] if label_families else None
    reference = specs.families[mark_family].reference if mark_family else ""
    tasks = sorted(plan.samples)
    maps: dict[str, str] = {}
    embeddable = [m for m in sorted(plan.models) if can_embed(specs.models[m])]
    if not stage.embeddings:
        embeddable = []
    with EmbeddingStore(store_path(cache_path)) as store:
        for m in embeddable:
            everything = [s for t in tasks for s in plan.samples[t]]
            try:
                embedded = get_embeddings(
                    store,
                    specs.models[m],
                    plan.identities[m],
                    everything,
                    stage.embeddings,
                    context=context,
                )
            except BackendError as e:  # as in the run: a model that cannot load is left out
                print(f"probe: {m} left out: {e}", file=sys.stderr)
                continue
            shown = step(f"{m}: probes and maps", len(tasks))
            with shown as bar:
                start = 0
                for t in tasks:
                    samples = plan.samples[t]
                    part = slice(start, start + len(samples))
                    start += len(samples)
                    labels = [s.label for s in samples]
                    for kind in stage.embeddings:
                        x = embedded.arrays[kind][part]
                        result = memo.probe(
                            array_digest(x),
                            partial(np.asarray, x),
                            labels,
                            seed=stage.seed,
                            folds=stage.folds,
                            groups=sample_groups(samples),
                        )
                        rows.append(_probe_row(m, t, kind, x.shape[1], chance[t], result))
                        predicted += [
                            dict(zip(PREDICTION_COLUMNS, (m, t, kind, s.id, f, p), strict=True))
                            for s, f, p in zip(samples, result.fold, result.predicted, strict=False)
                            if f >= 0
                        ]
                    kind = "vision" if "vision" in stage.embeddings else stage.embeddings[0]
                    marks = answer_marks(answers, m, t, mark_family, reference)
                    title = f"{m} on {t}: t-SNE of {kind} embeddings, coloured by true label"
                    maps[f"{m}/{t}.svg"] = memo.tsne(
                        embedded.arrays[kind][part],
                        labels,
                        [marks.get(s.id, "unknown") for s in samples],
                        title,
                        seed=stage.seed,
                    )
                    bar.advance()
    return maps


__all__ = [
    "ALL_MODELS",
    "LADDER_COLUMNS",
    "PREDICTION_COLUMNS",
    "NEAR_CHANCE",
    "PIXELS",
    "PROBE_COLUMNS",
    "SEPARABLE_MARGIN",
    "answer_marks",
    "ladder_rows",
    "reading",
    "run_probe_stage",
]
