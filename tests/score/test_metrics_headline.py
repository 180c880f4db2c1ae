"""The chance-corrected headline (all-variants kappa): properties over synthetic models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from medbench.publish.site.ranking import has_skill, rank_key
from medbench.score import metrics
from medbench.score.metrics import REFUSAL, UNPARSEABLE, TaskAnswers

V = 4


@pytest.fixture(params=[0, 1, 2, 3])
def seed(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def _truth(n: int, shares: tuple[float, ...]) -> np.ndarray:
    """Truth with classes in the given shares (rounded), shuffled by nothing: class blocks."""
    counts = np.round(np.array(shares) * n).astype(int)
    counts[-1] = n - counts[:-1].sum()
    return np.repeat(np.arange(len(shares)), counts)


def synthetic_models(
    seed: int, shares: tuple[float, ...], n: int = 300
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Truth and the (n, V) answer matrices of degenerate and skilled models on one task."""
    rng = np.random.default_rng(seed)
    truth = _truth(n, shares)
    k = len(shares)
    right = np.repeat(truth[:, None], V, axis=1)
    other = (right + rng.integers(1, k, (n, V))) % k if k > 1 else right
    models = {f"constant_{c}": np.full((n, V), c) for c in range(k)}
    models |= {
        "always_refuse": np.full((n, V), REFUSAL),
        "always_unparseable": np.full((n, V), UNPARSEABLE),
        "uniform_random": rng.integers(0, k, (n, V)),
        "stable_coin_flip": np.repeat(rng.integers(0, k, (n, 1)), V, axis=1),
        # right 80% of the time under every wording, errors independent across wordings
        "right_80_independent": np.where(rng.random((n, V)) < 0.8, right, other),
    }
    return truth, models


DEGENERATE = (
    "always_refuse",
    "always_unparseable",
    "uniform_random",
    "stable_coin_flip",
)
BALANCES = [(0.5, 0.5), (0.8, 0.2), (0.25, 0.25, 0.25, 0.25), (0.6, 0.3, 0.1)]


def _headline(truth: np.ndarray, answers: np.ndarray, k: int) -> metrics.Estimate:
    return metrics.mean_all_variants_kappa([TaskAnswers(answers, truth, k)], n_boot=400)


def test_kappa_matches_scikit_learn_with_refusal_and_unparseable_as_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, 120)
    pred = np.where(rng.random(120) < 0.5, truth, rng.integers(UNPARSEABLE, 3, 120))
    assert metrics.kappa(truth, pred, 3) == pytest.approx(cohen_kappa_score(truth, pred), abs=1e-12)


def test_all_variants_kappa_is_kappa_of_the_unanimous_answers(seed: int) -> None:
    truth, models = synthetic_models(seed, (0.6, 0.3, 0.1))
    answers = models["right_80_independent"]
    unanimous = np.where((answers == answers[:, :1]).all(axis=1), answers[:, 0], UNPARSEABLE)
    expected = cohen_kappa_score(truth, unanimous)
    assert metrics.all_variants_kappa(answers, truth, 3) == pytest.approx(expected, abs=1e-12)


def test_all_variants_kappa_with_one_variant_is_kappa(seed: int) -> None:
    truth, models = synthetic_models(seed, (0.5, 0.5))
    one = models["right_80_independent"][:, :1]
    assert metrics.all_variants_kappa(one, truth, 2) == pytest.approx(
        metrics.kappa(truth, one[:, 0], 2), abs=1e-12
    )


@pytest.mark.parametrize("shares", BALANCES)
def test_headline_of_a_degenerate_model_is_about_0_whatever_the_balance(
    seed: int, shares: tuple[float, ...]
) -> None:
    truth, models = synthetic_models(seed, shares)
    for name, answers in models.items():
        if name == "right_80_independent":
            continue
        found = _headline(truth, answers, len(shares))
        assert abs(found.value) < 0.2, name  # about 3.5 standard errors at N = 300
        if name not in ("uniform_random", "stable_coin_flip"):  # exactly 0, in every resample
            assert found.value == found.lo == found.hi == 0.0, name


@pytest.mark.parametrize("name", ["uniform_random", "stable_coin_flip"])
def test_headline_interval_of_a_random_model_contains_0_at_the_stated_rate(name: str) -> None:
    skilled = []
    for seed in range(120):
        truth, models = synthetic_models(seed, BALANCES[seed % len(BALANCES)], n=100)
        k = int(truth.max()) + 1
        found = metrics.mean_all_variants_kappa(
            [TaskAnswers(models[name], truth, k)], seed=seed, n_boot=300
        )
        skilled.append(metrics.has_skill(found))
    # one-sided 2.5% nominal; 120 draws: at most 9 by a binomial 99.9% bound
    assert sum(skilled) <= 9


@pytest.mark.parametrize("shares", BALANCES)
def test_headline_ranks_every_degenerate_model_below_a_model_right_80_percent(
    seed: int, shares: tuple[float, ...]
) -> None:
    truth, models = synthetic_models(seed, shares)
    rows = []
    for name, answers in models.items():
        found = _headline(truth, answers, len(shares))
        rows.append(
            {
                "model": name,
                "all_variants_kappa": found.value,
                "all_variants_kappa_lo": found.lo,
                "all_variants_kappa_hi": found.hi,
                "fragility_index": metrics.disagreement(answers),
            }
        )
    ranking = [str(row["model"]) for row in sorted(rows, key=rank_key)]
    assert ranking[0] == "right_80_independent"
    assert has_skill(next(r for r in rows if r["model"] == "right_80_independent"))
    # Fragility cannot lift a model without skill: every degenerate model is stable (or not)
    # and still ranks below.
    assert all(ranking.index(name) > 0 for name in DEGENERATE)


def test_headline_ranks_stable_answers_at_or_above_fragile_ones_of_equal_accuracy(
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    n, k = 400, 3
    truth = np.arange(n) % k
    right = np.repeat(truth[:, None], V, axis=1)
    wrong = (right + 1) % k
    # Both right on 75% of each column: one per image under every wording, one not.
    stable = np.where(rng.permutation(n)[:, None] < 0.75 * n, right, wrong)
    fragile = np.column_stack(
        [np.where(rng.permutation(n) < 0.75 * n, truth, (truth + 1) % k) for _ in range(V)]
    )
    for column in range(V):
        assert metrics.accuracy(truth, stable[:, column], k) == 0.75
        assert metrics.accuracy(truth, fragile[:, column], k) == 0.75
    assert metrics.all_variants_kappa(stable, truth, k) >= metrics.all_variants_kappa(
        fragile, truth, k
    )


def test_mean_all_variants_kappa_is_the_mean_of_the_task_values(seed: int) -> None:
    tasks = []
    for shares in BALANCES[:2]:
        truth, models = synthetic_models(seed, shares)
        tasks.append(TaskAnswers(models["right_80_independent"], truth, len(shares)))
    found = metrics.mean_all_variants_kappa(tasks, seed=seed, n_boot=300)
    expected = np.mean([metrics.all_variants_kappa(a, t, k) for a, t, k, *_ in tasks])
    assert found.value == pytest.approx(expected, abs=1e-12)
    assert found.lo <= found.value <= found.hi


def test_mean_kappa_and_worst_kappa_are_the_mean_and_min_over_variants(seed: int) -> None:
    truth, models = synthetic_models(seed, (0.6, 0.3, 0.1))
    answers = models["right_80_independent"]
    per_variant = [metrics.kappa(truth, answers[:, v], 3) for v in range(V)]
    task = [TaskAnswers(answers, truth, 3)]
    assert metrics.mean_kappa(task, n_boot=50).value == pytest.approx(np.mean(per_variant))
    assert metrics.mean_worst_kappa(task, n_boot=50).value == pytest.approx(min(per_variant))


QUICKSTART_BASELINES = (
    "baseline-chance",
    "baseline-majority",
    "baseline-always-positive",
    "baseline-always-refuse",
    "baseline-stable-random",
)


def test_headline_of_every_quickstart_baseline_shows_no_skill(tmp_path: Path) -> None:
    from medbench.run.cache import Cache
    from medbench.run.loop import run_plan
    from medbench.run.plan import make_plan
    from medbench.score.answers import collect_answers, make_layout
    from medbench.score.scoring import score_answers
    from medbench.spec.loading import load_specs
    from tests.spec_tree import make_project

    project = make_project(
        tmp_path,
        tasks=("brain_tumor_mri", "pneumonia_cxr", "skin_lesion", "histopathology"),
        families=("closed_diagnosis", "finding_present"),
        models=QUICKSTART_BASELINES,
        limit_per_class=8,
    )
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models")
        run_plan(plan, specs, cache, progress=False)
        answers = collect_answers(specs, plan, cache)
    models = score_answers(answers, make_layout(specs, plan)).models.set_index("model")
    for name in QUICKSTART_BASELINES:
        row = models.loc[name]
        assert row["all_variants_kappa_lo"] <= 0.0, name  # its interval contains 0 or lies below
        assert abs(row["all_variants_kappa"]) < 0.15, name
    # never changing an uninformative answer is no robustness: 0 fragility, and no skill
    assert models.loc["baseline-stable-random", "fragility_index"] == 0.0
    refusals = answers[answers["model"] == "baseline-always-refuse"]["status"]
    assert set(refusals) == {"refusal"}


def test_rank_key_orders_models_without_skill_by_their_mean_kappa() -> None:
    # the quickstart's figures: the general demo model is right under single wordings but
    # never under all seven, so its headline is 0 like a baseline's; stable random is 0.005
    rows = [
        {"model": "stable-random", "all_variants_kappa": 0.005, "all_variants_kappa_lo": -0.18}
        | {"mean_kappa": 0.005, "fragility_index": 0.0},
        {"model": "general", "all_variants_kappa": 0.0, "all_variants_kappa_lo": 0.0}
        | {"mean_kappa": 0.236, "fragility_index": 0.46},
        {"model": "majority", "all_variants_kappa": 0.0, "all_variants_kappa_lo": 0.0}
        | {"mean_kappa": 0.0, "fragility_index": 0.0},
        {"model": "med", "all_variants_kappa": 0.553, "all_variants_kappa_lo": 0.438}
        | {"mean_kappa": 0.777, "fragility_index": 0.05},
    ]
    ranking = [str(r["model"]) for r in sorted(rows, key=rank_key)]
    assert ranking == ["med", "general", "stable-random", "majority"]
