"""Benchmark of the metric functions: wall time of a full scoring pass at the target size.

Run ``python benchmarks/bench_metrics.py [--images N] [--variants V] [--n-boot B]``.
Scores 1,000,000 answers (100,000 images x 10 variants, B = 1000) twice: as one large
group, and as groups of 300 images, on realistic (mostly consistent) and worst-case
(uniformly random) answers. The total sums the calls a scorer needs (per-variant scores
one column at a time, the family, the model summaries and the paired statistics).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from medbench.score.metrics import (
    TaskAnswers,
    fragility_index,
    mean_f1_all,
    paired_disagreement_difference,
    paired_f1_difference,
    score_family,
    score_variant,
    score_variants,
)

N_CLASSES = 4


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


def timed(label: str, run: Callable[[], object]) -> float:
    """Run once; print wall time and CPU time (the latter barely moves on a busy machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    run()
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    print(f"  {label:<44} {elapsed:7.2f} s wall {used:7.2f} s CPU")
    return elapsed


def one_group(truth: np.ndarray, answers: np.ndarray, n_boot: int) -> float:
    n_variants = answers.shape[1]
    half = len(truth) // 2
    total = timed(
        f"score_variant x {n_variants}",
        lambda: [
            score_variant(truth, answers[:, v], N_CLASSES, n_boot=n_boot) for v in range(n_variants)
        ],
    )
    timed(
        f"score_variants (all {n_variants} at once)",
        lambda: score_variants(truth, answers, N_CLASSES, n_boot=n_boot),
    )
    total += timed(
        "score_family", lambda: score_family(answers, truth, N_CLASSES, 0, n_boot=n_boot)
    )
    total += timed(
        "fragility_index (2 tasks)",
        lambda: fragility_index([answers[:half], answers[half:]], n_boot=n_boot),
    )
    total += timed(
        "mean_f1_all (2 tasks)",
        lambda: mean_f1_all(
            [
                TaskAnswers(answers[:half], truth[:half], N_CLASSES),
                TaskAnswers(answers[half:], truth[half:], N_CLASSES),
            ],
            n_boot=n_boot,
        ),
    )
    total += timed(
        "paired_f1_difference",
        lambda: paired_f1_difference(truth, answers[:, 0], answers[:, 1], N_CLASSES, n_boot=n_boot),
    )
    total += timed(
        "paired_disagreement_difference (5 vs 5)",
        lambda: paired_disagreement_difference(answers[:, :5], answers[:, 5:], n_boot=n_boot),
    )
    return total


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
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for random in (False, True):
        truth, answers = make_answers(rng, args.images, args.variants, random=random)
        kind = "uniform random" if random else "realistic"
        print(f"{kind} answers, {args.images} images x {args.variants} variants, B={args.n_boot}")
        total = one_group(truth, answers, args.n_boot)
        print(f"  {'total, one group':<44} {total:7.2f} s wall")
        many_groups(truth, answers, args.n_boot, args.group_size)


if __name__ == "__main__":
    main()
