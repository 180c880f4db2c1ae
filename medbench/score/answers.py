"""A suite's answers as one table: what was asked (the layout) and each job's stored answer,
parsed into a label, a refusal or unparseable."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from medbench.data.variants import image_transforms, image_variant_kinds
from medbench.score.parsing import PARSER_VERSION, ParsedAnswer, parse_answer
from medbench.score.reliance import ORIGINAL, ImageLayout

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from medbench.run import Cache, Job, Plan
    from medbench.spec import TaskSpec
    from medbench.spec.loading import SpecSet


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
    "image_ssim",
]
"""`group`: the image's cluster (patient) where its task's data source declares groups;
`replicate`: 1 for a noise-floor replicate of a reference answer, else 0; `image_variant`:
the image variant the answer saw (`original`: the untouched image), `image_transform` its
transform and parameters as JSON text (empty for the original), `image_ssim` the SSIM between
the original and the varied image as the model receives them (empty where not measured: the
original, an ablation without an image, a model that sees no image)."""
IMAGE_COLUMNS: dict[str, Any] = {
    "image_variant": ORIGINAL,
    "image_transform": "",
    "image_ssim": float("nan"),
}
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
            references=dict(self.references),
        )


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
    ssim_of = _received_ssim(plan)
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
                ssim_of(job),
            )
        )
        processors.append(image_processor_of(answer.prompt))
    frame = pd.DataFrame(rows, columns=ANSWER_COLUMNS)
    # Beside the scored columns (not in record sidecars): what preprocessed each answer's images.
    frame[IMAGE_PROCESSOR_COLUMN] = pd.Series(processors, dtype="object")
    return frame


def _received_ssim(plan: Plan) -> Callable[[Job], float]:
    """The `image_ssim` of a job: its derived image's SSIM against the original as the model
    receives them, from the image store (NaN for the original, an ablation without a derived
    image, a model that sees no image, or an image not measured)."""
    from medbench.data.variants import ImageStore, images_dir

    store = ImageStore(plan.images_dir if plan.images_dir is not None else images_dir())
    blind = {m for m, i in plan.identities.items() if i.payload.get("backend") == "baseline"}
    if plan.suite.image_variants_at == "model_input":  # a model without a view: not measured
        blind |= set(plan.models) - set(plan.views)
    memo: dict[str, float] = {}

    def of(job: Job) -> float:
        if job.image_variant == ORIGINAL or job.model in blind:
            return float("nan")
        shown = plan.images.get(plan.image_slot(job), ())
        if len(shown) != 1 or shown[0].sha256 not in plan.recipes:
            return float("nan")
        key = shown[0].sha256
        if key not in memo:
            value = store.ssim(key)
            memo[key] = round(value, 4) if value is not None else float("nan")
        return memo[key]

    return of


def image_processor_of(stored_prompt: str) -> str | None:
    """The image processor a cached answer records (`backend:Class`), or None."""
    try:
        value = json.loads(stored_prompt).get("image_processor")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def with_image_columns(answers: pd.DataFrame) -> pd.DataFrame:
    """The rows with the image columns, filled where a frame or an old sidecar lacks them (or
    holds an empty value): every such answer saw the original image."""
    for name, default in IMAGE_COLUMNS.items():
        if name not in answers.columns:
            answers = answers.assign(**{name: default})
        elif name == "image_ssim":  # a number, empty where not measured
            values = pd.to_numeric(answers[name], errors="coerce").astype(float)
            answers = answers.assign(**{name: values})
        elif answers[name].isna().any():
            answers = answers.assign(**{name: answers[name].fillna(default)})
    return answers
