"""Tests of clustered statistics: cluster bootstrap, paired cluster bootstrap, Obuchowski's test."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import chi2

from medbench.score import metrics
from medbench.score.metrics import Estimate, TaskAnswers

K = 3


def clustered_case(
    seed: int, n_clusters: int = 60, size: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Truth, two answer matrices (3 variants) and cluster labels: every image of a cluster
    (a patient) has the cluster's truth and answers, the strongest within-cluster correlation."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, n_clusters)
    right = rng.random((n_clusters, 3)) < 0.6
    a = np.where(right, truth[:, None], rng.integers(metrics.UNPARSEABLE, K, (n_clusters, 3)))
    b = np.where(rng.random((n_clusters, 3)) < 0.5, truth[:, None], a[:, ::-1])
    labels = np.array([f"person{c}" for c in range(n_clusters)])
    return (
        np.repeat(truth, size),
        np.repeat(a, size, axis=0),
        np.repeat(b, size, axis=0),
        np.repeat(labels, size),
    )


Interval = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int], Estimate]
"""(truth, answers a, answers b, groups or None, seed) -> one estimate with its interval."""

INTERVALS: dict[str, Interval] = {
    "score_variant.accuracy": lambda t, a, b, g, s: (
        metrics.score_variant(t, a[:, 0], K, seed=s, groups=g).accuracy
    ),
    "score_variant.f1_all": lambda t, a, b, g, s: (
        metrics.score_variant(t, a[:, 0], K, seed=s, groups=g).f1_all
    ),
    "score_variants.refusal_rate": lambda t, a, b, g, s: (
        metrics.score_variants(t, a, K, seed=s, groups=g)[1].refusal_rate
    ),
    "score_family.disagreement": lambda t, a, b, g, s: (
        metrics.score_family(a, t, K, 0, seed=s, groups=g).disagreement
    ),
    # (worst_f1, an extreme-value statistic, has no interval any more)
    "score_family.all_variants_kappa": lambda t, a, b, g, s: (
        metrics.score_family(a, t, K, 0, seed=s, groups=g).all_variants_kappa
    ),
    "paired_f1_difference": lambda t, a, b, g, s: metrics.paired_f1_difference(
        t, a[:, 0], b[:, 0], K, seed=s, groups=g
    ),
    "paired_disagreement_difference": lambda t, a, b, g, s: metrics.paired_disagreement_difference(
        a, b, seed=s, groups=g
    ),
    "fragility_index": lambda t, a, b, g, s: metrics.fragility_index(
        [a, b], seed=s, groups=None if g is None else [g, g]
    ),
    "mean_f1_all": lambda t, a, b, g, s: metrics.mean_f1_all(
        [TaskAnswers(a, t, K, g), TaskAnswers(b, t, K, g)], seed=s
    ),
    "noise_floor": lambda t, a, b, g, s: metrics.noise_floor(a[:, 0], a[:, 1], K, seed=s, groups=g),
}


def _width(e: Estimate) -> float:
    return e.hi - e.lo


@pytest.mark.parametrize("name", sorted(INTERVALS))
def test_clustered_interval_is_wider_under_strong_within_cluster_correlation(name: str) -> None:
    truth, a, b, groups = clustered_case(3)
    plain = INTERVALS[name](truth, a, b, None, 5)
    clustered = INTERVALS[name](truth, a, b, groups, 5)
    assert clustered.value == plain.value
    # 8 identical images per cluster: the interval should widen by about sqrt(8) = 2.8
    assert _width(clustered) > 2.0 * _width(plain) > 0


@pytest.mark.parametrize("name", sorted(INTERVALS))
def test_singleton_clusters_give_the_unclustered_interval(name: str) -> None:
    truth, a, b, _ = clustered_case(4, n_clusters=300, size=1)
    labels = np.array([f"IM-{i:04d}" for i in np.random.default_rng(0).permutation(len(truth))])
    assert INTERVALS[name](truth, a, b, labels, 11) == INTERVALS[name](truth, a, b, None, 11)


def test_units_pool_each_cluster_and_group_equal_clusters() -> None:
    keys = np.array([[0, 1], [0, 1], [1, 1], [0, 1], [1, 1], [0, 0], [0, 1]])
    clusters = np.array([0, 0, 1, 2, 2, 3, 4])
    units = metrics.group_units(keys, clusters)
    np.testing.assert_array_equal(units.rows, [[0, 0], [0, 1], [1, 1]])
    assert units.n_units == 5
    features = np.eye(3, dtype=np.float32)
    pooled = units.pool(features)
    # cluster 0 = two [0, 1]; 1 = one [1, 1]; 2 = [0, 1] + [1, 1]; 3 = [0, 0]; 4 = [0, 1]
    expected = {(0.0, 2.0, 0.0): 1, (0.0, 0.0, 1.0): 1, (0.0, 1.0, 1.0): 1}
    expected |= {(1.0, 0.0, 0.0): 1, (0.0, 1.0, 0.0): 1}
    assert dict(zip(map(tuple, pooled.tolist()), units.sizes.tolist(), strict=True)) == expected
    np.testing.assert_array_equal(units.sizes @ pooled, features[[1, 1, 2, 1, 2, 0, 1]].sum(0))


def test_units_without_signature_grouping_pool_the_same_sums(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    truth, a, _, groups = clustered_case(6, n_clusters=40, size=3)
    clusters = metrics.as_clusters(groups, len(truth))
    keys = np.column_stack([truth, a])
    grouped = metrics.group_units(keys, clusters)
    monkeypatch.setattr("medbench.score.metrics._units._SIGNATURE_CELLS", 1)
    ungrouped = metrics.group_units(keys, clusters)
    assert ungrouped.n_units == grouped.n_units == 40
    assert len(ungrouped.sizes) == 40 > len(grouped.sizes)
    features = np.random.default_rng(0).integers(0, 5, (len(grouped.rows), 4)).astype(np.float32)
    np.testing.assert_array_equal(
        grouped.sizes @ grouped.pool(features), ungrouped.sizes @ ungrouped.pool(features)
    )


def test_cluster_bootstrap_covers_the_true_accuracy_95_percent_of_the_time() -> None:
    # 1,000 datasets of 100 patients x 4 images; a patient's images are right with the
    # patient's own probability p ~ Beta(2, 2) (intra-cluster correlation 0.2), so the
    # true accuracy is E[p] = 0.5. The image bootstrap ignores the clusters and covers less.
    rng = np.random.default_rng(2026)
    n_sets, n_clusters, size = 1000, 100, 4
    p = rng.beta(2.0, 2.0, (n_sets, n_clusters))
    right = rng.random((n_sets, n_clusters, size)) < p[:, :, None]
    pred = np.where(right, 0, 1).reshape(n_sets, -1)
    truth = np.zeros(n_clusters * size, dtype=np.int64)
    groups = np.repeat(np.arange(n_clusters), size)
    covered = {"clusters": 0, "images": 0}
    for i in range(n_sets):
        for how, g in (("clusters", groups), ("images", None)):
            e = metrics.score_variant(truth, pred[i], 2, seed=i, n_boot=500, groups=g).accuracy
            covered[how] += e.lo <= 0.5 <= e.hi
    assert 930 <= covered["clusters"] <= 970
    assert covered["images"] < 910


def _obuchowski(a: np.ndarray, b: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """Obuchowski (1998), eqs. 2-4: per-model variances and their covariance, by cluster."""
    clusters = sorted(set(groups.tolist()))
    x = np.array([a[groups == c].sum() for c in clusters], dtype=float)
    y = np.array([b[groups == c].sum() for c in clusters], dtype=float)
    n = np.array([(groups == c).sum() for c in clusters], dtype=float)
    big_n, c = n.sum(), len(clusters)
    p1, p2 = x.sum() / big_n, y.sum() / big_n
    var1 = c / (c - 1) / big_n**2 * ((x - n * p1) ** 2).sum()
    var2 = c / (c - 1) / big_n**2 * ((y - n * p2) ** 2).sum()
    cov = c / (c - 1) / big_n**2 * ((x - n * p1) * (y - n * p2)).sum()
    statistic = (p1 - p2) ** 2 / (var1 + var2 - 2 * cov)
    return statistic, float(chi2.sf(statistic, 1))


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_mcnemar_clustered_matches_obuchowskis_variance_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 40, 300)
    skill = rng.random(40)
    a = rng.random(300) < skill[groups]
    b = rng.random(300) < np.clip(skill[groups] - 0.1, 0, 1)
    result = metrics.mcnemar_clustered(a, b, groups)
    statistic, p_value = _obuchowski(a, b, groups)
    assert result.statistic == pytest.approx(statistic, rel=1e-12)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)
    assert (result.n01, result.n10) == (int((~a & b).sum()), int((a & ~b).sum()))


def test_mcnemar_clustered_is_less_sure_than_mcnemar_for_repeated_images() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(30) < 0.8, rng.random(30) < 0.5
    groups = np.repeat(np.arange(30), 10)
    once = metrics.mcnemar_clustered(a, b, np.arange(30))
    repeated = metrics.mcnemar_clustered(np.repeat(a, 10), np.repeat(b, 10), groups)
    naive = metrics.mcnemar_exact(np.repeat(a, 10), np.repeat(b, 10))
    assert repeated.p_value == pytest.approx(once.p_value, rel=1e-9)
    assert naive.p_value < repeated.p_value / 100


def test_mcnemar_clustered_without_a_difference_has_p_value_1() -> None:
    same = np.array([True, False, True, True])
    assert metrics.mcnemar_clustered(same, same, [0, 0, 1, 1]).p_value == 1.0


def test_mcnemar_clustered_with_zero_variance_is_the_exact_cluster_permutation_test() -> None:
    # 2 patients x 3 images, a right and b wrong on every one: Obuchowski's variance is 0 (it
    # gave p = 0); swapping the models within each of 2 clusters makes 4 equally likely
    # outcomes, 2 of them as extreme: p = 0.5.
    a, b = np.ones(6, dtype=bool), np.zeros(6, dtype=bool)
    found = metrics.mcnemar_clustered(a, b, [0, 0, 0, 1, 1, 1])
    assert found.p_value == 0.5
    assert found.method == "cluster_permutation"


def test_mcnemar_clustered_uses_obuchowski_from_30_clusters() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 3)
    a, b = rng.random(90) < 0.7, rng.random(90) < 0.5
    assert metrics.mcnemar_clustered(a, b, groups).method == "obuchowski"
    assert metrics.mcnemar_clustered(a[:87], b[:87], groups[:87]).method == "cluster_permutation"


@pytest.mark.parametrize("n_clusters", [5, 12])
def test_mcnemar_clustered_with_few_clusters_rejects_a_true_null_at_most_5_percent(
    n_clusters: int,
) -> None:
    rejected = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        groups = np.repeat(np.arange(n_clusters), 4)
        skill = rng.random(n_clusters)[groups]  # patients differ; the two models do not
        a, b = rng.random(len(groups)) < skill, rng.random(len(groups)) < skill
        rejected.append(metrics.mcnemar_clustered(a, b, groups).p_value < 0.05)
    # Obuchowski's asymptotic test rejected 8-11% here; 300 draws: 0.05 + 2 MC errors
    assert np.mean(rejected) <= 0.075


def _null_pair(seed: int, n_clusters: int, size: int = 4) -> tuple[np.ndarray, ...]:
    """Binary truth and two models of equal skill in clusters: each patient's skill is drawn
    from Beta(2.8, 1.2) (accuracy 0.7, intra-cluster correlation 0.2) and shared by both."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_clusters), size)
    truth = np.arange(len(groups)) % 2
    skill = rng.beta(2.8, 1.2, n_clusters)[groups]
    a = np.where(rng.random(len(groups)) < skill, truth, 1 - truth)
    b = np.where(rng.random(len(groups)) < skill, truth, 1 - truth)
    return truth, a, b, groups


def test_paired_f1_interval_with_few_clusters_excludes_0_at_most_5_percent_of_null_pairs() -> None:
    excluded = []
    for seed in range(400):
        truth, a, b, groups = _null_pair(seed, 12)
        found = metrics.paired_f1_difference(truth, a, b, 2, groups=groups, seed=seed)
        excluded.append(not found.lo <= 0.0 <= found.hi)
    # the expanded cluster bootstrap excluded 0 in 7% of these (0.063 +- 0.008 in the
    # coverage benchmark); 400 draws: 0.05 + one Monte Carlo error
    assert np.mean(excluded) <= 0.06


@pytest.mark.parametrize("n_clusters", [3, 12, 20])
def test_paired_f1_interval_with_few_clusters_excludes_0_exactly_when_the_swap_test_rejects(
    n_clusters: int,
) -> None:
    agree, rejected = [], []
    for seed in range(40):
        truth, a, b, groups = _null_pair(seed, n_clusters)
        b = np.where(np.random.default_rng(seed).random(len(b)) < seed / 80, 1 - truth, b)
        test = metrics.paired_f1_test(truth, a, b, 2, groups, seed=seed)
        interval = metrics.paired_f1_difference(truth, a, b, 2, groups=groups, seed=seed)
        assert interval == test.estimate
        excludes = not interval.lo <= 0.0 <= interval.hi
        agree.append(excludes == (test.p_value < 0.05))
        rejected.append(test.p_value < 0.05)
    assert all(agree)
    # both answers occur, so the agreement is not vacuous (3 clusters can never reject)
    assert any(rejected) == (n_clusters > 3) and not all(rejected)


def _swapped_f1_differences(
    truth: np.ndarray, a: np.ndarray, b: np.ndarray, groups: np.ndarray
) -> list[float]:
    found = []
    for code in range(2 ** (groups.max() + 1)):
        swapped = (code >> groups) & 1 == 1
        a_, b_ = np.where(swapped, b, a), np.where(swapped, a, b)
        found.append(metrics.f1_all(truth, a_, 2) - metrics.f1_all(truth, b_, 2))
    return found


def test_paired_f1_test_refers_to_every_swap_of_the_clusters() -> None:
    truth, a, b, groups = _null_pair(7, 6)
    b = np.where(groups < 2, 1 - truth, b)
    differences = np.abs(_swapped_f1_differences(truth, a, b, groups))
    observed = differences[0]
    found = metrics.paired_f1_test(truth, a, b, 2, groups)
    assert found.p_value == pytest.approx(np.mean(differences >= observed - 1e-12), abs=1e-12)
    # the interval: the values at most the 4th largest |difference| (5% of 64 swaps) away
    half = np.sort(differences)[-4]
    value = metrics.f1_all(truth, a, 2) - metrics.f1_all(truth, b, 2)
    assert (found.estimate.lo, found.estimate.hi) == pytest.approx(
        (max(-1.0, value - half), min(1.0, value + half)), abs=1e-9
    )


def test_paired_f1_test_of_two_patients_one_model_always_right_has_p_one_half() -> None:
    truth = np.array([0, 1, 0, 1, 0, 1])
    found = metrics.paired_f1_test(truth, truth, 1 - truth, 2, [0, 0, 0, 1, 1, 1])
    # swapping both or neither patient keeps |difference| = 1, swapping one gives 0
    assert found.p_value == 0.5
    assert found.estimate == Estimate(1.0, 0.0, 1.0)


def test_paired_f1_difference_uses_the_swap_interval_below_30_clusters_only() -> None:
    truth, a, b, groups = _null_pair(5, 30, size=2)
    many = metrics.paired_f1_difference(truth, a, b, 2, groups=groups)
    assert many != metrics.paired_f1_test(truth, a, b, 2, groups).estimate
    truth, a, b, groups = truth[:58], a[:58], b[:58], groups[:58]
    few = metrics.paired_f1_difference(truth, a, b, 2, groups=groups)
    assert few == metrics.paired_f1_test(truth, a, b, 2, groups).estimate


def test_groups_of_the_wrong_length_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(
        ValueError,
        match=r"^groups must label each of the 3 images with its cluster, got shape \(2,\)$",
    ):
        metrics.score_variant([0, 1, 0], [0, 1, 1], 2, groups=["a", "b"])


# The noise floor: an interval valid at the replicate set's small size.


def test_noise_floor_of_0_in_8_has_the_exact_upper_bound() -> None:
    first = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    found = metrics.noise_floor(first, first.copy(), 2, n_boot=500)
    assert found.value == 0.0
    # Clopper-Pearson: 1 - 0.025 ** (1 / 8), not the bootstrap's [0, 0]
    assert found.hi == pytest.approx(1 - 0.025 ** (1 / 8), abs=1e-9)
    assert found.hi == pytest.approx(0.369, abs=1e-3)
    assert found.lo == 0.0


def test_noise_floor_interval_is_clopper_pearson_of_the_differing_images() -> None:
    from statsmodels.stats.proportion import proportion_confint

    rng = np.random.default_rng(3)
    first = rng.integers(0, 3, 40)
    again = np.where(rng.random(40) < 0.1, (first + 1) % 3, first)
    found = metrics.noise_floor(first, again, 3, n_boot=500)
    lo, hi = proportion_confint(int((first != again).sum()), 40, alpha=0.05, method="beta")
    assert (found.lo, found.hi) == pytest.approx((lo, hi), abs=1e-12)


def test_noise_floor_flag_fires_on_pure_noise_at_most_at_the_stated_rate() -> None:
    # No wording effect at all: every variant is the first answer with 5% random noise, as is
    # the replicate; "above the floor" must not fire more than 5% of the time.
    fired = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        n, v = 32, 4
        first = rng.integers(0, 2, n)
        answers = np.where(rng.random((n, v)) < 0.05, 1 - first[:, None], first[:, None])
        again = np.where(rng.random(n) < 0.05, 1 - first, first)
        floor = metrics.noise_floor(answers[:8, 0], again[:8], 2, seed=seed, n_boot=200)
        family = metrics.score_family(answers, first, 2, 0, seed=seed, n_boot=200)
        fired.append(family.disagreement.lo > floor.hi)
    assert np.mean(fired) <= 0.05


def test_holm_matches_statsmodels_and_leaves_missing_tests_out() -> None:
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, np.nan, 0.04, 0.03, 0.2])
    expected = multipletests(p[~np.isnan(p)], method="holm")[1]
    found = metrics.holm(p)
    assert np.isnan(found[1])
    assert found[~np.isnan(p)] == pytest.approx(expected, abs=1e-12)
    assert (found[~np.isnan(p)] >= p[~np.isnan(p)]).all()


# Small samples: the expanded percentile interval.


@pytest.mark.parametrize("n_units", [5, 12, 32, 1000])
def test_percentile_interval_is_expanded_for_few_resampling_units(n_units: int) -> None:
    from scipy.stats import norm, t

    from medbench.score.metrics._bootstrap import percentile_intervals

    samples = np.random.default_rng(0).normal(size=(4000, 1))
    lo, hi = percentile_intervals(samples, n_units=n_units)
    # Hesterberg's expanded percentile interval: the quantiles at
    # Phi(-sqrt(n / (n - 1)) t_{n-1, 0.975}) and its complement
    tail = norm.cdf(-np.sqrt(n_units / (n_units - 1)) * t.ppf(0.975, n_units - 1))
    assert (lo[0], hi[0]) == pytest.approx(
        tuple(np.quantile(samples[:, 0], [tail, 1 - tail])), abs=1e-12
    )
    plain_lo, plain_hi = percentile_intervals(samples)
    assert lo[0] <= plain_lo[0] and hi[0] >= plain_hi[0]
