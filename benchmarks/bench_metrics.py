"""Benchmark of the metric functions: wall time of a full scoring pass at the target size.

Run ``python benchmarks/bench_metrics.py [--quick] [--images N] [--variants V] [--n-boot B]``.
Scores 1,000,000 answers (100,000 images x 10 variants, B = 1000) twice: as one large
group, and as groups of 300 images, on realistic (mostly consistent) and worst-case
(uniformly random) answers. The total sums the calls a scorer needs (per-variant scores
one column at a time, the family, the model summaries and the paired statistics).
Exits 1 if `score_variants` gives other values than `score_variant` column by column.
``--quick``: 2,000 images, B = 200 (seconds).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import fields
from typing import TypeVar

import numpy as np

from medbench.score.metrics import (
    Estimate,
    TaskAnswers,
    VariantScores,
    fragility_index,
    mean_f1_all,
    paired_disagreement_difference,
    paired_f1_difference,
    score_family,
    score_variant,
    score_variants,
)

N_CLASSES = 4
QUICK = {"images": 2_000, "n_boot": 200}
T = TypeVar("T")


def make_answers(
    rng: np.random.Generator, n_images: int, n_variants: int, *, random: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Truth and an answer matrix: uniform codes, or a per-image answer kept by 80% of variants."""
    truth = rng.integers(0, N_CLASSES, n_images)
    if random:
        return truth, rng.integers(-2, N_CLASSES, (n_images, n_variants))
    base = np.where(rng.random(n_images) < 0.6, truth, rng.integers(0, N_CLASSES, n_images))
    noise = rng.choice([-2, -1, 0, 1, 2, 3], size=(n_images, n_variants))
    keep = rng.random((n_images, n_variants)) < 0.8
    return truth, np.where(keep, base[:, None], noise)


def timed(label: str, run: Callable[[], T]) -> tuple[float, T]:
    """Run once; print wall time and CPU time (the latter barely moves on a busy machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = run()
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    print(f"  {label:<44} {elapsed:7.2f} s wall {used:7.2f} s CPU")
    return elapsed, result


def values(scores: VariantScores) -> list[float]:
    """The point values of one variant's scores (not the intervals: those differ by design)."""
    estimates = [getattr(scores, f.name) for f in fields(scores)]
    return [e.value if isinstance(e, Estimate) else float(e) for e in estimates]


def one_group(truth: np.ndarray, answers: np.ndarray, n_boot: int) -> tuple[float, list[str]]:
    """The summed wall time of a scorer's calls, and where `score_variants` disagreed with
    `score_variant`."""
    n_variants = answers.shape[1]
    half = len(truth) // 2
    total, singles = timed(
        f"score_variant x {n_variants}",
        lambda: [
            score_variant(truth, answers[:, v], N_CLASSES, n_boot=n_boot) for v in range(n_variants)
        ],
    )
    _, together = timed(
        f"score_variants (all {n_variants} at once)",
        lambda: score_variants(truth, answers, N_CLASSES, n_boot=n_boot),
    )
    problems = [
        f"variant {v}: score_variants {values(b)} != score_variant {values(a)}"
        for v, (a, b) in enumerate(zip(singles, together, strict=True))
        if not np.allclose(values(a), values(b), rtol=0, atol=1e-12, equal_nan=True)
    ]
    total += timed(
        "score_family", lambda: score_family(answers, truth, N_CLASSES, 0, n_boot=n_boot)
    )[0]
    total += timed(
        "fragility_index (2 tasks)",
        lambda: fragility_index([answers[:half], answers[half:]], n_boot=n_boot),
    )[0]
    total += timed(
        "mean_f1_all (2 tasks)",
        lambda: mean_f1_all(
            [
                TaskAnswers(answers[:half], truth[:half], N_CLASSES),
                TaskAnswers(answers[half:], truth[half:], N_CLASSES),
            ],
            n_boot=n_boot,
        ),
    )[0]
    total += timed(
        "paired_f1_difference",
        lambda: paired_f1_difference(truth, answers[:, 0], answers[:, 1], N_CLASSES, n_boot=n_boot),
    )[0]
    total += timed(
        "paired_disagreement_difference (5 vs 5)",
        lambda: paired_disagreement_difference(answers[:, :5], answers[:, 5:], n_boot=n_boot),
    )[0]
    return total, problems


def many_groups(truth: np.ndarray, answers: np.ndarray, n_boot: int, size: int) -> None:
    def run(together: bool) -> None:
        for start in range(0, len(truth), size):
            t, a = truth[start : start + size], answers[start : start + size]
            if together:
                score_variants(t, a, N_CLASSES, n_boot=n_boot)
            else:
                for v in range(a.shape[1]):
                    score_variant(t, a[:, v], N_CLASSES, n_boot=n_boot)
            score_family(a, t, N_CLASSES, 0, n_boot=n_boot)

    groups = -(-len(truth) // size)
    timed(f"{groups} groups: score_variant x V + score_family", lambda: run(False))
    timed(f"{groups} groups: score_variants + score_family", lambda: run(True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--variants", type=int, default=10)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--group-size", type=int, default=300)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK['images']:,} images, B={QUICK['n_boot']}"
    )
    args = parser.parse_args()
    if args.quick:
        args.images, args.n_boot = QUICK["images"], QUICK["n_boot"]
    rng = np.random.default_rng(0)
    problems = []
    for random in (False, True):
        truth, answers = make_answers(rng, args.images, args.variants, random=random)
        kind = "uniform random" if random else "realistic"
        print(f"{kind} answers, {args.images} images x {args.variants} variants, B={args.n_boot}")
        total, found = one_group(truth, answers, args.n_boot)
        problems += [f"{kind}: {problem}" for problem in found]
        print(f"  {'total, one group':<44} {total:7.2f} s wall")
        many_groups(truth, answers, args.n_boot, args.group_size)
    for problem in problems:
        print(f"FAILED: {problem}")
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
