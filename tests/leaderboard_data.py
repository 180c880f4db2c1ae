"""Synthetic leaderboard data for the records, site and browser tests: answers, layout, records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medbench.publish.reask import answered
from medbench.publish.record import DatasetInfo, EnvironmentInfo, MedbenchInfo, Provenance, TaskInfo
from medbench.publish.writing import write_record
from medbench.score.answers import ANSWER_COLUMNS, ScoringLayout
from medbench.score.parsing import PARSER_VERSION
from medbench.score.scoring import ScoreTables, score_answers
from medbench.spec.model import ModelSpec

TASKS = {
    "brain_tumor_mri": ["glioma", "meningioma", "no_tumor"],
    "pneumonia_cxr": ["pneumonia", "normal"],
    "skin_lesion": ["melanoma", "nevus"],
    "histopathology": ["tumor", "normal"],
}
FAMILIES = {
    "closed_diagnosis": ["plain", "guided", "persona"],
    "finding_present": ["plain", "terse"],
}
KINDS = {"closed_diagnosis": "label", "finding_present": "yes_no"}
IMAGE_VARIANTS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "bias-field-2": ({"transform": "bias_field", "severity": 2}, ("brain_tumor_mri",)),
    "bias-field-4": ({"transform": "bias_field", "severity": 4}, ("brain_tumor_mri",)),
    "under-2": ({"transform": "exposure", "direction": "under", "severity": 2}, ()),
    "under-4": ({"transform": "exposure", "direction": "under", "severity": 4}, ()),
    "no-image": ({"transform": "no_image"}, ()),
    "blank": ({"transform": "blank"}, ()),
}
"""The synthetic suite's image variants, asked with each family's reference wording: id ->
(transform and parameters, the tasks it is asked on: every task when empty). Two perturbations
at severities 2 and 4 (a per-task one and one for every task) and the two ablations, so that
scoring makes severity curves and four quadrants."""


def make_layout(
    tasks: list[str],
    pairs: list[tuple[str, str]],
    *,
    n_boot: int = 100,
    seed: int = 0,
    image_variants: bool = False,
) -> ScoringLayout:
    """The synthetic suite's layout; `image_variants`: with IMAGE_VARIANTS."""
    classes = {
        t: {f: (["yes", "no"] if KINDS[f] == "yes_no" else TASKS[t]) for f in FAMILIES}
        for t in tasks
    }
    variants = {f: list(v) for f, v in FAMILIES.items()}
    references = dict.fromkeys(FAMILIES, "plain")
    transforms = (
        {i: str(spec["transform"]) for i, (spec, _) in IMAGE_VARIANTS.items()}
        if image_variants
        else {}
    )
    return ScoringLayout(
        classes,
        variants,
        references,
        dict(KINDS),
        sorted(pairs),
        seed,
        n_boot,
        image_variants=transforms,
    )


def make_answers(
    models: list[str],
    tasks: list[str],
    *,
    n_images: int = 30,
    seed: int = 0,
    image_models: Collection[str] = (),
) -> pd.DataFrame:
    """Seeded random answers: mostly right or wrong labels, some refusals, unparseables, errors;
    the models of `image_models` answer IMAGE_VARIANTS too (the original-image answers are the
    same either way)."""
    rng = np.random.default_rng(seed)
    rows = []
    for m, model in enumerate(models):
        skill = 0.35 + 0.5 * ((m * 7919) % 97) / 97
        for task in tasks:
            labels = TASKS[task]
            for i in range(n_images):
                label = labels[i % len(labels)]
                sample = f"{label}/img{i:03d}"
                for family, variants in FAMILIES.items():
                    yes_no = KINDS[family] == "yes_no"
                    truth = ("yes" if label == labels[0] else "no") if yes_no else label
                    options = ["yes", "no"] if yes_no else labels
                    for variant in variants:
                        draw = rng.random()
                        if draw < 0.08:
                            status, parsed, text = "refusal", None, "I cannot diagnose this."
                        elif draw < 0.13:
                            status, parsed, text = "unparseable", None, "hmm, hard to say"
                        elif draw < 0.15:
                            status, parsed, text = "error", None, None
                        else:
                            right = rng.random() < skill
                            parsed = truth if right else str(rng.choice(options))
                            status, text = "answer", f"The answer is {parsed}."
                        rows.append((
                            model, task, family, variant, "direct", sample, label, truth, text,
                            "timeout" if status == "error" else None, status, parsed,
                            "rule" if status != "error" else "job_failed", PARSER_VERSION,
                            parsed == truth, None, 0, "original", "", float("nan"),
                        ))  # fmt: skip
    rows += _image_variant_rows(rows, image_models, seed)
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS)


def _image_variant_rows(
    original: list[tuple[Any, ...]], models: Collection[str], seed: int
) -> list[tuple[Any, ...]]:
    """The answers of `models` to IMAGE_VARIANTS under each family's reference wording: at
    severity s the original answer is kept with probability 1 - 0.12 s, else drawn again (right
    less often); without the image (both ablations alike) a model keeps its answer for a share
    of the images that differs by model (it answers those without looking), else answers the
    first option."""
    rng = np.random.default_rng(seed + 1)  # a stream of its own: the originals do not change
    rows = []
    for row in original:
        model, task, family, variant, _, sample, label, truth = row[:8]
        if model not in models or variant != "plain" or row[10] == "error":
            continue
        options = ["yes", "no"] if KINDS[family] == "yes_no" else TASKS[task]
        looks = rng.random() > 0.25 + 0.5 * (sum(map(ord, model)) % 10) / 10
        for image_variant, (spec, only) in IMAGE_VARIANTS.items():
            if only and task not in only:
                continue
            severity = spec.get("severity")
            status, parsed, text = row[10], row[11], row[8]
            if severity is not None and rng.random() > 1 - 0.12 * severity:
                parsed = truth if rng.random() < 0.7 - 0.1 * severity else str(rng.choice(options))
                status, text = "answer", f"The answer is {parsed}."
            elif severity is None and looks:
                status, parsed, text = "answer", options[0], f"The answer is {options[0]}."
            ssim = 1 - 0.09 * severity - 0.03 * rng.random() if severity else float("nan")
            rows.append((
                model, task, family, variant, "direct", sample, label, truth, text, None, status,
                parsed, "rule", PARSER_VERSION, parsed == truth, None, 0, image_variant,
                json.dumps(spec, sort_keys=True), ssim,
            ))  # fmt: skip
    return rows


def model_spec(
    model_id: str,
    *,
    title: str | None = None,
    base: str | None = None,
    medical: bool = False,
    test_model: bool = False,
) -> ModelSpec:
    return ModelSpec(
        schema_version=1,
        kind="model",
        id=model_id,
        title=title or f"Model {model_id}",
        backend="baseline",
        baseline="chance",
        family="synthetic",
        base=base,
        medical=medical,
        test_model=test_model,
    )


def provenance(
    tasks: list[str],
    *,
    n_images: int = 30,
    date: str = "2026-01-15",
    task_titles: dict[str, str] | None = None,
) -> Provenance:
    titles = task_titles or {}
    return Provenance(
        revision="0" * 40,
        spec_hashes={"suite/quickstart": "a" * 64, **{f"task/{t}": "b" * 64 for t in tasks}},
        dataset=DatasetInfo(
            source="sample", fingerprint="c" * 64, n_images=dict.fromkeys(tasks, n_images)
        ),
        tasks={
            t: TaskInfo(
                title=titles.get(t, t.replace("_", " ").capitalize()),
                modality="MRI" if "mri" in t else "image",
                difficulty=i + 1,
                homepage=f"https://example.org/{t}",
                license="CC BY 4.0",
            )
            for i, t in enumerate(tasks)
        },
        medbench=MedbenchInfo(version="0.1.0", git_commit="d" * 40),
        environment=EnvironmentInfo(
            python="3.11.2",
            platform="Linux",
            torch="2.4.0",
            transformers="5.0.0",
            gpu_name=None,
            gpu_driver=None,
        ),
        date=date,
    )


def publish_synthetic(
    folder: Path,
    specs: list[ModelSpec],
    tasks: list[str],
    *,
    suite: str = "quickstart",
    n_images: int = 30,
    n_boot: int = 100,
    seed: int = 0,
    dates: dict[str, str] | None = None,
    task_titles: dict[str, str] | None = None,
    image_models: Collection[str] = (),
) -> list[Path]:
    """Score synthetic answers of `specs` and write their records (test models allowed); the
    models of `image_models` answer IMAGE_VARIANTS too, so that their records carry image
    variants, severity curves and four quadrants."""
    ids = [s.id for s in specs]
    pairs = [(s.id, s.base) for s in specs if s.base is not None and s.base in ids]
    layout = make_layout(tasks, pairs, n_boot=n_boot, seed=seed, image_variants=bool(image_models))
    answers = make_answers(ids, tasks, n_images=n_images, seed=seed, image_models=image_models)
    tables = score_answers(answers, layout)
    return [
        write_record(
            folder,
            suite=suite,
            spec=spec,
            answers=answers,
            tables=tables,
            layout=layout,
            provenance=provenance(
                tasks,
                n_images=n_images,
                date=(dates or {}).get(spec.id, "2026-01-15"),
                task_titles=task_titles,
            ),
            allow_test_models=True,
            answer_keys=answer_keys(answers, spec.id),
        )
        for spec in specs
    ]


def answer_keys(answers: pd.DataFrame, model: str) -> list[str]:
    """Stand-in cache keys of a model's synthetic direct answers, one per answer, as a run's
    plan names them (`RunInfo.answer_keys`)."""
    return [hashlib.sha256(repr(names).encode()).hexdigest() for names in answered(answers, model)]


def publish_many(folder: Path, n_pairs: int, tasks: list[str], *, n_images: int = 12) -> None:
    """`2 n_pairs` records (medical and general models) fast: one pair scored, then renamed."""
    pair = [model_spec("g"), model_spec("m", base="g", medical=True)]
    layout = make_layout(tasks, [("m", "g")], n_boot=20)
    answers = make_answers(["g", "m"], tasks, n_images=n_images)
    tables = score_answers(answers, layout)
    for i in range(n_pairs):
        names = {"g": f"general-model-{i:02d}", "m": f"medical-model-{i:02d}"}
        renamed = ScoreTables(
            *(frame.replace({"model": names, "base": names}) for frame in vars(tables).values())
        )
        for spec in pair:
            title = f"{'Medical fine-tune' if spec.medical else 'General model'} number {i:02d}"
            write_record(
                folder,
                suite="quickstart",
                spec=spec.model_copy(
                    update={
                        "id": names[spec.id],
                        "title": title,
                        "base": names.get(spec.base or ""),
                    }
                ),
                answers=answers.replace({"model": names}),
                tables=renamed,
                layout=ScoringLayout(**{**vars(layout), "pairs": [(names["m"], names["g"])]}),
                provenance=provenance(tasks, n_images=n_images),
                answer_keys=answer_keys(answers, spec.id),
            )
