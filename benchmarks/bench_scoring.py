"""Parse and score 1,000,000 synthetic answers over 10 variants: jobs per second.

10 models x 4 tasks x 10 variants x 2,500 images. Answer texts are drawn from realistic
phrasings (short labels, sentences, markdown, yes/no, refusals, off-topic), so the parser
sees repeated texts as it does on real runs; the bootstrap (B = 1000) is included.
With --clustered every task's images come in patients of 4 (a `group` column, and the
layout's `groups`), so every bootstrap resamples patients; --pairs adds 5 (model, base) pairs
(paired bootstraps, and Obuchowski's test when clustered); --image-variants adds the
quickstart's four image variants (two transforms, two ablations), each asked with the reference
variant, so the image-variant tables, visual reliance and the four quadrants are scored too.
The answers table has every column of `ANSWER_COLUMNS`, as `collect_answers` makes it. Exits 1
if a table lacks a row or has one too many (one per model, task, variant, pair, image variant,
as the case may be).
--quick: 8,000 answers with every option on (clustered, pairs, image variants), in seconds.
Run: .venv/bin/python benchmarks/bench_scoring.py [--quick] [--jobs N] [--clustered] [--pairs]
[--image-variants]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from medbench.score.answers import ANSWER_COLUMNS, ScoringLayout
from medbench.score.parsing import PARSER_VERSION, parse_answer
from medbench.score.reliance import ORIGINAL
from medbench.score.scoring import ScoreTables, score_answers

LABELS = {
    "t0": ["glioma", "meningioma", "no tumor", "pituitary tumor"],
    "t1": ["normal", "pneumonia"],
    "t2": ["benign", "malignant"],
    "t3": ["adenocarcinoma", "benign lung tissue", "squamous cell carcinoma"],
}
PHRASES = [
    "{}",
    "{}.",
    "The image shows {}.",
    "**Answer:** {}",
    "This is most likely {}.",
    "Based on the findings, the diagnosis is {}.",
    "Final answer: {}",
    "I'm sorry, but I can't provide a diagnosis.",
    "The image is a medical scan.",
    "It could be {} or something else, hard to say.",
]
IMAGE_VARIANTS = {
    # id -> (transform, the transform and its parameters as `collect_answers` records them)
    "jpeg-q30": ("jpeg", '{"quality":30,"transform":"jpeg"}'),
    "rotate-10": ("rotate", '{"degrees":10.0,"transform":"rotate"}'),
    "no-image": ("no_image", '{"transform":"no_image"}'),
    "blank": ("blank", '{"transform":"blank"}'),
}
"""The quickstart suite's image variants (`image_transforms` of its spec)."""
SSIM = {"jpeg-q30": 0.87, "rotate-10": 0.59, "blank": 0.07}
"""Each image variant's SSIM at the model's input (about the quickstart's on brain MRI)."""
KEPT = {"jpeg": 0.9, "rotate": 0.85, "no_image": 0.3, "blank": 0.3}
"""The share of an image variant's answers that keep the original image's answer."""
QUICK_JOBS = 8_000


def synthetic(
    n_jobs: int,
    seed: int = 0,
    clustered: bool = False,
    pairs: bool = False,
    image_variants: bool = False,
) -> tuple[pd.DataFrame, ScoringLayout]:
    """`n_jobs` answers to the original images (10 models x 4 tasks x 10 variants), and with
    `image_variants` the reference variant's answers to each image variant besides."""
    rng = np.random.default_rng(seed)
    models, variants = [f"m{i}" for i in range(10)], [f"v{i}" for i in range(10)]
    n_images = n_jobs // (len(models) * len(LABELS) * len(variants))
    frames = []

    def answers(
        model: str, task: str, variant: str, truth: np.ndarray, guess: np.ndarray, image: str
    ) -> pd.DataFrame:
        labels = LABELS[task]
        phrase = rng.integers(0, len(PHRASES), n_images)
        texts = [PHRASES[p].format(labels[g]) for p, g in zip(phrase, guess, strict=True)]
        return pd.DataFrame(
            {
                "model": model,
                "task": task,
                "family": "f",
                "variant": variant,
                "pipeline": "direct",
                "sample": [f"s{i}" for i in range(n_images)],
                "group": [f"p{i // 4}" if clustered else None for i in range(n_images)],
                "truth": [labels[t] for t in truth],
                "text": texts,
                "image_variant": image,
                "image_transform": IMAGE_VARIANTS[image][1] if image != ORIGINAL else "",
                "image_ssim": SSIM.get(image, float("nan")),
            }
        )

    for task, labels in LABELS.items():
        truth = rng.integers(0, len(labels), n_images)
        for model in models:
            for variant in variants:
                guess = np.where(
                    rng.random(n_images) < 0.6, truth, rng.integers(0, len(labels), n_images)
                )
                frames.append(answers(model, task, variant, truth, guess, ORIGINAL))
                if not image_variants or variant != "v0":
                    continue
                for image, (transform, _) in IMAGE_VARIANTS.items():
                    changed = np.where(
                        rng.random(n_images) < KEPT[transform],
                        guess,
                        rng.integers(0, len(labels), n_images),
                    )
                    frames.append(answers(model, task, variant, truth, changed, image))
    layout = ScoringLayout(
        classes={t: {"f": labels} for t, labels in LABELS.items()},
        variants={"f": variants},
        references={"f": "v0"},
        answer_kinds={"f": "label"},
        pairs=[(f"m{i}", f"m{i + 1}") for i in range(0, len(models), 2)] if pairs else [],
        groups=dict.fromkeys(LABELS, "pattern ^(p\\d+)") if clustered else {},
        image_variants=(
            {image: transform for image, (transform, _) in IMAGE_VARIANTS.items()}
            if image_variants
            else {}
        ),
    )
    return pd.concat(frames, ignore_index=True), layout


def parse_all(frame: pd.DataFrame) -> pd.DataFrame:
    statuses, parsed, rules = [], [], []
    options = {task: tuple(labels) for task, labels in LABELS.items()}
    for task, text in zip(frame["task"], frame["text"], strict=True):
        result = parse_answer(text, options[task])
        statuses.append(result.status)
        parsed.append(result.label)
        rules.append(result.rule)
    out = frame.assign(
        label=frame["truth"],
        error=None,
        status=statuses,
        parsed=parsed,
        rule=rules,
        parser_version=PARSER_VERSION,
        replicate=0,
    )
    out["correct"] = out["parsed"] == out["truth"]
    return out[ANSWER_COLUMNS]


def problems(tables: ScoreTables, layout: ScoringLayout, n_images: int) -> list[str]:
    """What is missing from the scored tables: every group of the answers has its rows."""
    models, tasks, variants = 10, len(LABELS), len(layout.variants["f"])
    expected = {
        "scores": models * tasks * variants,
        "fragility": models * tasks,
        "models": models,
        # a row per variant and one (`*`) for the fragility difference
        "pairs": len(layout.pairs) * tasks * (variants + 1),
    }
    if layout.image_variants:
        expected["image_variants"] = models * tasks * (1 + len(layout.image_variants))
        expected["reliance"] = models * tasks
        expected["quadrants"] = models * tasks
        expected["quadrant_models"] = models
    found = []
    for name, rows in expected.items():
        table = getattr(tables, name)
        if len(table) != rows:
            found.append(f"{name}: {len(table)} rows, expected {rows}")
    if "n" in tables.scores and not (tables.scores["n"] == n_images).all():
        found.append(f"scores: a variant's n is not the {n_images} images")
    if layout.image_variants and "reliance_no_image" not in tables.reliance:
        found.append("reliance: no reliance_no_image column")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--clustered", action="store_true", help="patients of 4 images")
    parser.add_argument("--pairs", action="store_true", help="5 (model, base) pairs")
    parser.add_argument(
        "--image-variants", action="store_true", help="the quickstart's 4 image variants"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_JOBS:,} answers, clustered, with pairs and image variants",
    )
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.clustered, args.pairs, args.image_variants = QUICK_JOBS, True, True, True
    frame, layout = synthetic(
        args.jobs, clustered=args.clustered, pairs=args.pairs, image_variants=args.image_variants
    )
    start = time.perf_counter()
    answers = parse_all(frame)
    parsed = time.perf_counter() - start
    tables = score_answers(answers, layout)
    total = time.perf_counter() - start
    n = len(answers)
    print(
        f"answers: {n:,}; score rows: {len(tables.scores)}, families: {len(tables.fragility)}, "
        f"pairs: {len(tables.pairs)}, image variant rows: {len(tables.image_variants)}"
    )
    print(f"parse: {parsed:.1f} s ({n / parsed:,.0f} answers/s)")
    print(f"score with bootstrap (B={layout.n_boot}): {total - parsed:.1f} s")
    target = "" if args.quick else " (target: under 30 s)"
    print(f"parse + score: {total:.1f} s, {n / total:,.0f} jobs/s{target}")
    found = problems(tables, layout, args.jobs // (10 * len(LABELS) * 10))
    for problem in found:
        print(f"FAILED: {problem}")
    if found:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
