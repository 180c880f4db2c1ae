"""Predictions -> tables: parse every answer, then score variants, families, models and pairs.

`collect_answers` joins a plan with the cache (one row per job); `score_answers` turns those
rows into the published tables and needs nothing but the rows and a `ScoringLayout`, so a
leaderboard record can be re-derived from its sidecar alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medbench import metrics
from medbench.parsing import parse_answer

if TYPE_CHECKING:
    from medbench.cache import Cache
    from medbench.loading import SpecSet
    from medbench.plan import Plan

SCORES_SCHEMA_VERSION = 1
ANSWER_COLUMNS = [
    "model",
    "task",
    "family",
    "variant",
    "pipeline",
    "sample",
    "label",
    "truth",
    "text",
    "error",
    "status",
    "parsed",
    "rule",
    "correct",
]


@dataclass(frozen=True)
class ScoringLayout:
    """What scoring needs beyond the answers: classes, variant order, references, pairs."""

    classes: dict[str, dict[str, list[str]]]
    """task -> family -> the classes in the family's answer space (label ids or yes/no)."""
    variants: dict[str, list[str]]
    """family -> variant ids in spec order."""
    references: dict[str, str]
    """family -> its reference variant."""
    answer_kinds: dict[str, str]
    """family -> `label` or `yes_no`."""
    pairs: list[tuple[str, str]] = field(default_factory=list)
    """(model, base) pairs both present in the suite."""
    seed: int = 0
    n_boot: int = 1000

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "variants": self.variants,
            "references": self.references,
            "answer_kinds": self.answer_kinds,
            "pairs": [list(p) for p in self.pairs],
            "seed": self.seed,
            "n_boot": self.n_boot,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoringLayout:
        return cls(
            classes=data["classes"],
            variants=data["variants"],
            references=data["references"],
            answer_kinds=data["answer_kinds"],
            pairs=[(a, b) for a, b in data["pairs"]],
            seed=data["seed"],
            n_boot=data["n_boot"],
        )


@dataclass
class ScoreTables:
    """The published tables."""

    scores: pd.DataFrame
    """Per (model, task, family, variant, pipeline): n, f1_all, ... with CIs, chance."""
    fragility: pd.DataFrame
    """Per (model, task, family, pipeline): disagreement, flip_rate, ... with CIs."""
    models: pd.DataFrame
    """Per (model, pipeline): fragility index and mean f1_all over tasks, with CIs."""
    pairs: pd.DataFrame
    """Per (model, base, task, family, variant): paired differences and McNemar's test."""


def make_layout(specs: SpecSet, plan: Plan) -> ScoringLayout:
    """The scoring layout of a plan: scored families only (`text` families are not scored)."""
    suite = plan.suite
    classes: dict[str, dict[str, list[str]]] = {}
    variants: dict[str, list[str]] = {}
    references: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for f in sorted(suite.prompt_families):
        family = specs.families[f]
        if family.answer == "text":
            continue
        variants[f] = [v.id for v in family.variants]
        references[f] = family.reference
        kinds[f] = family.answer
        for t in sorted(plan.samples):
            task = specs.tasks[t]
            labels = [label.id for label in task.labels]
            classes.setdefault(t, {})[f] = ["yes", "no"] if family.answer == "yes_no" else labels
    models = set(plan.models)
    pairs = sorted(
        (m, specs.models[m].base or "")
        for m in models
        if specs.models[m].base is not None and specs.models[m].base in models
    )
    return ScoringLayout(classes, variants, references, kinds, pairs, seed=suite.seed)


def collect_answers(specs: SpecSet, plan: Plan, cache: Cache) -> pd.DataFrame:
    """One row per job of the plan with its stored answer parsed (missing jobs are left out)."""
    from medbench.plan import attach_diagnoses

    attach_diagnoses(plan, specs, cache)
    stored = cache.get_many(job.key for job in plan.jobs)
    rows = []
    for job in plan.jobs:
        answer = stored.get(job.key)
        family = specs.families[job.family]
        if answer is None or family.answer == "text":
            continue
        task = specs.tasks[job.task]
        prompt = plan.prompts[(job.family, job.variant, job.task)]
        label = next(label for label in task.labels if label.id == job.label)
        truth = ("yes" if label.positive else "no") if family.answer == "yes_no" else job.label
        status, parsed, rule = "error", None, "job_failed"
        if answer.error is None:
            if family.answer == "yes_no":
                result = parse_answer(answer.output or "", ("yes", "no"))
                by_option = {"yes": "yes", "no": "no"}
            else:
                aliases = {lab.name: list(lab.aliases) for lab in task.labels}
                result = parse_answer(
                    answer.output or "",
                    prompt.rendered.options,
                    lettered=prompt.rendered.lettered,
                    aliases=aliases,
                )
                by_option = {lab.name: lab.id for lab in task.labels}
            status, rule = result.status, result.rule
            parsed = by_option[result.label] if result.label is not None else None
        rows.append(
            (
                job.evaluated,
                job.task,
                job.family,
                job.variant,
                job.pipeline,
                job.sample,
                job.label,
                truth,
                answer.output,
                answer.error,
                status,
                parsed,
                rule,
                parsed == truth,
            )
        )
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


def _codes(frame: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    index = {c: i for i, c in enumerate(classes)}
    truth = frame["truth"].map(index).to_numpy(dtype=np.int64)
    pred = np.where(
        frame["status"] == "refusal",
        metrics.REFUSAL,
        np.where(
            frame["status"] == "answer", frame["parsed"].map(index).fillna(-2), metrics.UNPARSEABLE
        ),
    ).astype(np.int64)
    return truth, pred


def _est(prefix: str, e: metrics.Estimate) -> dict[str, float]:
    return {prefix: e.value, f"{prefix}_lo": e.lo, f"{prefix}_hi": e.hi}


def _matrix(
    frame: pd.DataFrame, classes: list[str], variants: list[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images x variants) answer codes over the images answered under every variant."""
    ok = frame[frame["status"] != "error"]
    counts = ok.groupby("sample")["variant"].nunique()
    complete = sorted(counts[counts == len(variants)].index)
    ok = ok[ok["sample"].isin(complete)].sort_values(["sample", "variant"])
    truth_all, pred_all = _codes(ok, classes)
    position = {v: i for i, v in enumerate(variants)}
    matrix = np.full((len(complete), len(variants)), metrics.UNPARSEABLE, dtype=np.int64)
    row_of = {s: i for i, s in enumerate(complete)}
    truth = np.zeros(len(complete), dtype=np.int64)
    for sample, variant, t, p in zip(ok["sample"], ok["variant"], truth_all, pred_all, strict=True):
        matrix[row_of[sample], position[variant]] = p
        truth[row_of[sample]] = t
    return matrix, truth, complete


def _score_variants(answers: pd.DataFrame, layout: ScoringLayout) -> pd.DataFrame:
    rows = []
    keys = ["model", "task", "family", "variant", "pipeline"]
    for group, frame in answers.groupby(keys, sort=True):
        model, task, family, variant, pipeline = (str(g) for g in group)
        classes = layout.classes[task][family]
        ok = frame[frame["status"] != "error"]
        row: dict[str, Any] = dict(zip(keys, (model, task, family, variant, pipeline), strict=True))
        row["n"], row["n_failed"] = len(ok), len(frame) - len(ok)
        if len(ok) == 0:
            rows.append(row)
            continue
        truth, pred = _codes(ok, classes)
        scores = metrics.score_variant(
            truth, pred, len(classes), seed=layout.seed, n_boot=layout.n_boot
        )
        chance = metrics.chance_f1(np.bincount(truth, minlength=len(classes)))
        row["chance_f1"] = chance
        for name in (
            "f1_all",
            "f1_answered",
            "accuracy",
            "balanced_accuracy",
            "refusal_rate",
            "unparseable_rate",
        ):
            row.update(_est(name, getattr(scores, name)))
        row["worse_than_chance"] = bool(metrics.worse_than_chance(scores.f1_all.hi, chance))
        rows.append(row)
    return pd.DataFrame(rows)


def _score_families(
    answers: pd.DataFrame, layout: ScoringLayout
) -> tuple[pd.DataFrame, dict[tuple[str, str], list[np.ndarray]]]:
    rows = []
    per_model: dict[tuple[str, str], list[np.ndarray]] = {}
    keys = ["model", "task", "family", "pipeline"]
    for group, frame in answers.groupby(keys, sort=True):
        model, task, family, pipeline = (str(g) for g in group)
        classes, variants = layout.classes[task][family], layout.variants[family]
        matrix, truth, images = _matrix(frame, classes, variants)
        row: dict[str, Any] = dict(zip(keys, (model, task, family, pipeline), strict=True))
        row["n_images"], row["n_variants"] = len(images), len(variants)
        if len(images) == 0 or len(variants) < 2:
            rows.append(row)
            continue
        per_model.setdefault((model, pipeline), []).append(matrix)
        scores = metrics.score_family(
            matrix,
            truth,
            len(classes),
            variants.index(layout.references[family]),
            seed=layout.seed,
            n_boot=layout.n_boot,
        )
        for name in (
            "disagreement",
            "flip_rate",
            "refusal_flip_rate",
            "fleiss_kappa",
            "spread",
            "worst_f1",
        ):
            row.update(_est(name, getattr(scores, name)))
        for variant, pdr in zip(variants, scores.pdr, strict=True):
            row[f"pdr.{variant}"] = pdr.value
        rows.append(row)
    return pd.DataFrame(rows), per_model


def _score_models(
    answers: pd.DataFrame, layout: ScoringLayout, matrices: dict[tuple[str, str], list[np.ndarray]]
) -> pd.DataFrame:
    rows = []
    for group, frame in answers.groupby(["model", "pipeline"], sort=True):
        model, pipeline = (str(g) for g in group)
        row: dict[str, Any] = {"model": model, "pipeline": pipeline}
        if matrices.get((model, pipeline)):
            fi = metrics.fragility_index(
                matrices[(model, pipeline)], seed=layout.seed, n_boot=layout.n_boot
            )
            row.update(_est("fragility_index", fi))
        tasks = []
        for pair, sub in frame.groupby(["task", "family"], sort=True):
            task, family = (str(g) for g in pair)
            if layout.answer_kinds[family] != "label":
                continue
            classes, variants = layout.classes[task][family], layout.variants[family]
            matrix, truth, images = _matrix(sub, classes, variants)
            if len(images):
                tasks.append(metrics.TaskAnswers(matrix, truth, len(classes)))
        if tasks:
            row.update(
                _est(
                    "mean_f1_all",
                    metrics.mean_f1_all(tasks, seed=layout.seed, n_boot=layout.n_boot),
                )
            )
            row["n_tasks"] = len(tasks)
        rows.append(row)
    return pd.DataFrame(rows)


def _score_pairs(answers: pd.DataFrame, layout: ScoringLayout) -> pd.DataFrame:
    rows = []
    ok = answers[answers["status"] != "error"]
    for model, base in layout.pairs:
        mine = ok[ok["model"].isin([model, base])]
        for group, frame in mine.groupby(["task", "family", "pipeline"], sort=True):
            task, family, pipeline = (str(g) for g in group)
            classes, variants = layout.classes[task][family], layout.variants[family]
            a = frame[frame["model"] == model]
            b = frame[frame["model"] == base]
            ma, truth_a, images_a = _matrix(a, classes, variants)
            mb, _, images_b = _matrix(b, classes, variants)
            common = sorted(set(images_a) & set(images_b))
            if not common:
                continue
            ia = [images_a.index(s) for s in common]
            ib = [images_b.index(s) for s in common]
            ma, mb, truth = ma[ia], mb[ib], truth_a[ia]
            base_row = {
                "model": model,
                "base": base,
                "task": task,
                "family": family,
                "pipeline": pipeline,
            }
            for j, variant in enumerate(variants):
                diff = metrics.paired_f1_difference(
                    truth, ma[:, j], mb[:, j], len(classes), seed=layout.seed, n_boot=layout.n_boot
                )
                test = metrics.mcnemar_exact(ma[:, j] == truth, mb[:, j] == truth)
                rows.append(
                    {
                        **base_row,
                        "variant": variant,
                        "n": len(common),
                        **_est("f1_diff", diff),
                        "mcnemar_p": test.p_value,
                        "n01": test.n01,
                        "n10": test.n10,
                    }
                )
            if len(variants) >= 2:
                frag = metrics.paired_disagreement_difference(
                    ma, mb, seed=layout.seed, n_boot=layout.n_boot
                )
                rows.append(
                    {**base_row, "variant": "*", "n": len(common), **_est("fragility_diff", frag)}
                )
    return pd.DataFrame(rows)


def score_answers(answers: pd.DataFrame, layout: ScoringLayout) -> ScoreTables:
    """Every published table from parsed answers; deterministic for the layout's seed."""
    scores = _score_variants(answers, layout)
    fragility, matrices = _score_families(answers, layout)
    models = _score_models(answers, layout, matrices)
    pairs = _score_pairs(answers, layout)
    return ScoreTables(scores, fragility, models, pairs)


def finite(value: Any) -> Any:
    """A JSON-safe number: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
