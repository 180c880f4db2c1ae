"""Likelihood answers and their scores: argmax, probabilities, calibration, fragility.

Two normalisations are reported side by side: `total` (the sum of the option's token
log-probabilities) and `mean` (per token, which does not favour short options). The likelihood
answer is the argmax (first on ties); probabilities over the offered options are the softmax
of the same scores. Likelihood answers are scored exactly like generated ones (pipelines
`likelihood/total` and `likelihood/mean`: F1, accuracy with bootstrap CIs, fragility across
variants); calibration adds ECE (10 equal-width bins), the Brier score and the risk-coverage
curve with its area.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medbench.run.likelihood import PIPELINE, LikelihoodAnswer, likelihood_jobs
from medbench.score import metrics
from medbench.score.answers import ANSWER_COLUMNS

if TYPE_CHECKING:
    from medbench.run import Cache, Job, Plan
    from medbench.spec.loading import SpecSet

NORMALISATIONS = ("total", "mean")
ITEM_COLUMNS = [
    "model",
    "task",
    "family",
    "variant",
    "sample",
    "label",
    "truth",
    "truth_option",
    "options",
    "classes",
    "total",
    "mean",
    "n_tokens",
    "merged",
    "group",
]
CALIBRATION_COLUMNS = [
    "model",
    "task",
    "family",
    "variant",
    "pipeline",
    "n",
    "accuracy",
    "mean_confidence",
    "ece",
    "brier",
    "aurc",
]


def pipeline_name(norm: str) -> str:
    return f"{PIPELINE}/{norm}"


def collect_likelihoods(specs: SpecSet, plan: Plan, cache: Cache) -> pd.DataFrame:
    """One row per likelihood job of the plan whose scores are cached (lists as JSON text),
    less the families left out for a model (see `left_out`)."""
    return collect_scored(specs, plan, cache)[0]


def left_out(specs: SpecSet, plan: Plan, cache: Cache) -> dict[tuple[str, str], str]:
    """(model, family) -> why the family is not scored by likelihood for that model, located
    at the variant in the family's spec: an option the backend could not score (an openai
    endpoint lists only single first tokens). Scoring only the images where every option was
    listed would bias the family's numbers, so none of it is scored."""
    return collect_scored(specs, plan, cache)[1]


def collect_scored(
    specs: SpecSet, plan: Plan, cache: Cache
) -> tuple[pd.DataFrame, dict[tuple[str, str], str]]:
    """`collect_likelihoods` and `left_out` at once."""
    jobs, _ = likelihood_jobs(plan, specs)
    stored = cache.get_many(job.key for job in jobs)
    rows = []
    first: dict[tuple[str, str], tuple[tuple[str, ...], Job, LikelihoodAnswer]] = {}
    for job in jobs:
        answer = stored.get(job.key)
        if answer is None or answer.error is not None or answer.output is None:
            continue
        scores = LikelihoodAnswer.from_json(answer.output)
        if any(scores.unscored):
            order = (job.variant, job.task, job.sample)
            group = (job.model, job.family)
            if group not in first or order < first[group][0]:
                first[group] = (order, job, scores)
        rows.append(_item(specs, plan, job, scores))
    skipped = {group: _where(specs, job, scores) for group, (_, job, scores) in first.items()}
    kept = [row for row in rows if (row["model"], row["family"]) not in skipped]
    return pd.DataFrame(kept, columns=ITEM_COLUMNS), dict(sorted(skipped.items()))


def _where(specs: SpecSet, job: Job, scores: LikelihoodAnswer) -> str:
    """The first unscored option of a job, located at its variant's id in the family spec."""
    option, why = next((o, u) for o, u in zip(scores.options, scores.unscored, strict=True) if u)
    variants = [v.id for v in specs.families[job.family].variants]
    problem = (
        f"model {job.model}: option {option!r} (task {job.task}, image {job.sample}): {why}; "
        f"the family is not scored by likelihood for this model."
    )
    index = variants.index(job.variant) if job.variant in variants else 0
    return str(specs.issue("prompt_family", job.family, ("variants", index, "id"), problem))


def _item(specs: SpecSet, plan: Plan, job: Job, scores: LikelihoodAnswer) -> dict[str, Any]:
    task, family = specs.tasks[job.task], specs.families[job.family]
    offered = plan.prompt_of(job).rendered.options
    label = next(lab for lab in task.labels if lab.id == job.label)
    if family.answer == "yes_no":
        classes = list(offered)
        truth = "yes" if label.positive else "no"
    else:
        by_name = {lab.name: lab.id for lab in task.labels}
        classes = [by_name[o] for o in offered]
        truth = job.label
    return {
        "model": job.model,
        "task": job.task,
        "family": job.family,
        "variant": job.variant,
        "sample": job.sample,
        "label": job.label,
        "truth": truth,
        "truth_option": classes.index(truth),
        "options": json.dumps(list(scores.options)),
        "classes": json.dumps(classes),
        "total": json.dumps(list(scores.total)),
        "mean": json.dumps(list(scores.mean)),
        "n_tokens": json.dumps(list(scores.n_tokens)),
        "merged": any(scores.merged),
        "group": plan.sample(job.task, job.sample).group,
    }


def probabilities(items: pd.DataFrame, norm: str) -> pd.Series:
    """Per item, the softmax over its options of the `norm` log-likelihoods (an array each)."""
    probs = [metrics.softmax([json.loads(s)])[0] for s in items[norm]]
    return pd.Series(probs, index=items.index, dtype=object)


def answers_frame(items: pd.DataFrame, norm: str) -> pd.DataFrame:
    """The likelihood answers (argmax of `norm`) as rows that `score_answers` scores."""
    rows = []
    for item, p in zip(items.to_dict("records"), probabilities(items, norm), strict=True):
        parsed = json.loads(item["classes"])[int(np.argmax(p))]
        rows.append(
            (
                item["model"],
                item["task"],
                item["family"],
                item["variant"],
                pipeline_name(norm),
                item["sample"],
                item["label"],
                item["truth"],
                None,
                None,
                "answer",
                parsed,
                f"argmax_{norm}",
                None,  # parser_version: no text was parsed
                parsed == item["truth"],
                item["group"],  # the image's cluster, so likelihood intervals are clustered too
                0,  # not a noise-floor replicate
                "original",  # option likelihoods are scored on the original image
                "",
                float("nan"),  # no image variant: no SSIM
            )
        )
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


def _groups(
    items: pd.DataFrame, norm: str
) -> Iterator[tuple[tuple[str, str, str, str, str], NDArray[Any], NDArray[np.int64]]]:
    """Per (model, task, family, variant), then per family over all its variants (`*`): the
    row's keys (with the pipeline), the probabilities over the options and the true options."""
    frame = items.assign(_p=probabilities(items, norm))
    for (model, task, family), group in frame.groupby(["model", "task", "family"], sort=True):
        parts = [(str(v), g) for v, g in group.groupby("variant", sort=True)] + [("*", group)]
        for variant, part in parts:
            head = (str(model), str(task), str(family), variant, pipeline_name(norm))
            p = np.stack(list(part["_p"]))
            yield head, p, part["truth_option"].to_numpy(dtype=np.int64)


def calibration(items: pd.DataFrame, norm: str) -> pd.DataFrame:
    """Per (model, task, family, variant), and per family over all its variants (`*`)."""
    if items.empty:
        return pd.DataFrame(columns=CALIBRATION_COLUMNS)
    rows = []
    for head, p, t in _groups(items, norm):
        pred, conf = metrics.confidence(p) if len(p) else (np.zeros(0), np.zeros(0))
        rows.append(
            {
                **dict(zip(CALIBRATION_COLUMNS[:5], head, strict=True)),
                "n": len(t),
                "accuracy": float((pred == t).mean()),
                "mean_confidence": float(conf.mean()),
                "ece": metrics.ece(p, t),
                "brier": metrics.brier(p, t),
                "aurc": metrics.risk_coverage(p, t).aurc,
            }
        )
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


RISK_COVERAGE_COLUMNS = [
    "model",
    "task",
    "family",
    "variant",
    "pipeline",
    "threshold",
    "coverage",
    "risk",
]


def risk_coverage_curves(items: pd.DataFrame, norm: str) -> pd.DataFrame:
    """The risk-coverage curves whose areas `calibration` reports (`aurc`): per (model, task,
    family, variant, or `*` over the family's variants), a point per distinct top-option
    probability: answering only where it is at least `threshold` answers `coverage` of the
    images, and `risk` of those answers are wrong."""
    if items.empty:
        return pd.DataFrame(columns=RISK_COVERAGE_COLUMNS)
    rows: list[tuple[Any, ...]] = []
    for head, p, t in _groups(items, norm):
        curve = metrics.risk_coverage(p, t)
        rows.extend(
            (*head, *point)
            for point in zip(curve.thresholds, curve.coverage, curve.risk, strict=True)
        )
    return pd.DataFrame(rows, columns=RISK_COVERAGE_COLUMNS)


def moves(generated: pd.DataFrame, likelihood: pd.DataFrame) -> pd.DataFrame:
    """Per (model, task, family): does the preference move with the wording when the generated
    answer does not, and vice versa? Shares of the images scored both ways under every variant."""
    columns = ["model", "task", "family", "pipeline", "n", "generated_flip_rate"]
    columns += ["likelihood_flip_rate", "preference_moves_only", "answer_moves_only"]
    if generated.empty or likelihood.empty:
        return pd.DataFrame(columns=columns)
    direct = generated[(generated["pipeline"] == "direct") & (generated["status"] != "error")]
    said = direct.assign(_a=direct["status"] + ":" + direct["parsed"].astype(str))
    rows = []
    for (model, task, family, pipeline), group in likelihood.groupby(
        ["model", "task", "family", "pipeline"], sort=True
    ):
        mine = said[(said["model"] == model) & (said["task"] == task) & (said["family"] == family)]
        variants = set(group["variant"])
        g_moves = _moved(mine, variants)
        l_moves = _moved(group.assign(_a=group["parsed"].astype(str)), variants)
        both = sorted(set(g_moves) & set(l_moves))
        if not both:
            continue
        g = np.array([g_moves[s] for s in both])
        lk = np.array([l_moves[s] for s in both])
        rows.append(
            {
                "model": model,
                "task": task,
                "family": family,
                "pipeline": pipeline,
                "n": len(both),
                "generated_flip_rate": float(g.mean()),
                "likelihood_flip_rate": float(lk.mean()),
                "preference_moves_only": float((lk & ~g).mean()),
                "answer_moves_only": float((g & ~lk).mean()),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _moved(frame: pd.DataFrame, variants: set[Any]) -> dict[str, bool]:
    """Per sample seen under every variant: whether its answer differs between variants."""
    out: dict[str, bool] = {}
    for sample, group in frame.groupby("sample", sort=True):
        if set(group["variant"]) >= variants:
            out[str(sample)] = group[group["variant"].isin(variants)]["_a"].nunique() > 1
    return out


__all__ = [
    "CALIBRATION_COLUMNS",
    "ITEM_COLUMNS",
    "NORMALISATIONS",
    "answers_frame",
    "calibration",
    "collect_likelihoods",
    "collect_scored",
    "left_out",
    "moves",
    "pipeline_name",
    "probabilities",
]
