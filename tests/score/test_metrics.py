"""Tests of the metric functions: properties by name, agreement with independent code."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from medbench.score import metrics
from medbench.score.metrics import REFUSAL, UNPARSEABLE, Estimate, TaskAnswers, _bootstrap

K = 4
N = 240
V = 5


@pytest.fixture(params=[0, 1, 7, 42])
def seed(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def make_case(seed: int, n: int = N, v: int = V, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """Truth and an (n, v) answer matrix: a per-image answer most variants keep, some noise."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    base = np.where(rng.random(n) < 0.5, truth, rng.integers(0, k, n))
    noise = rng.integers(UNPARSEABLE, k, (n, v))
    return truth, np.where(rng.random((n, v)) < 0.7, base[:, None], noise)


# Every metric as (truth, answers a, answers b, n_classes) -> float; single-vector metrics
# read column 0 of a, family metrics all of a, paired metrics a and b.
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray, int], float]


def _first(answers: np.ndarray | list[list[int]]) -> np.ndarray | list[int]:
    """Column 0 of an answer matrix, kept a list when given a list."""
    if isinstance(answers, list):
        return [row[0] for row in answers]
    return answers[:, 0]


def _variant(fn: Callable[..., float]) -> Metric:
    return lambda t, a, b, k: fn(t, _first(a), k)


VARIANT_METRICS: dict[str, Metric] = {
    "f1_all": _variant(metrics.f1_all),
    "f1_answered": _variant(metrics.f1_answered),
    "accuracy": _variant(metrics.accuracy),
    "balanced_accuracy": _variant(metrics.balanced_accuracy),
    "refusal_rate": _variant(metrics.refusal_rate),
    "unparseable_rate": _variant(metrics.unparseable_rate),
    "kappa": _variant(metrics.kappa),
}
FAMILY_METRICS: dict[str, Metric] = {
    "disagreement": lambda t, a, b, k: metrics.disagreement(a),
    "prompt_sensitivity": lambda t, a, b, k: metrics.prompt_sensitivity(a, t, k),
    "flip_rate": lambda t, a, b, k: metrics.flip_rate(a),
    "refusal_flip_rate": lambda t, a, b, k: metrics.refusal_flip_rate(a),
    "fleiss_kappa": lambda t, a, b, k: metrics.fleiss_kappa(a),
    "spread": lambda t, a, b, k: metrics.spread(a, t, k),
    "worst_f1": lambda t, a, b, k: metrics.worst_f1(a, t, k),
    "all_variants_f1": lambda t, a, b, k: metrics.all_variants_f1(a, t, k),
    "all_variants_kappa": lambda t, a, b, k: metrics.all_variants_kappa(a, t, k),
}
PAIRED_METRICS: dict[str, Metric] = {
    "paired_f1_difference": lambda t, a, b, k: (
        metrics.paired_f1_difference(t, _first(a), _first(b), k, n_boot=0).value
    ),
    "paired_disagreement_difference": lambda t, a, b, k: (
        metrics.paired_disagreement_difference(a, b, n_boot=0).value
    ),
}
REPLICATE_METRICS: dict[str, Metric] = {
    "noise_floor": lambda t, a, b, k: metrics.noise_floor(_first(a), _first(b), k, n_boot=0).value,
}
ALL_METRICS = {**VARIANT_METRICS, **FAMILY_METRICS, **PAIRED_METRICS, **REPLICATE_METRICS}

BOUNDED_0_1 = {
    "f1_all",
    "f1_answered",
    "accuracy",
    "balanced_accuracy",
    "refusal_rate",
    "unparseable_rate",
    "disagreement",
    "prompt_sensitivity",
    "flip_rate",
    "refusal_flip_rate",
    "spread",
    "worst_f1",
    "all_variants_f1",
    "noise_floor",
}
BOUNDED_MINUS_1_1 = {
    "fleiss_kappa",
    "kappa",
    "all_variants_kappa",
    "paired_f1_difference",
    "paired_disagreement_difference",
}
INVARIANT_TO_SAMPLE_ORDER = set(ALL_METRICS)
INVARIANT_TO_CLASS_RELABELLING = set(ALL_METRICS)
LIST_OR_ARRAY = set(ALL_METRICS)
SYMMETRIC_IN_VARIANTS = set(FAMILY_METRICS)
ANTISYMMETRIC_IN_MODELS = set(PAIRED_METRICS)

PROPERTY_SETS = {
    "BOUNDED_0_1": BOUNDED_0_1,
    "BOUNDED_MINUS_1_1": BOUNDED_MINUS_1_1,
    "INVARIANT_TO_SAMPLE_ORDER": INVARIANT_TO_SAMPLE_ORDER,
    "INVARIANT_TO_CLASS_RELABELLING": INVARIANT_TO_CLASS_RELABELLING,
    "LIST_OR_ARRAY": LIST_OR_ARRAY,
    "SYMMETRIC_IN_VARIANTS": SYMMETRIC_IN_VARIANTS,
    "ANTISYMMETRIC_IN_MODELS": ANTISYMMETRIC_IN_MODELS,
}


def _call(name: str, truth: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return ALL_METRICS[name](truth, a, b, K)


def _pair(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    truth, a = make_case(seed)
    _, b = make_case(seed + 1000)
    return truth, a, b


NOT_REGISTERED = {
    "as_clusters",
    "brier",
    "chance_f1",
    "chance_p_value",
    "consensus",
    "mean_all_variants_f1",
    "mean_all_variants_kappa",
    "mean_kappa",
    "mean_relative_f1",
    "mean_worst_f1",
    "mean_worst_kappa",
    "has_skill",
    "holm",
    "confidence",
    "ece",
    "risk_coverage",
    "softmax",
    "fragility_index",
    "group_units",
    "mcnemar_clustered",
    "mcnemar_exact",
    "mean_f1_all",
    "paired_f1_test",
    "pdr",
    "pooled_shares",
    "score_family",
    "score_variant",
    "score_variants",
    "worse_than_chance",
}
"""Public functions that are not a metric of answers (calibration takes probabilities):
tested on their own below."""


def test_every_metric_is_in_a_property_set_and_every_member_exists() -> None:
    for name in ALL_METRICS:
        assert any(name in members for members in PROPERTY_SETS.values()), name
    for set_name, members in PROPERTY_SETS.items():
        assert members <= set(ALL_METRICS), set_name


def test_every_metric_has_a_known_range() -> None:
    assert set(ALL_METRICS) == BOUNDED_0_1 | BOUNDED_MINUS_1_1
    assert not BOUNDED_0_1 & BOUNDED_MINUS_1_1


def test_every_public_function_is_registered_or_tested_alone() -> None:
    functions = {name for name in metrics.__all__ if name[0].islower()}
    assert functions - NOT_REGISTERED == set(ALL_METRICS)


@pytest.mark.parametrize("name", sorted(BOUNDED_0_1))
def test_metric_is_bounded_0_1(name: str, seed: int) -> None:
    value = _call(name, *_pair(seed))
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize("name", sorted(BOUNDED_MINUS_1_1))
def test_metric_is_bounded_minus_1_1(name: str, seed: int) -> None:
    value = _call(name, *_pair(seed))
    assert -1.0 <= value <= 1.0


@pytest.mark.parametrize("name", sorted(INVARIANT_TO_SAMPLE_ORDER))
def test_metric_is_invariant_to_sample_order(name: str, seed: int) -> None:
    truth, a, b = _pair(seed)
    order = np.random.default_rng(seed).permutation(len(truth))
    assert _call(name, truth[order], a[order], b[order]) == pytest.approx(
        _call(name, truth, a, b), abs=1e-12
    )


@pytest.mark.parametrize("name", sorted(INVARIANT_TO_CLASS_RELABELLING))
def test_metric_is_invariant_to_class_relabelling(name: str, seed: int) -> None:
    truth, a, b = _pair(seed)
    relabel = np.random.default_rng(seed).permutation(K)

    def apply(codes: np.ndarray) -> np.ndarray:
        return np.where(codes >= 0, relabel[np.maximum(codes, 0)], codes)

    assert _call(name, apply(truth), apply(a), apply(b)) == pytest.approx(
        _call(name, truth, a, b), abs=1e-12
    )


@pytest.mark.parametrize("name", sorted(LIST_OR_ARRAY))
def test_metric_accepts_lists_or_arrays(name: str) -> None:
    truth, a, b = _pair(3)
    as_lists = ALL_METRICS[name](truth.tolist(), a.tolist(), b.tolist(), K)
    assert as_lists == _call(name, truth, a, b)


@pytest.mark.parametrize("name", sorted(SYMMETRIC_IN_VARIANTS))
def test_metric_is_symmetric_in_variants(name: str, seed: int) -> None:
    truth, a, b = _pair(seed)
    columns = np.random.default_rng(seed).permutation(a.shape[1])
    assert _call(name, truth, a[:, columns], b) == pytest.approx(
        _call(name, truth, a, b), abs=1e-12
    )


@pytest.mark.parametrize("name", sorted(ANTISYMMETRIC_IN_MODELS))
def test_metric_is_antisymmetric_in_models(name: str, seed: int) -> None:
    truth, a, b = _pair(seed)
    assert _call(name, truth, b, a) == pytest.approx(-_call(name, truth, a, b), abs=1e-12)


# Agreement with independent computations.

OUTSIDE = K  # refusal and unparseable as a label outside range(K) for scikit-learn


def _sklearn_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    mapped = np.where(pred >= 0, pred, OUTSIDE)
    return float(f1_score(truth, mapped, labels=range(K), average="macro", zero_division=0))


def test_f1_all_matches_sklearn(seed: int) -> None:
    truth, answers = make_case(seed)
    for v in range(V):
        assert metrics.f1_all(truth, answers[:, v], K) == pytest.approx(
            _sklearn_f1(truth, answers[:, v]), abs=1e-9
        )


def test_f1_answered_matches_sklearn_on_answered_images(seed: int) -> None:
    truth, answers = make_case(seed)
    pred = answers[:, 0]
    answered = pred >= 0
    expected = f1_score(
        truth[answered], pred[answered], labels=range(K), average="macro", zero_division=0
    )
    assert metrics.f1_answered(truth, pred, K) == pytest.approx(expected, abs=1e-9)


def test_f1_all_counts_a_class_absent_from_truth_and_prediction_as_zero() -> None:
    assert metrics.f1_all([0, 0, 1], [0, 0, REFUSAL], 3) == pytest.approx(1 / 3)


def test_f1_answered_is_nan_when_nothing_is_answered() -> None:
    assert np.isnan(metrics.f1_answered([0, 1], [REFUSAL, UNPARSEABLE], 2))


def test_accuracy_matches_sklearn(seed: int) -> None:
    truth, answers = make_case(seed)
    expected = accuracy_score(truth, np.where(answers[:, 0] >= 0, answers[:, 0], OUTSIDE))
    assert metrics.accuracy(truth, answers[:, 0], K) == pytest.approx(expected, abs=1e-9)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true:UserWarning")
def test_balanced_accuracy_matches_sklearn(seed: int) -> None:
    truth, answers = make_case(seed, k=6)
    truth = np.where(truth == 5, 0, truth)  # class 5 never occurs in truth
    pred = answers[:, 0]
    expected = balanced_accuracy_score(truth, np.where(pred >= 0, pred, 6))
    assert metrics.balanced_accuracy(truth, pred, 6) == pytest.approx(expected, abs=1e-9)


def test_refusal_and_unparseable_rates_are_shares_of_images(seed: int) -> None:
    truth, answers = make_case(seed)
    pred = answers[:, 0]
    assert metrics.refusal_rate(truth, pred, K) == pytest.approx(np.mean(pred == REFUSAL))
    assert metrics.unparseable_rate(truth, pred, K) == pytest.approx(np.mean(pred == UNPARSEABLE))


def test_disagreement_matches_a_loop_over_variant_pairs(seed: int) -> None:
    _, answers = make_case(seed)
    rows = answers.tolist()
    pairs = list(itertools.combinations(range(V), 2))
    expected = sum(sum(r[u] != r[v] for r in rows) / len(rows) for u, v in pairs) / len(pairs)
    assert metrics.disagreement(answers) == pytest.approx(expected, abs=1e-9)


def test_flip_rate_matches_a_loop_over_images(seed: int) -> None:
    _, answers = make_case(seed)
    expected = sum(len(set(row)) > 1 for row in answers.tolist()) / len(answers)
    assert metrics.flip_rate(answers) == pytest.approx(expected, abs=1e-9)


def test_refusal_flip_rate_matches_a_loop_over_images(seed: int) -> None:
    _, answers = make_case(seed)
    rows = answers.tolist()
    expected = sum(
        any(c == REFUSAL for c in row) and any(c != REFUSAL for c in row) for row in rows
    ) / len(rows)
    assert metrics.refusal_flip_rate(answers) == pytest.approx(expected, abs=1e-9)


def test_fleiss_kappa_matches_statsmodels(seed: int) -> None:
    _, answers = make_case(seed)
    table, _ = aggregate_raters(answers)
    expected = statsmodels_fleiss_kappa(table, method="fleiss")
    assert metrics.fleiss_kappa(answers) == pytest.approx(expected, abs=1e-9)


def test_fleiss_kappa_is_nan_when_every_answer_is_the_same() -> None:
    assert np.isnan(metrics.fleiss_kappa(np.full((5, 3), REFUSAL)))


def test_spread_worst_f1_and_pdr_match_sklearn_per_variant(seed: int) -> None:
    truth, answers = make_case(seed)
    f1 = np.array([_sklearn_f1(truth, answers[:, v]) for v in range(V)])
    assert metrics.spread(answers, truth, K) == pytest.approx(f1.max() - f1.min(), abs=1e-9)
    assert metrics.worst_f1(answers, truth, K) == pytest.approx(f1.min(), abs=1e-9)
    np.testing.assert_allclose(metrics.pdr(answers, truth, K, 2), (f1[2] - f1) / f1[2], atol=1e-9)


def test_pdr_is_nan_when_the_reference_scores_zero() -> None:
    truth = np.array([0, 1, 0, 1])
    answers = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    assert np.isnan(metrics.pdr(answers, truth, 2, 0)).all()


def test_mcnemar_exact_matches_statsmodels_and_a_binomial_test(seed: int) -> None:
    truth, a, b = _pair(seed)
    correct_a, correct_b = a[:, 0] == truth, b[:, 0] == truth
    result = metrics.mcnemar_exact(correct_a, correct_b)
    n01 = int(np.sum(~correct_a & correct_b))
    n10 = int(np.sum(correct_a & ~correct_b))
    table = [[np.sum(correct_a & correct_b), n10], [n01, np.sum(~correct_a & ~correct_b)]]
    reference = mcnemar(np.array(table), exact=True)
    assert (result.n01, result.n10) == (n01, n10)
    assert result.statistic == reference.statistic == min(n01, n10)
    assert result.p_value == pytest.approx(reference.pvalue, abs=1e-12)
    assert result.p_value == pytest.approx(binomtest(n01, n01 + n10).pvalue, abs=1e-9)


def test_mcnemar_exact_without_discordant_images_has_p_value_1() -> None:
    same = np.array([True, False, True])
    assert metrics.mcnemar_exact(same, same) == (0.0, 1.0, 0, 0, "mcnemar_exact")


def test_paired_differences_are_differences_of_the_metrics(seed: int) -> None:
    truth, a, b = _pair(seed)
    f1 = metrics.paired_f1_difference(truth, a[:, 1], b[:, 1], K, seed=seed, n_boot=200)
    expected = _sklearn_f1(truth, a[:, 1]) - _sklearn_f1(truth, b[:, 1])
    assert f1.value == pytest.approx(expected, abs=1e-9)
    fragility = metrics.paired_disagreement_difference(a, b[:, :3], seed=seed, n_boot=200)
    expected = metrics.disagreement(a) - metrics.disagreement(b[:, :3])
    assert fragility.value == pytest.approx(expected, abs=1e-9)
    assert f1.lo <= f1.value <= f1.hi
    assert fragility.lo <= fragility.value <= fragility.hi


def test_chance_f1_is_one_over_k_for_balanced_classes() -> None:
    assert metrics.chance_f1([10, 10, 10, 10]) == pytest.approx(0.25)


def test_chance_f1_matches_uniform_random_guessers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = np.array([3000, 1200, 500, 300])
    truth = np.repeat(np.arange(K), counts)
    guesses = rng.integers(0, K, (200, len(truth)))
    empirical = np.mean([metrics.f1_all(truth, g, K) for g in guesses])
    assert metrics.chance_f1(counts) == pytest.approx(empirical, abs=0.01)


def test_worse_than_chance_compares_with_the_guessers_distribution_at_n() -> None:
    counts = np.array([8, 8])
    assert metrics.worse_than_chance(0.0, counts)  # no image right: p = 1/256 or so
    assert not metrics.worse_than_chance(0.45, counts)
    assert not metrics.worse_than_chance(float("nan"), counts)


def test_chance_p_value_is_the_share_of_guessers_at_or_below_the_score() -> None:
    counts = np.array([5, 3, 2])
    rng = np.random.default_rng(11)
    truth = np.repeat(np.arange(3), counts)
    guessed = [metrics.f1_all(truth, rng.integers(0, 3, 10), 3) for _ in range(4000)]
    for score in (0.1, 0.2, 0.3, 0.4):
        expected = np.mean(np.array(guessed) <= score + 1e-12)
        assert metrics.chance_p_value(score, counts) == pytest.approx(expected, abs=0.03)


@pytest.mark.parametrize("counts", [(8, 8), (8, 8, 8), (8, 8, 8, 8)])
def test_worse_than_chance_flags_a_true_random_guesser_at_most_2_5_percent(
    counts: tuple[int, ...],
) -> None:
    k = len(counts)
    truth = np.repeat(np.arange(k), counts)
    flagged = []
    for seed in range(1500):
        guess = np.random.default_rng(seed).integers(0, k, len(truth))
        flagged.append(metrics.worse_than_chance(metrics.f1_all(truth, guess, k), counts))
    # one-sided 2.5%, with two Monte Carlo standard errors (the bootstrap CI's rule: 5.4-9.1%)
    assert np.mean(flagged) <= 0.025 + 2 * np.sqrt(0.025 * 0.975 / 1500)


# Scores with bootstrap intervals.


def test_score_variant_values_equal_the_point_functions(seed: int) -> None:
    truth, answers = make_case(seed)
    pred = answers[:, 0]
    scores = metrics.score_variant(truth, pred, K, seed=seed, n_boot=300)
    assert scores.n == N
    assert scores.n_answered == int(np.sum(pred >= 0))
    for name in VARIANT_METRICS:
        found: Estimate = getattr(scores, name)
        assert found.value == pytest.approx(getattr(metrics, name)(truth, pred, K), abs=1e-12)
        assert found.lo <= found.value <= found.hi


def test_score_variants_matches_score_variant_per_column(seed: int) -> None:
    truth, answers = make_case(seed)
    together = metrics.score_variants(truth, answers, K, seed=seed, n_boot=1000)
    assert len(together) == V
    for v, scores in enumerate(together):
        alone = metrics.score_variant(truth, answers[:, v], K, seed=seed, n_boot=1000)
        assert (scores.n, scores.n_answered) == (alone.n, alone.n_answered)
        for name in VARIANT_METRICS:
            found, expected = getattr(scores, name), getattr(alone, name)
            assert found.value == expected.value
            assert found.lo == pytest.approx(expected.lo, abs=0.025)
            assert found.hi == pytest.approx(expected.hi, abs=0.025)


EXTREME_VALUE = {"spread", "worst_f1"}
"""A max or min over variants: biased in every resample, so a percentile interval misses its
own point value (and a true spread of 0 nearly always); reported without an interval."""


def test_extreme_value_statistics_are_reported_without_an_interval() -> None:
    truth, answers = make_case(0, n=32)
    scores = metrics.score_family(answers, truth, K, 0, n_boot=300)
    tasks = [TaskAnswers(answers, truth, K)]
    for found in (
        scores.spread,
        scores.worst_f1,
        metrics.mean_worst_f1(tasks, n_boot=300),
        metrics.mean_worst_kappa(tasks, n_boot=300),
    ):
        assert not np.isnan(found.value)
        assert np.isnan(found.lo) and np.isnan(found.hi)


def test_score_family_values_equal_the_point_functions(seed: int) -> None:
    truth, answers = make_case(seed)
    scores = metrics.score_family(answers, truth, K, 1, seed=seed, n_boot=300)
    assert (scores.n_images, scores.n_variants, scores.reference) == (N, V, 1)
    for name, metric in FAMILY_METRICS.items():
        found: Estimate = getattr(scores, name)
        assert found.value == pytest.approx(metric(truth, answers, answers, K), abs=1e-12)
        if name in EXTREME_VALUE:
            assert np.isnan(found.lo) and np.isnan(found.hi), name
        else:
            assert found.lo <= found.value <= found.hi
    f1 = [_sklearn_f1(truth, answers[:, v]) for v in range(V)]
    assert [e.value for e in scores.f1_all] == pytest.approx(f1, abs=1e-9)
    assert [e.value for e in scores.pdr] == pytest.approx(
        metrics.pdr(answers, truth, K, 1).tolist(), abs=1e-12
    )
    assert scores.pdr[1] == Estimate(0.0, 0.0, 0.0)


def test_scores_are_reproducible_with_a_seed(seed: int) -> None:
    truth, answers = make_case(seed)
    first = metrics.score_family(answers, truth, K, 0, seed=seed, n_boot=200)
    assert metrics.score_family(answers, truth, K, 0, seed=seed, n_boot=200) == first
    other = metrics.score_family(answers, truth, K, 0, seed=seed + 1, n_boot=200)
    assert other.disagreement.value == first.disagreement.value
    assert other.disagreement.lo != first.disagreement.lo


def test_score_variant_interval_is_invariant_to_sample_order(seed: int) -> None:
    truth, answers = make_case(seed)
    order = np.random.default_rng(seed).permutation(N)
    scores = metrics.score_variant(truth, answers[:, 0], K, seed=seed, n_boot=200)
    shuffled = metrics.score_variant(truth[order], answers[order, 0], K, seed=seed, n_boot=200)
    assert shuffled == scores


def test_no_resample_gives_nan_intervals() -> None:
    truth, answers = make_case(0)
    scores = metrics.score_variant(truth, answers[:, 0], K, n_boot=0)
    assert np.isnan(scores.f1_all.lo) and np.isnan(scores.f1_all.hi)
    assert not np.isnan(scores.f1_all.value)


def test_interval_leaves_out_resamples_where_the_metric_is_undefined() -> None:
    truth = np.zeros(30, dtype=np.int64)
    pred = np.full(30, REFUSAL)
    pred[0] = 0  # one answered image: most resamples have none answered... or a few
    scores = metrics.score_variant(truth, pred, 2, seed=0, n_boot=500)
    assert scores.f1_answered.value == pytest.approx(0.5)
    assert scores.f1_answered.lo == scores.f1_answered.hi == pytest.approx(0.5)
    nothing = metrics.score_variant(truth, np.full(30, REFUSAL), 2, n_boot=100)
    assert np.isnan([nothing.f1_answered.value, nothing.f1_answered.lo]).all()


def test_interval_matches_a_naive_bootstrap_loop() -> None:
    truth, answers = make_case(5, n=400)
    pred = answers[:, 0]
    rng = np.random.default_rng(123)
    mapped = np.where(pred >= 0, pred, OUTSIDE)
    naive = []
    for _ in range(2000):
        idx = rng.integers(0, len(truth), len(truth))
        confusion = np.zeros((K, K + 1))
        np.add.at(confusion, (truth[idx], mapped[idx]), 1)
        tp = np.diag(confusion)
        denominator = confusion.sum(axis=1) + confusion[:, :K].sum(axis=0)
        naive.append(np.mean(np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0)))
    lo, hi = np.percentile(naive, [2.5, 97.5])
    found = metrics.score_variant(truth, pred, K, seed=0, n_boot=2000).f1_all
    assert found.lo == pytest.approx(lo, abs=0.01)
    assert found.hi == pytest.approx(hi, abs=0.01)


@pytest.mark.parametrize("sizes", [[3, 1, 6], [1] * 50, [400, 250, 1, 9]])
def test_resample_counts_follow_the_multinomial_distribution(sizes: list[int]) -> None:
    sizes_ = np.array(sizes, dtype=np.int64)
    n = int(sizes_.sum())
    counts = np.vstack(list(_bootstrap.resample_counts(sizes_, 20000, np.random.default_rng(0))))
    assert counts.shape == (20000, len(sizes))
    assert (counts.sum(axis=1) == n).all()
    p = sizes_ / n
    mean, variance = n * p, n * p * (1 - p)
    # 20,000 draws: the sample mean is within 5 standard errors, the variance within 6%
    assert (np.abs(counts.mean(axis=0) - mean) <= 5 * np.sqrt(variance / 20000)).all()
    np.testing.assert_allclose(counts.var(axis=0), variance, rtol=0.06)


def test_resample_counts_come_in_chunks_of_bounded_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bootstrap, "_CHUNK_ELEMENTS", 1000)
    sizes = np.ones(300, dtype=np.int64)
    chunks = list(_bootstrap.resample_counts(sizes, 25, np.random.default_rng(0)))
    assert [len(c) for c in chunks] == [3] * 8 + [1]
    assert all(c.size <= 1000 for c in chunks)


@pytest.mark.parametrize("n_images", [1000, 400_000])
def test_bootstrap_sums_are_exact_integer_sums(n_images: int) -> None:
    rng = np.random.default_rng(0)
    sizes = rng.multinomial(n_images, np.full(50, 1 / 50)).astype(np.int64)
    features = rng.integers(0, 46, (50, 7)).astype(np.float32)
    observed, resampled = _bootstrap.bootstrap_sums(features, sizes, 30, np.random.default_rng(1))
    counts = np.vstack(list(_bootstrap.resample_counts(sizes, 30, np.random.default_rng(1))))
    exact = features.astype(np.int64)
    np.testing.assert_array_equal(observed, sizes @ exact)
    np.testing.assert_array_equal(resampled, counts @ exact)


def test_fragility_index_and_mean_f1_all_average_over_tasks(seed: int) -> None:
    cases = [make_case(seed + t, n=100 + 50 * t, v=3 + t) for t in range(3)]
    index = metrics.fragility_index([a for _, a in cases], seed=seed, n_boot=300)
    assert index.value == pytest.approx(np.mean([metrics.disagreement(a) for _, a in cases]))
    assert index.lo <= index.value <= index.hi
    tasks = [TaskAnswers(a, t, K) for t, a in cases]
    mean = metrics.mean_f1_all(tasks, seed=seed, n_boot=300)
    expected = np.mean(
        [np.mean([_sklearn_f1(t, a[:, v]) for v in range(a.shape[1])]) for t, a in cases]
    )
    assert mean.value == pytest.approx(expected, abs=1e-9)
    assert mean.lo <= mean.value <= mean.hi
    worst = metrics.mean_worst_f1(tasks, seed=seed, n_boot=300)
    expected = np.mean([min(_sklearn_f1(t, a[:, v]) for v in range(a.shape[1])) for t, a in cases])
    assert worst.value == pytest.approx(expected, abs=1e-9)
    assert np.isnan(worst.lo) and np.isnan(worst.hi)  # an extreme-value statistic
    headline = metrics.mean_all_variants_f1(tasks, seed=seed, n_boot=300)
    expected = np.mean([metrics.all_variants_f1(a, t, K) for t, a in cases])
    assert headline.value == pytest.approx(expected, abs=1e-9)
    assert headline.lo <= headline.value <= headline.hi


# The all-variants F1 (headline score) and the ranking it gives synthetic models.


def _unanimous_or_unparseable(truth: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """Each image's answer when all variants give it, else UNPARSEABLE: a plain loop."""
    return np.array([row[0] if len(set(row)) == 1 else UNPARSEABLE for row in answers.tolist()])


def test_all_variants_f1_is_f1_all_of_the_unanimous_answers(seed: int) -> None:
    truth, answers = make_case(seed)
    expected = _sklearn_f1(truth, _unanimous_or_unparseable(truth, answers))
    assert metrics.all_variants_f1(answers, truth, K) == pytest.approx(expected, abs=1e-12)


def test_all_variants_f1_is_f1_all_with_one_variant(seed: int) -> None:
    truth, answers = make_case(seed)
    one = answers[:, :1]
    assert metrics.all_variants_f1(one, truth, K) == pytest.approx(
        metrics.f1_all(truth, one[:, 0], K), abs=1e-12
    )


def test_all_variants_f1_is_at_most_the_worst_variant_f1_on_a_correct_only_count() -> None:
    truth = np.array([0, 0, 1, 1])
    answers = np.array([[0, 0], [0, 1], [1, 1], [1, 0]])
    # Images 0 and 2 are right under both variants; 1 and 3 flip: TP* = 1 per class.
    assert metrics.all_variants_f1(answers, truth, 2) == pytest.approx(2 / 3)


def test_score_family_all_variants_f1_equals_the_point_function(seed: int) -> None:
    truth, answers = make_case(seed)
    scores = metrics.score_family(answers, truth, K, 0, seed=seed, n_boot=200)
    assert scores.all_variants_f1.value == pytest.approx(
        metrics.all_variants_f1(answers, truth, K), abs=1e-12
    )
    assert scores.all_variants_f1.lo <= scores.all_variants_f1.value <= scores.all_variants_f1.hi


def _synthetic_models(seed: int, n: int = 400, v: int = 4, k: int = 3) -> dict[str, np.ndarray]:
    """Answer matrices of degenerate and good models on one balanced task."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % k
    right = np.repeat(truth[:, None], v, axis=1)
    wrong_somewhere = rng.random((n, v)) < 0.35
    return {
        "truth": truth,
        "perfect": right,
        "right_and_stable": np.where(rng.random((n, 1)) < 0.85, right, (right + 1) % k),
        "right_but_fragile": np.where(wrong_somewhere, (right + 1) % k, right),
        "constant": np.zeros((n, v), dtype=np.int64),
        "majority_by_variant": np.tile(np.arange(v) % k, (n, 1)),
        "random": rng.integers(0, k, (n, v)),
        "always_refusing": np.full((n, v), REFUSAL),
        "always_unparseable": np.full((n, v), UNPARSEABLE),
    }


def test_headline_ranks_degenerate_models_below_right_and_stable(seed: int) -> None:
    found = _synthetic_models(seed)
    truth = found.pop("truth")
    score = {
        name: metrics.mean_all_variants_f1([TaskAnswers(a, truth, 3)], n_boot=200)
        for name, a in found.items()
    }
    ranking = sorted(score, key=lambda name: -score[name].value)
    assert ranking[:3] == ["perfect", "right_and_stable", "right_but_fragile"]
    assert score["perfect"].value == 1.0
    chance = metrics.chance_f1(np.bincount(truth))
    for degenerate in ("constant", "majority_by_variant", "random", "always_refusing"):
        assert score[degenerate].value <= chance + 0.01, degenerate
        # Not merely below on the point value: the intervals do not overlap.
        assert score[degenerate].hi < score["right_and_stable"].lo, degenerate
    assert score["always_refusing"].value == 0.0
    assert score["always_unparseable"].value == 0.0
    # Fragility alone cannot tell these apart: the degenerate models tie with the best.
    fragility = {name: metrics.disagreement(a) for name, a in found.items()}
    assert fragility["constant"] == fragility["always_refusing"] == 0.0
    assert fragility["right_and_stable"] == fragility["perfect"] == 0.0
    assert fragility["right_but_fragile"] > fragility["constant"]


# Input validation: whole messages.


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.f1_all([0, 4], [0, 1], 4), "truth must hold codes in 0..3, got 4 at 1"),
        (lambda: metrics.f1_all([0, 1], [0, -3], 4), "pred must hold codes in -2..3, got -3 at 1"),
        (lambda: metrics.f1_all([0, 1], [0], 4), "pred must cover the 2 images of truth, got 1"),
        (lambda: metrics.f1_all([], [], 4), "truth must hold at least one image, got none"),
        (
            lambda: metrics.f1_all([0.0, 1.0], [0, 1], 4),
            "truth must hold integer codes, got dtype float64",
        ),
        (lambda: metrics.f1_all([0], [0], 0), "n_classes must be at least 1, got 0"),
        (
            lambda: metrics.disagreement([[0], [1]]),
            "answers must have at least 2 variant columns, got 1",
        ),
        (
            lambda: metrics.disagreement([0, 1]),
            r"answers must be 2-dimensional, got shape \(2,\)",
        ),
        (
            lambda: metrics.score_family([[0, 1]], [0], 2, 2),
            "reference must be a variant column in 0..1, got 2",
        ),
        (
            lambda: metrics.score_variant([0], [0], 2, n_boot=-1),
            r"n_boot must be 0 \(no interval\) or more, got -1",
        ),
        (lambda: metrics.fragility_index([]), "needs at least one task, got none"),
        (
            lambda: metrics.mean_f1_all([TaskAnswers([[0, 1]], [0, 1], 2)]),
            r"tasks\[0\]\.answers must cover the 2 images of tasks\[0\]\.truth, got 1",
        ),
        (
            lambda: metrics.paired_disagreement_difference([[0, 1]], [[0, 1], [1, 1]]),
            "answers_b must cover the 1 images of answers_a, got 2",
        ),
        (
            lambda: metrics.chance_f1([0, 0]),
            r"class_counts must be non-negative with a positive sum, got \[0. 0.\]",
        ),
        (
            lambda: metrics.mcnemar_exact([1, 0], [True, False]),
            "correct_a and correct_b must be boolean, got int64 and bool",
        ),
    ],
)
def test_invalid_input_is_rejected_with_a_clear_message(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{message}$"):
        call()


# calibration of probabilities over options


def make_probs(seed: int, n: int = N, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities over k options that lean toward the truth, with ties on a coarse grid."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[truth]
    logits = np.round(logits, 1)  # coarse: some items share a confidence
    return metrics.softmax(logits), truth


def brute_force_ece(probs: np.ndarray, truth: np.ndarray, bins: int) -> float:
    """Item by item into right-closed bins (lo, hi], a confidence of 0 in the first."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = []
        for p, t in zip(probs, truth, strict=True):
            top = max(range(len(p)), key=lambda i: (p[i], -i))
            c = p[top]
            if (lo < c <= hi) or (b == 0 and c == 0):
                members.append((c, top == t))
        if members:
            conf = sum(c for c, _ in members) / len(members)
            acc = sum(ok for _, ok in members) / len(members)
            total += len(members) / len(truth) * abs(acc - conf)
    return total


@pytest.mark.parametrize("k", [2, 3, 4])
def test_brier_equals_sklearn_brier_score_loss(seed: int, k: int) -> None:
    from sklearn.metrics import brier_score_loss

    probs, truth = make_probs(seed, k=k)
    if k == 2:
        expected = brier_score_loss(truth, probs[:, 1])
    else:
        expected = brier_score_loss(truth, probs, labels=list(range(k)))
    assert metrics.brier(probs, truth) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_equals_a_brute_force_computation(seed: int, bins: int) -> None:
    probs, truth = make_probs(seed)
    assert metrics.ece(probs, truth, bins) == pytest.approx(
        brute_force_ece(probs, truth, bins), abs=1e-9
    )


def test_ece_of_a_perfectly_calibrated_and_an_overconfident_model() -> None:
    # confidence 0.75 in each item, three in four right: calibrated
    probs = np.array([[0.75, 0.25]] * 4)
    assert metrics.ece(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0, abs=1e-12)
    assert metrics.ece(probs, np.array([1, 1, 1, 1])) == pytest.approx(0.75)


def test_risk_coverage_matches_a_brute_force_curve_and_area(seed: int) -> None:
    probs, truth = make_probs(seed)
    curve = metrics.risk_coverage(probs, truth)
    pred, conf = probs.argmax(axis=1), probs.max(axis=1)
    thresholds = sorted(set(conf.tolist()), reverse=True)
    assert curve.thresholds == tuple(thresholds)
    area, previous = 0.0, 0.0
    for threshold, coverage, risk in zip(thresholds, curve.coverage, curve.risk, strict=True):
        answered = [i for i in range(len(truth)) if conf[i] >= threshold]
        assert coverage == pytest.approx(len(answered) / len(truth), abs=1e-12)
        wrong = sum(pred[i] != truth[i] for i in answered)
        assert risk == pytest.approx(wrong / len(answered), abs=1e-12)
        area += (coverage - previous) * risk
        previous = coverage
    assert curve.coverage[-1] == 1.0
    assert curve.aurc == pytest.approx(area, abs=1e-9)


def test_risk_coverage_area_without_ties_is_the_mean_risk_of_the_top_k() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    truth = np.array([0, 0, 0, 1])  # the second most confident item is wrong
    risks = [0 / 1, 1 / 2, 1 / 3, 1 / 4]
    assert metrics.risk_coverage(probs, truth).aurc == pytest.approx(sum(risks) / 4, abs=1e-12)


def test_calibration_rejects_mismatched_shapes() -> None:
    with pytest.raises(
        ValueError, match=r"^expected probs \(N, K\) and truth \(N,\), got \(2, 2\) and \(3,\)$"
    ):
        metrics.brier(np.full((2, 2), 0.5), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"^truth indices must lie in 0\.\.1$"):
        metrics.ece(np.full((2, 2), 0.5), np.array([0, 2]))


def test_softmax_rows_sum_to_one_and_keep_the_order() -> None:
    p = metrics.softmax([[-1000.0, -1001.0], [0.0, 0.0]])
    assert p.sum(axis=1) == pytest.approx([1.0, 1.0])
    assert p[0, 0] > p[0, 1] and p[1, 0] == p[1, 1]


# Families of one task ask the same images: one image resample serves them all.


def test_fragility_index_of_a_task_asked_by_two_families_has_one_familys_width(seed: int) -> None:
    _, answers = make_case(seed, n=64)
    once = metrics.fragility_index([answers], seed=seed, n_boot=400)
    twice = metrics.fragility_index(
        [answers, answers.copy()], seed=seed, n_boot=400, tasks=["t", "t"]
    )
    assert twice == once
    assert twice.hi - twice.lo > 0


def test_model_scores_align_a_tasks_families_by_image_id(seed: int) -> None:
    truth, answers = make_case(seed, n=64)
    order = np.random.default_rng(seed).permutation(64)
    ids = np.array([f"img{i:03d}" for i in range(64)])
    tasks = [
        TaskAnswers(answers, truth, K, task="t", images=ids),
        TaskAnswers(answers[order], truth[order], K, task="t", images=ids[order][::1]),
    ]
    once = metrics.mean_all_variants_kappa([tasks[0]], seed=seed, n_boot=300)
    assert metrics.mean_all_variants_kappa(tasks, seed=seed, n_boot=300) == once
    fi = metrics.fragility_index(
        [answers, answers[order]], seed=seed, n_boot=300, tasks=["t", "t"], images=[ids, ids[order]]
    )
    assert fi == metrics.fragility_index([answers], seed=seed, n_boot=300)


def test_model_scores_of_families_with_different_images_need_image_ids() -> None:
    truth, answers = make_case(0, n=64)
    tasks = [
        TaskAnswers(answers, truth, K, task="t"),
        TaskAnswers(answers[:10], truth[:10], K, task="t"),
    ]
    with pytest.raises(
        ValueError, match="^the entries of task:t hold different images: name them with `images`$"
    ):
        metrics.mean_f1_all(tasks)


def _pss_loop(truth: np.ndarray, answers: np.ndarray) -> float:
    """ProSA's PromptSensiScore as written: a plain loop over images and variant pairs."""
    per_image = []
    for y, row in zip(truth.tolist(), answers.tolist(), strict=True):
        pairs = list(itertools.combinations(row, 2))
        per_image.append(np.mean([abs((u == y) - (v == y)) for u, v in pairs]))
    return float(np.mean(per_image))


def test_prompt_sensitivity_matches_prosas_definition(seed: int) -> None:
    truth, answers = make_case(seed)
    assert metrics.prompt_sensitivity(answers, truth, K) == pytest.approx(
        _pss_loop(truth, answers), abs=1e-12
    )
    scores = metrics.score_family(answers, truth, K, 0, seed=seed, n_boot=200)
    assert scores.prompt_sensitivity.value == pytest.approx(_pss_loop(truth, answers), abs=1e-12)
    assert scores.prompt_sensitivity.lo <= scores.prompt_sensitivity.value


def test_prompt_sensitivity_counts_only_changes_of_correctness() -> None:
    truth = np.array([0, 0])
    answers = np.array([[1, 2, REFUSAL], [0, 0, 0]])  # wrong three ways; right every time
    assert metrics.prompt_sensitivity(answers, truth, 3) == 0.0
    assert metrics.disagreement(answers) == pytest.approx(0.5)


def test_mean_relative_f1_is_the_mean_over_levels_of_f1_relative_to_the_clean_f1(
    seed: int,
) -> None:
    truth, answers = make_case(seed)
    clean = metrics.f1_all(truth, answers[:, 0], K)
    # level 2 did not ask the first ten images: its F1 is over the others
    levels = answers[:, :3].copy()
    levels[:10, 2] = metrics.NOT_ASKED
    expected = np.mean(
        [
            metrics.f1_all(truth, answers[:, 1], K) / clean,
            metrics.f1_all(truth[10:], answers[10:, 2], K) / clean,
        ]
    )
    found, left_out = metrics.mean_relative_f1(
        [TaskAnswers(levels, truth, K)], seed=seed, n_boot=200
    )
    assert found.value == pytest.approx(expected, abs=1e-12) and left_out == 0
    assert found.lo <= found.value <= found.hi
    order = np.random.default_rng(seed).permutation(len(truth))
    again, _ = metrics.mean_relative_f1(
        [TaskAnswers(levels[order], truth[order], K)], seed=seed, n_boot=200
    )
    assert again == found  # the order of the images changes nothing


def test_mean_relative_f1_leaves_out_entries_whose_clean_f1_is_zero() -> None:
    truth = np.array([0, 1, 0, 1])
    right = np.column_stack([truth, truth])
    refused = np.column_stack([np.full(4, REFUSAL), truth])
    found, left_out = metrics.mean_relative_f1(
        [TaskAnswers(right, truth, 2), TaskAnswers(refused, truth, 2)], n_boot=50
    )
    assert (found.value, left_out) == (1.0, 1)
    found, left_out = metrics.mean_relative_f1([TaskAnswers(refused, truth, 2)], n_boot=50)
    assert np.isnan(found.value) and left_out == 1


def test_mean_relative_f1_needs_every_clean_answer_and_a_level() -> None:
    truth = np.array([0, 1])
    gap = np.array([[metrics.NOT_ASKED, 0], [1, 1]])
    with pytest.raises(
        ValueError,
        match=r"^tasks\[0\]\.answers: the clean column must answer every image and each level "
        r"at least one$",
    ):
        metrics.mean_relative_f1([TaskAnswers(gap, truth, 2)])
    with pytest.raises(ValueError, match=r"at least one level, got shape \(2, 1\)$"):
        metrics.mean_relative_f1([TaskAnswers(truth[:, None], truth, 2)])


def test_pooled_shares_pool_images_over_entries(seed: int) -> None:
    first, second = np.array([0, 1, 2, 3]), np.array([2, 2])
    shares = metrics.pooled_shares([first, second], 4, seed=seed, n_boot=200, tasks=["t", "u"])
    assert [s.value for s in shares] == pytest.approx([1 / 6, 1 / 6, 3 / 6, 1 / 6])
    for s in shares:
        assert 0.0 <= s.lo <= s.value <= s.hi <= 1.0
    bare = metrics.pooled_shares([first], 4, n_boot=0)
    assert all(np.isnan(s.lo) and np.isnan(s.hi) for s in bare)
