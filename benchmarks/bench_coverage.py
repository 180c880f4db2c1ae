"""Benchmark of the statistics' promises: coverage and false-positive rates, by simulation.

Run ``python benchmarks/bench_coverage.py [--reps R] [--n-boot B] [--quick]``. Every setting
is simulated through medbench's own functions (the ones scoring calls) on data whose truth is
known: independent and clustered images (N = 32 and 100; 12 and 50 clusters of 4 images,
intra-cluster correlation 0.2), null pairs and pairs 0.1 apart, noise-only fragility and a
random guesser. Each line prints a rate with its Monte Carlo standard error
``sqrt(p (1 - p) / R)`` and the target: coverage of a 95% interval within 0.93-0.97 (at least
0.90 at N = 32 and 12 clusters), false rejections of a two-sided test at most 0.05, of a
one-sided flag at most 0.025. ``--quick`` (CI) runs 60 repetitions of 200 resamples: a smoke
test of the code, not of the figures.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from medbench.score import metrics

K = 2
"""Classes of the simulated tasks (the quickstart's binary tasks)."""
ACCURACY = 0.7
"""Each simulated model's chance of answering an image right."""
ICC = 0.2
"""Intra-cluster correlation of being right, for clustered images (Beta-distributed skill)."""
FLIP = 0.1
"""Chance that a variant changes an image's answer (a binary task: to the other class)."""
GAP = 0.1
"""How much better the better model of a non-null pair is (its accuracy minus the other's)."""
NOISE = 0.05
"""Answer noise of a replicate and of every variant when no wording has any effect."""


@dataclass(frozen=True)
class Setting:
    """One simulated claim: what it checks, its target and one repetition (seed -> hit)."""

    name: str
    claim: str
    target: str
    run: Callable[[int], bool]


def _truth(n: int) -> np.ndarray:
    return np.arange(n) % K


def _right(rng: np.random.Generator, n: int, clusters: int | None) -> np.ndarray:
    """Whether each of n images is answered right: independently, or with cluster skill."""
    if clusters is None:
        return rng.random(n) < ACCURACY
    a = ACCURACY * (1 / ICC - 1)
    skill = rng.beta(a, (1 - ACCURACY) * (1 / ICC - 1), clusters)
    return rng.random(n) < np.repeat(skill, n // clusters)


def _groups(n: int, clusters: int | None) -> np.ndarray | None:
    return None if clusters is None else np.repeat(np.arange(clusters), n // clusters)


def _covers(estimate: metrics.Estimate, true: float) -> bool:
    return estimate.lo <= true <= estimate.hi


def accuracy_coverage(n: int, clusters: int | None, n_boot: int) -> Callable[[int], bool]:
    def run(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        truth = _truth(n)
        pred = np.where(_right(rng, n, clusters), truth, 1 - truth)
        groups = _groups(n, clusters)
        found = metrics.score_variant(truth, pred, K, seed=seed, n_boot=n_boot, groups=groups)
        return _covers(found.accuracy, ACCURACY)

    return run


def fragility_coverage(n: int, clusters: int | None, n_boot: int) -> Callable[[int], bool]:
    """Two prompt families of one task, 4 variants each: the true fragility is 2 q (1 - q)."""

    def run(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        truth = _truth(n)
        base = np.where(_right(rng, n, clusters), truth, 1 - truth)
        families = [
            np.where(rng.random((n, 4)) < FLIP, 1 - base[:, None], base[:, None]) for _ in (0, 1)
        ]
        groups = _groups(n, clusters)
        found = metrics.fragility_index(
            families,
            seed=seed,
            n_boot=n_boot,
            groups=[groups, groups],
            tasks=["t", "t"],
        )
        return _covers(found, 2 * FLIP * (1 - FLIP))

    return run


def _family(rng: np.random.Generator, n: int, clusters: int | None) -> np.ndarray:
    """4 variants: a base answer (right with ``ACCURACY``), each variant flipping it."""
    truth = _truth(n)
    base = np.where(_right(rng, n, clusters), truth, 1 - truth)
    return np.where(rng.random((n, 4)) < FLIP, 1 - base[:, None], base[:, None])


def _population_kappa() -> float:
    """The headline's true value for the simulated model: its value on 400,000 images (the
    consensus depends on the base answer linearly in the skill, so clustering keeps it)."""
    answers = _family(np.random.default_rng(12345), 400_000, None)
    return metrics.all_variants_kappa(answers, _truth(400_000), K)


def headline_coverage(n: int, clusters: int | None, n_boot: int) -> Callable[[int], bool]:
    true = _population_kappa()

    def run(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        tasks = [
            metrics.TaskAnswers(_family(rng, n, clusters), _truth(n), K, _groups(n, clusters), "t")
            for _ in (0, 1)
        ]
        return _covers(metrics.mean_all_variants_kappa(tasks, seed=seed, n_boot=n_boot), true)

    return run


def _null_pair(
    rng: np.random.Generator, n: int, clusters: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two models of equal skill on the same images (clustered skill shared by both)."""
    truth = _truth(n)
    if clusters is None:
        right_a, right_b = rng.random(n) < ACCURACY, rng.random(n) < ACCURACY
    else:
        a = ACCURACY * (1 / ICC - 1)
        skill = np.repeat(rng.beta(a, (1 - ACCURACY) * (1 / ICC - 1), clusters), n // clusters)
        right_a, right_b = rng.random(n) < skill, rng.random(n) < skill
    return truth, np.where(right_a, truth, 1 - truth), np.where(right_b, truth, 1 - truth)


def _better_pair(
    rng: np.random.Generator, n: int, clusters: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model a right with chance s (mean ``ACCURACY + GAP``), model b with chance
    ``s * ACCURACY / (ACCURACY + GAP)`` (mean ``ACCURACY``; with clusters s is the patient's
    skill, shared): with balanced truth and symmetric errors f1_all equals accuracy, so the
    true difference is ``GAP``."""
    truth = _truth(n)
    if clusters is None:
        skill = np.full(n, ACCURACY + GAP)
    else:
        better = ACCURACY + GAP
        a = better * (1 / ICC - 1)
        skill = np.repeat(rng.beta(a, (1 - better) * (1 / ICC - 1), clusters), n // clusters)
    right_a = rng.random(n) < skill
    right_b = rng.random(n) < skill * ACCURACY / (ACCURACY + GAP)
    return truth, np.where(right_a, truth, 1 - truth), np.where(right_b, truth, 1 - truth)


def paired_interval_covers(n: int, clusters: int | None, n_boot: int) -> Callable[[int], bool]:
    def run(seed: int) -> bool:
        truth, a, b = _better_pair(np.random.default_rng(seed), n, clusters)
        found = metrics.paired_f1_difference(
            truth, a, b, K, seed=seed, n_boot=n_boot, groups=_groups(n, clusters)
        )
        return _covers(found, GAP)

    return run


def paired_interval_excludes_0(n: int, clusters: int | None, n_boot: int) -> Callable[[int], bool]:
    def run(seed: int) -> bool:
        truth, a, b = _null_pair(np.random.default_rng(seed), n, clusters)
        found = metrics.paired_f1_difference(
            truth, a, b, K, seed=seed, n_boot=n_boot, groups=_groups(n, clusters)
        )
        return not _covers(found, 0.0)

    return run


def paired_test_rejects(n: int, clusters: int | None) -> Callable[[int], bool]:
    def run(seed: int) -> bool:
        truth, a, b = _null_pair(np.random.default_rng(seed), n, clusters)
        if clusters is None:
            test = metrics.mcnemar_exact(a == truth, b == truth)
        else:
            test = metrics.mcnemar_clustered(
                a == truth, b == truth, _groups(n, clusters), seed=seed
            )
        return test.p_value < 0.05

    return run


def above_noise_floor(n: int, floor_images: int, n_boot: int) -> Callable[[int], bool]:
    """No wording effect: variants and the replicate are the first answer with 5% noise."""

    def run(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        truth = _truth(n)
        first = np.where(_right(rng, n, None), truth, 1 - truth)
        answers = np.where(rng.random((n, 4)) < NOISE, 1 - first[:, None], first[:, None])
        again = np.where(rng.random(n) < NOISE, 1 - answers[:, 0], answers[:, 0])
        floor = metrics.noise_floor(
            answers[:floor_images, 0], again[:floor_images], K, seed=seed, n_boot=n_boot
        )
        family = metrics.score_family(answers, truth, K, 0, seed=seed, n_boot=n_boot)
        return bool(family.disagreement.lo > floor.hi)

    return run


def worse_than_chance(counts: tuple[int, ...]) -> Callable[[int], bool]:
    truth = np.repeat(np.arange(len(counts)), counts)

    def run(seed: int) -> bool:
        guess = np.random.default_rng(seed).integers(0, len(counts), len(truth))
        return metrics.worse_than_chance(metrics.f1_all(truth, guess, len(counts)), counts)

    return run


def settings(n_boot: int) -> list[Setting]:
    found = []
    for label, n, clusters, floor in (
        ("N=32", 32, None, 0.90),
        ("N=100", 100, None, 0.93),
        ("12 clusters", 48, 12, 0.90),
        ("50 clusters", 200, 50, 0.93),
    ):
        target = f"{floor:.2f}-0.97"
        found += [
            Setting(label, "accuracy CI covers", target, accuracy_coverage(n, clusters, n_boot)),
            Setting(label, "fragility CI covers", target, fragility_coverage(n, clusters, n_boot)),
            Setting(
                label, "headline kappa CI covers", target, headline_coverage(n, clusters, n_boot)
            ),
            Setting(
                label,
                "paired F1 CI covers (gap 0.1)",
                target,
                paired_interval_covers(n, clusters, n_boot),
            ),
            Setting(
                label,
                "null paired F1 CI excludes 0",
                "<=0.05",
                paired_interval_excludes_0(n, clusters, n_boot),
            ),
            Setting(label, "null paired test rejects", "<=0.05", paired_test_rejects(n, clusters)),
        ]
    for images in (8, 32):
        found.append(
            Setting(
                f"N=32, floor on {images}",
                "noise-only above the floor",
                "<=0.05",
                above_noise_floor(32, images, n_boot),
            )
        )
    for counts in ((8, 8), (8, 8, 8), (8, 8, 8, 8), (50, 50)):
        label = f"N={sum(counts)}, K={len(counts)}"
        found.append(
            Setting(label, "random guesser worse than chance", "<=0.025", worse_than_chance(counts))
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=500, help="repetitions per setting")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--quick", action="store_true", help="60 repetitions of 200 resamples")
    args = parser.parse_args(argv)
    reps, n_boot = (60, 200) if args.quick else (args.reps, args.n_boot)
    print(f"coverage and false-positive rates: {reps} repetitions, {n_boot} resamples")
    print(f"{'setting':<18} {'claim':<34} {'rate':>6} {'MC err':>7}  target")
    start = time.perf_counter()
    for setting in settings(n_boot):
        rate = float(np.mean([setting.run(seed) for seed in range(reps)]))
        error = math.sqrt(rate * (1 - rate) / reps)
        print(f"{setting.name:<18} {setting.claim:<34} {rate:6.3f} {error:7.3f}  {setting.target}")
        sys.stdout.flush()
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
