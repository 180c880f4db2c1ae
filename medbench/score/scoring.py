"""Predictions -> tables: parse every answer, then score variants, families, models and pairs.

`collect_answers` joins a plan with the cache (one row per job); `score_answers` turns those
rows into the published tables and needs nothing but the rows and a `ScoringLayout`, so a
leaderboard record can be re-derived from its sidecar alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from medbench.data.variants import image_transforms, image_variant_kinds
from medbench.score import metrics
from medbench.score.parsing import PARSER_VERSION, ParsedAnswer, parse_answer
from medbench.score.reliance import ORIGINAL, ImageLayout, has_image_variants, score_images

if TYPE_CHECKING:
    from collections.abc import Sequence

    from medbench.run import Cache, Plan
    from medbench.spec import TaskSpec
    from medbench.spec.loading import SpecSet

SCORES_SCHEMA_VERSION = 4
"""2: answer rows carry `parser_version`. 3: the fragility table gains `all_variants_f1` and
the noise floor, the models table `all_variants_f1` and `mean_worst_f1` (with CIs); answers
gain `group` (and `replicate`), layout.json gains `groups` (clustered tasks). 4: answers gain
`image_variant` and `image_transform`; with image variants, layout.json gains
`image_variants`, the models table visual reliance, and `image_variants.csv`, `reliance.csv`
and `reliance_pairs.csv` are written."""
IMAGE_PROCESSOR_COLUMN = "image_processor"
IMAGE_VARIANT_COLUMN = "image_variant"
"""`original`, or the id of the suite's image variant the answer is about."""
IMAGE_TRANSFORM_COLUMN = "image_transform"
"""The image variant's transform and parameters as JSON text (empty for the original)."""
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
    "parser_version",
    "correct",
    "group",
    "replicate",
    "image_variant",
    "image_transform",
]
"""`group`: the image's cluster (patient) where its task's data source declares groups;
`replicate`: 1 for a noise-floor replicate of a reference answer, else 0; `image_variant`:
the image variant the answer saw (`original`: the untouched image), `image_transform` its
transform and parameters as JSON text (empty for the original)."""
IMAGE_COLUMNS = {"image_variant": ORIGINAL, "image_transform": ""}
"""The image columns and their value where a frame (or an old sidecar) lacks them."""


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
    groups: dict[str, str] = field(default_factory=dict)
    """task -> how its images are grouped (e.g. `pattern ^(person\\d+)`), for clustered tasks
    only: their bootstraps resample groups and their paired tests are Obuchowski's."""
    image_variants: dict[str, str] = field(default_factory=dict)
    """image variant id -> its transform (`jpeg`, ...) or ablation (`no_image`, `blank`, ...)."""
    dataset_revisions: dict[str, str] = field(default_factory=dict)
    """task -> the commit sha its Hub dataset was read at (tasks with Hub data only)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "variants": self.variants,
            "references": self.references,
            "answer_kinds": self.answer_kinds,
            "pairs": [list(p) for p in self.pairs],
            "seed": self.seed,
            "n_boot": self.n_boot,
            "groups": self.groups,
            # absent when empty: a layout without image variants reads as before
            **({"image_variants": self.image_variants} if self.image_variants else {}),
            **({"dataset_revisions": self.dataset_revisions} if self.dataset_revisions else {}),
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
            groups=dict(data.get("groups") or {}),
            image_variants=dict(data.get("image_variants") or {}),
            dataset_revisions=dict(data.get("dataset_revisions") or {}),
        )

    def image_layout(self) -> ImageLayout:
        """What image-variant scoring needs of this layout."""
        return ImageLayout(
            classes=self.classes,
            transforms=self.image_variants,
            answer_kinds=self.answer_kinds,
            clustered=frozenset(self.groups),
            pairs=list(self.pairs),
            seed=self.seed,
            n_boot=self.n_boot,
        )


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
    groups = {
        t: source.group.describe()
        for t in sorted(plan.samples)
        if (source := specs.tasks[t].data.get(suite.data)) is not None and source.group is not None
    }
    return ScoringLayout(
        classes,
        variants,
        references,
        kinds,
        pairs,
        seed=suite.seed,
        groups=groups,
        image_variants=image_variant_kinds(suite),
        dataset_revisions=dict(plan.dataset_revisions),
    )


def parse_job_answer(
    text: str,
    task: TaskSpec,
    answer_kind: str,
    options: Sequence[str],
    lettered: bool,
    by_option: Sequence[tuple[str, str]] = (),
) -> tuple[ParsedAnswer, str | None]:
    """Parse one reply as scoring does: (the parse, the class it answers or None).

    A yes/no reply is read with the task's finding and its positive (yes) and negative (no)
    label names and aliases, so that a sentence answers it ("a normal chest X-ray": no).
    A multiple-choice sample's reply is read against its own options (`by_option`: offered
    option -> the label of its letter in the data).
    """
    if by_option:
        result = parse_answer(text, options, lettered=lettered)
        letter_of = dict(by_option)
        return result, letter_of[result.label] if result.label is not None else None
    if answer_kind == "yes_no":
        names: dict[str, list[str]] = {"yes": [], "no": []}
        for lab in task.labels:
            names["yes" if lab.positive else "no"] += [lab.name, *lab.aliases]
        result = parse_answer(text, ("yes", "no"), aliases=names, finding=task.finding)
        return result, result.label
    aliases = {lab.name: list(lab.aliases) for lab in task.labels}
    result = parse_answer(text, options, lettered=lettered, aliases=aliases)
    label_of = {lab.name: lab.id for lab in task.labels}
    return result, label_of[result.label] if result.label is not None else None


def collect_answers(specs: SpecSet, plan: Plan, cache: Cache) -> pd.DataFrame:
    """One row per job of the plan with its stored answer parsed (missing jobs are left out)."""
    from medbench.run import attach_diagnoses

    attach_diagnoses(plan, specs, cache)
    stored = cache.get_many(job.key for job in plan.jobs)
    rows = []
    processors: list[str | None] = []
    transforms = image_transforms(plan.suite)
    for job in plan.jobs:
        answer = stored.get(job.key)
        family = specs.families[job.family]
        if answer is None or family.answer == "text":
            continue
        task = specs.tasks[job.task]
        prompt = plan.prompt_of(job)
        label = next(label for label in task.labels if label.id == job.label)
        truth = ("yes" if label.positive else "no") if family.answer == "yes_no" else job.label
        status, parsed, rule = "error", None, "job_failed"
        if answer.error is None:
            result, parsed = parse_job_answer(
                answer.output or "",
                task,
                family.answer,
                prompt.rendered.options,
                prompt.rendered.lettered,
                prompt.by_option,
            )
            status, rule = result.status, result.rule
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
                PARSER_VERSION,
                parsed == truth,
                plan.sample(job.task, job.sample).group,
                job.replicate,
                job.image_variant,
                transforms[job.image_variant] or "",
            )
        )
        processors.append(image_processor_of(answer.prompt))
    frame = pd.DataFrame(rows, columns=ANSWER_COLUMNS)
    # Beside the scored columns (not in record sidecars): what preprocessed each answer's images.
    frame[IMAGE_PROCESSOR_COLUMN] = pd.Series(processors, dtype="object")
    return frame


def image_processor_of(stored_prompt: str) -> str | None:
    """The image processor a cached answer records (`backend:Class`), or None."""
    try:
        value = json.loads(stored_prompt).get("image_processor")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _groups(frame: pd.DataFrame, keys: list[str]) -> dict[tuple[str, ...], NDArray[Any]]:
    if frame.empty:
        return {}
    found: dict[Any, Any] = frame.groupby(keys, sort=True).indices
    return {tuple(str(k) for k in key): np.asarray(index) for key, index in found.items()}


def _encode(answers: pd.DataFrame, layout: ScoringLayout) -> pd.DataFrame:
    """The scored rows (failed jobs left out) with integer codes: `_t` truth, `_p` answer
    (a class index, REFUSAL or UNPARSEABLE), computed once per (task, family)."""
    ok = answers[answers["status"] != "error"].reset_index(drop=True)
    truth = np.zeros(len(ok), dtype=np.int64)
    pred = np.full(len(ok), metrics.UNPARSEABLE, dtype=np.int64)
    status = ok["status"].to_numpy()
    for (task, family), index in _groups(ok, ["task", "family"]).items():
        classes = layout.classes[task][family]
        truth[index] = pd.Categorical(ok["truth"].to_numpy()[index], categories=classes).codes
        parsed = pd.Categorical(ok["parsed"].to_numpy()[index], categories=classes).codes
        pred[index] = np.where(
            status[index] == "refusal",
            metrics.REFUSAL,
            np.where((status[index] == "answer") & (parsed >= 0), parsed, metrics.UNPARSEABLE),
        )
    return ok.assign(_t=truth, _p=pred)


def _est(prefix: str, e: metrics.Estimate) -> dict[str, float]:
    return {prefix: e.value, f"{prefix}_lo": e.lo, f"{prefix}_hi": e.hi}


def _matrix(frame: pd.DataFrame, variants: list[str], clustered: bool) -> Matrix:
    """(images x variants) answer codes over the images answered under every variant,
    rows sorted by sample id; `frame` holds encoded rows of one (model, task, family)."""
    samples, sample_index = np.unique(frame["sample"].to_numpy(dtype=str), return_inverse=True)
    column = pd.Categorical(frame["variant"].to_numpy(), categories=variants).codes
    matrix = np.full((len(samples), len(variants)), metrics.UNPARSEABLE, dtype=np.int64)
    seen = np.zeros((len(samples), len(variants)), dtype=bool)
    matrix[sample_index, column] = frame["_p"].to_numpy()
    seen[sample_index, column] = True
    truth = np.zeros(len(samples), dtype=np.int64)
    truth[sample_index] = frame["_t"].to_numpy()
    complete = seen.all(axis=1)
    groups: NDArray[Any] | None = None
    if clustered:
        labels = np.empty(len(samples), dtype=object)
        labels[sample_index] = _group_labels(frame)
        groups = labels[complete]
    return matrix[complete], truth[complete], [str(s) for s in samples[complete]], groups


def _group_labels(frame: pd.DataFrame) -> NDArray[Any]:
    """Each row's cluster label: its `group`, or its sample id where it has none."""
    group = frame["group"].to_numpy(dtype=object)
    sample = frame["sample"].to_numpy(dtype=object)
    missing = pd.isna(group)
    return np.where(missing, "sample:" + sample.astype(str), "group:" + group.astype(str))


Group = tuple[str, str, str, str]
"""(model, task, family, pipeline)."""
Matrix = tuple[NDArray[Any], NDArray[Any], list[str], NDArray[Any] | None]
"""Answer codes (images x variants), truth codes, sample ids, cluster labels (None for an
unclustered task): complete images only."""
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


def _pair(
    a: Matrix, b: Matrix
) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any] | None]:
    """The two models' answer matrices, the truth and the clusters over the images both
    answered."""
    common, ia, ib = np.intersect1d(np.array(a[2]), np.array(b[2]), return_indices=True)
    return a[0][ia], b[0][ib], a[1][ia], None if a[3] is None else a[3][ia]


def _score_pairs(matrices: dict[Group, Matrix], layout: ScoringLayout) -> pd.DataFrame:
    rows = []
    for model, base in layout.pairs:
        for group in sorted(g for g in matrices if g[0] == model):
            _, task, family, pipeline = group
            other = matrices.get((base, task, family, pipeline))
            if other is None:
                continue
            ma, mb, truth, groups = _pair(matrices[group], other)
            if len(truth) == 0:
                continue
            classes, variants = layout.classes[task][family], layout.variants[family]
            base_row: dict[str, Any] = {"model": model, "base": base, "task": task}
            base_row |= {"family": family, "pipeline": pipeline, "n": len(truth)}
            for j, variant in enumerate(variants):
                diff = metrics.paired_f1_difference(
                    truth,
                    ma[:, j],
                    mb[:, j],
                    len(classes),
                    seed=layout.seed,
                    n_boot=layout.n_boot,
                    groups=groups,
                )
                right_a, right_b = ma[:, j] == truth, mb[:, j] == truth
                # Obuchowski's test only where images share a cluster: it is asymptotic,
                # McNemar's exact test is exact for independent images.
                if groups is not None and len(set(groups)) < len(groups):
                    test = metrics.mcnemar_clustered(right_a, right_b, groups, seed=layout.seed)
                else:
                    test = metrics.mcnemar_exact(right_a, right_b)
                rows.append(
                    {
                        **base_row,
                        "variant": variant,
                        **_est("f1_diff", diff),
                        "mcnemar_p": test.p_value,
                        "test": test.method,
                        "n01": test.n01,
                        "n10": test.n10,
                    }
                )
            if len(variants) >= 2:
                frag = metrics.paired_disagreement_difference(
                    ma, mb, seed=layout.seed, n_boot=layout.n_boot, groups=groups
                )
                rows.append({**base_row, "variant": "*", **_est("fragility_diff", frag)})
    return _with_holm(pd.DataFrame(rows))


def _with_holm(pairs: pd.DataFrame) -> pd.DataFrame:
    """`mcnemar_p_holm`: each p adjusted by Holm's method across the tasks of its (pair,
    family, pipeline, variant): the pair table asks one question per task."""
    if pairs.empty or "mcnemar_p" not in pairs.columns:
        return pairs
    keys = ["model", "base", "family", "pipeline", "variant"]
    adjusted = pairs.groupby(keys, sort=False)["mcnemar_p"].transform(metrics.holm)
    return pairs.assign(mcnemar_p_holm=adjusted)


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


def with_image_columns(answers: pd.DataFrame) -> pd.DataFrame:
    """The rows with the image columns, filled where a frame or an old sidecar lacks them (or
    holds an empty value): every such answer saw the original image."""
    for name, default in IMAGE_COLUMNS.items():
        if name not in answers.columns:
            answers = answers.assign(**{name: default})
        elif answers[name].isna().any():
            answers = answers.assign(**{name: answers[name].fillna(default)})
    return answers


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
        else None
    )
    if images is not None and not images.models.empty and not models.empty:
        models = models.merge(images.models, on=["model", "pipeline"], how="left")
    return ScoreTables(
        scores=_score_variants(answers, encoded, layout),
        fragility=_with_noise_floors(
            _score_families(answers, matrices, layout),
            _noise_floors(replicated, matrices, layout),
        ),
        models=models,
        pairs=_score_pairs(matrices, layout),
        image_variants=images.image_variants if images is not None else pd.DataFrame(),
        reliance=images.reliance if images is not None else pd.DataFrame(),
        reliance_pairs=images.reliance_pairs if images is not None else pd.DataFrame(),
    )


def finite(value: Any) -> Any:
    """A JSON-safe number: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
