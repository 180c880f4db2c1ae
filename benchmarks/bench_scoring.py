"""Parse and score 1,000,000 synthetic answers over 10 variants: jobs per second.

10 models x 4 tasks x 10 variants x 2,500 images. Answer texts are drawn from realistic
phrasings (short labels, sentences, markdown, yes/no, refusals, off-topic), so the parser
sees repeated texts as it does on real runs; the bootstrap (B = 1000) is included.
With --clustered every task's images come in patients of 4 (a `group` column, and the
layout's `groups`), so every bootstrap resamples patients; --pairs adds 5 (model, base) pairs
(paired bootstraps, and Obuchowski's test when clustered).
Run: .venv/bin/python benchmarks/bench_scoring.py [--jobs N] [--clustered] [--pairs]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from medbench.score.parsing import PARSER_VERSION, parse_answer
from medbench.score.scoring import ANSWER_COLUMNS, ScoringLayout, score_answers

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


def synthetic(
    n_jobs: int, seed: int = 0, clustered: bool = False, pairs: bool = False
) -> tuple[pd.DataFrame, ScoringLayout]:
    rng = np.random.default_rng(seed)
    models, variants = [f"m{i}" for i in range(10)], [f"v{i}" for i in range(10)]
    n_images = n_jobs // (len(models) * len(LABELS) * len(variants))
    frames = []
    for task, labels in LABELS.items():
        truth = rng.integers(0, len(labels), n_images)
        for model in models:
            for variant in variants:
                guess = np.where(
                    rng.random(n_images) < 0.6, truth, rng.integers(0, len(labels), n_images)
                )
                phrase = rng.integers(0, len(PHRASES), n_images)
                texts = [PHRASES[p].format(labels[g]) for p, g in zip(phrase, guess, strict=True)]
                frames.append(
                    pd.DataFrame(
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
                        }
                    )
                )
    layout = ScoringLayout(
        classes={t: {"f": labels} for t, labels in LABELS.items()},
        variants={"f": variants},
        references={"f": "v0"},
        answer_kinds={"f": "label"},
        pairs=[(f"m{i}", f"m{i + 1}") for i in range(0, len(models), 2)] if pairs else [],
        groups=dict.fromkeys(LABELS, "pattern ^(p\\d+)") if clustered else {},
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--clustered", action="store_true", help="patients of 4 images")
    parser.add_argument("--pairs", action="store_true", help="5 (model, base) pairs")
    args = parser.parse_args()
    frame, layout = synthetic(args.jobs, clustered=args.clustered, pairs=args.pairs)
    start = time.perf_counter()
    answers = parse_all(frame)
    parsed = time.perf_counter() - start
    tables = score_answers(answers, layout)
    total = time.perf_counter() - start
    n = len(answers)
    print(f"answers: {n:,}; score rows: {len(tables.scores)}, families: {len(tables.fragility)}")
    print(f"parse: {parsed:.1f} s ({n / parsed:,.0f} answers/s)")
    print(f"score with bootstrap (B={layout.n_boot}): {total - parsed:.1f} s")
    print(f"parse + score: {total:.1f} s, {n / total:,.0f} jobs/s (target: under 30 s)")


if __name__ == "__main__":
    main()
