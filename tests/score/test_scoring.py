import filecmp
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.metrics import f1_score

from medbench.run.cache import Cache
from medbench.run.loop import run_plan
from medbench.run.plan import make_plan
from medbench.score import metrics
from medbench.score.answers import ScoringLayout, collect_answers, make_layout
from medbench.score.parsing import PARSER_VERSION
from medbench.score.report import score_and_report
from medbench.score.scoring import score_answers
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project


@pytest.fixture
def scored(tmp_path: Path) -> tuple[Path, Path]:
    project = make_project(
        tmp_path,
        tasks=("pneumonia_cxr", "skin_lesion"),
        families=("closed_diagnosis", "finding_present"),
        models=("baseline-chance", "baseline-majority"),
        limit_per_class=4,
    )
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models")
        run_plan(plan, specs, cache, progress=False)
        score_and_report(specs, plan, cache, tmp_path / "results", Console(quiet=True))
    return project, tmp_path / "results" / "t"


def test_score_writes_every_result_file(scored: tuple[Path, Path]) -> None:
    _, out = scored
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "answers.parquet",
            "scores.csv",
            "fragility.csv",
            "pairs.csv",
            "models.csv",
            "layout.json",
            "summary.json",
        ]
    )
    answers = pd.read_parquet(out / "answers.parquet")
    # 2 models x 2 tasks x (8 + 6 variants) x 8 images
    assert len(answers) == 2 * 2 * 14 * 8
    assert set(answers["status"]) == {"answer"}


def test_score_twice_gives_byte_identical_files(scored: tuple[Path, Path], tmp_path: Path) -> None:
    project, out = scored
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models")
        score_and_report(specs, plan, cache, tmp_path / "again", Console(quiet=True))
    again = tmp_path / "again" / "t"
    names = sorted(p.name for p in out.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(out, again, names, shallow=False)
    assert (mismatch, errors) == ([], [])


def test_score_majority_baseline_never_flips(scored: tuple[Path, Path]) -> None:
    _, out = scored
    fragility = pd.read_csv(out / "fragility.csv")
    majority = fragility[fragility.model == "baseline-majority"]
    assert (majority["disagreement"] == 0).all()
    chance = fragility[fragility.model == "baseline-chance"]
    assert (chance["disagreement"] > 0).all()


def test_score_f1_all_matches_sklearn_on_the_stored_answers(scored: tuple[Path, Path]) -> None:
    _, out = scored
    answers = pd.read_parquet(out / "answers.parquet")
    scores = pd.read_csv(out / "scores.csv")
    row = scores[
        (scores.model == "baseline-chance")
        & (scores.task == "skin_lesion")
        & (scores.family == "closed_diagnosis")
        & (scores.variant == "plain")
    ].iloc[0]
    sub = answers[
        (answers.model == "baseline-chance")
        & (answers.task == "skin_lesion")
        & (answers.family == "closed_diagnosis")
        & (answers.variant == "plain")
    ]
    expected = f1_score(
        sub.truth,
        sub.parsed.fillna("none"),
        labels=["malignant", "benign"],
        average="macro",
        zero_division=0,
    )
    assert row.f1_all == pytest.approx(expected, abs=1e-9)


def test_score_answers_counts_refusals_as_wrong_and_skips_failed_jobs() -> None:
    layout = ScoringLayout(
        classes={"t": {"f": ["a", "b"]}},
        variants={"f": ["v1", "v2"]},
        references={"f": "v1"},
        answer_kinds={"f": "label"},
        n_boot=50,
    )
    rows = []
    statuses = {
        "s1": ("answer", "a"),
        "s2": ("refusal", None),
        "s3": ("answer", "b"),
        "s4": ("error", None),
    }
    for variant in ("v1", "v2"):
        for sample, (status, parsed) in statuses.items():
            truth = "a" if sample in {"s1", "s2"} else "b"
            rows.append(
                (
                    "m",
                    "t",
                    "f",
                    variant,
                    "direct",
                    sample,
                    truth,
                    truth,
                    "x",
                    None,
                    status,
                    parsed,
                    "r",
                    2,
                    parsed == truth,
                    None,
                    0,
                    "original",
                    "",
                    float("nan"),
                )
            )
    from medbench.score.answers import ANSWER_COLUMNS

    tables = score_answers(pd.DataFrame(rows, columns=ANSWER_COLUMNS), layout)
    v1 = tables.scores[tables.scores.variant == "v1"].iloc[0]
    assert (v1.n, v1.n_failed) == (3, 1)
    assert v1.refusal_rate == pytest.approx(1 / 3)
    expected = f1_score(["a", "a", "b"], ["a", "none", "b"], labels=["a", "b"], average="macro")
    assert v1.f1_all == pytest.approx(expected)
    family = tables.fragility.iloc[0]
    assert family.n_images == 3 and family.disagreement == 0


def test_make_layout_pairs_only_models_present_together(tmp_path: Path) -> None:
    project = make_project(tmp_path, models=("baseline-chance",))
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "m")
    layout = make_layout(specs, plan)
    assert layout.pairs == []
    assert layout.classes == {"pneumonia_cxr": {"closed_diagnosis": ["pneumonia", "normal"]}}
    assert np.array_equal(ScoringLayout.from_json(layout.to_json()).to_json()["pairs"], [])


def test_collect_answers_leaves_out_jobs_not_yet_run(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "m")
        assert len(collect_answers(specs, plan, cache)) == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The chest X-ray shows signs of pneumonia.", ("answer", "yes", "option_text")),
        (
            "There is no evidence of pneumonia. The lungs appear clear.",
            ("answer", "no", "negated_option"),
        ),
        ("This is a normal chest X-ray.", ("answer", "no", "option_text")),
        ("The image shows a chest X-ray.", ("unparseable", None, "no_option")),
    ],
)
def test_parse_job_answer_reads_a_yes_no_sentence_with_the_task_finding(
    text: str, expected: tuple[str, str | None, str]
) -> None:
    from medbench.score.answers import parse_job_answer

    specs = load_specs(Path(__file__).resolve().parents[2] / "specs")
    result, parsed = parse_job_answer(
        text, specs.tasks["pneumonia_cxr"], "yes_no", ["yes", "no"], False
    )
    assert (result.status, parsed, result.rule) == expected


def test_parse_job_answer_maps_a_label_answer_to_its_id() -> None:
    from medbench.score.answers import parse_job_answer

    specs = load_specs(Path(__file__).resolve().parents[2] / "specs")
    task = specs.tasks["brain_tumor_mri"]
    options = [label.name for label in task.labels]
    result, parsed = parse_job_answer("There is no brain tumour.", task, "label", options, False)
    assert (result.label, parsed) == ("no tumor", "notumor")


def test_collect_answers_stores_the_parser_version(scored: tuple[Path, Path]) -> None:
    from medbench.score.parsing import PARSER_VERSION

    _, out = scored
    answers = pd.read_parquet(out / "answers.parquet")
    assert set(answers["parser_version"]) == {PARSER_VERSION}


def test_run_scores_its_answers_once_for_results_and_local_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app
    from medbench.publish.verify import verify_records
    from medbench.score import scoring

    project = make_project(tmp_path, models=("baseline-chance", "baseline-majority"))
    monkeypatch.chdir(project)
    calls: list[int] = []
    real = scoring._score

    def counted(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(scoring, "_score", counted)
    monkeypatch.setattr(scoring, "_SCORED", {})  # nothing remembered from earlier tests
    result = CliRunner().invoke(app, ["run", "specs", "-s", "t", "--cache", "c.sqlite"])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
    assert verify_records(project / "results/t/leaderboard") == []
    published = pd.read_csv(project / "results/t/scores.csv")
    assert len(published) == 2 * 8  # two baselines x the closed family's eight variants


def test_score_answers_returns_copies_of_remembered_tables(scored: tuple[Path, Path]) -> None:
    _, out = scored
    answers = pd.read_parquet(out / "answers.parquet")
    layout = ScoringLayout.from_json(json.loads((out / "layout.json").read_text("utf-8")))
    first = score_answers(answers, layout)
    first.scores.loc[:, "f1_all"] = -1.0
    again = score_answers(answers, layout)
    assert (again.scores["f1_all"] >= 0).all()


def test_models_n_tasks_counts_each_task_once(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, tasks=("pneumonia_cxr", "skin_lesion"), families=("closed_diagnosis", "again")
    )
    family = (project / "specs/prompts/closed_diagnosis.yaml").read_text()
    (project / "specs/prompts/again.yaml").write_text(
        family.replace("id: closed_diagnosis", "id: again")
    )
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models")
        run_plan(plan, specs, cache, progress=False)
        score_and_report(specs, plan, cache, tmp_path / "results", Console(quiet=True))
    models = pd.read_csv(tmp_path / "results/t/models.csv")
    assert models.loc[models.pipeline == "direct", "n_tasks"].tolist() == [2]


def test_make_layout_and_collect_answers_carry_the_patient_of_a_grouped_task(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, models=("baseline-majority",))
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "m")
        run_plan(plan, specs, cache, progress=False)
        answers = collect_answers(specs, plan, cache)
    layout = make_layout(specs, plan)
    assert layout.groups == {"pneumonia_cxr": r"pattern ^(person\d+|(?:NORMAL2-)?IM-\d+)"}
    assert ScoringLayout.from_json(layout.to_json()) == layout
    patient = dict(zip(answers["sample"], answers["group"], strict=True))
    assert len(patient) == 4
    for sample, group in patient.items():
        name = sample.split("/")[1]
        assert name.startswith(group) and name[len(group)] in "_-", (sample, group)


def _patients(grouped: bool) -> tuple[pd.DataFrame, ScoringLayout]:
    """Two models on 30 patients x 6 images each; every image of a patient answered alike."""
    rng = np.random.default_rng(8)
    rows = []
    for patient in range(30):
        truth = "a" if patient % 2 else "b"
        for model in ("med", "gen"):
            for variant in ("v1", "v2"):
                parsed = (
                    truth if rng.random() < (0.8 if model == "med" else 0.6) else "ab"[patient % 2]
                )
                for image in range(6):
                    sample = f"p{patient}_{image}"
                    rows.append(
                        (model, "t", "f", variant, "direct", sample, truth, truth, parsed, None)
                        + ("answer", parsed, "r", PARSER_VERSION, parsed == truth, f"p{patient}", 0)
                        + ("original", "", float("nan"))
                    )
    from medbench.score.answers import ANSWER_COLUMNS

    layout = ScoringLayout(
        classes={"t": {"f": ["a", "b"]}},
        variants={"f": ["v1", "v2"]},
        references={"f": "v1"},
        answer_kinds={"f": "label"},
        pairs=[("med", "gen")],
        n_boot=400,
        groups={"t": r"pattern ^(p\d+)_"} if grouped else {},
    )
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS), layout


def test_score_answers_resamples_patients_of_a_grouped_task() -> None:
    clustered = score_answers(*_patients(grouped=True))
    plain = score_answers(*_patients(grouped=False))

    def width(frame: pd.DataFrame, name: str) -> float:
        row = frame.iloc[0]
        return float(row[f"{name}_hi"] - row[f"{name}_lo"])

    for table, name in [
        ("scores", "f1_all"),
        ("fragility", "disagreement"),
        ("models", "mean_f1_all"),
    ]:
        assert width(getattr(clustered, table), name) > 1.8 * width(getattr(plain, table), name)
    assert width(clustered.pairs, "f1_diff") > 1.8 * width(plain.pairs, "f1_diff")
    # McNemar's exact test counts 6 images per patient as independent; Obuchowski's does not
    p_clustered, p_plain = clustered.pairs["mcnemar_p"].iloc[0], plain.pairs["mcnemar_p"].iloc[0]
    assert p_plain < p_clustered / 10


def test_score_pairs_with_few_patients_give_the_cluster_swap_interval() -> None:
    answers, layout = _patients(grouped=True)
    few = answers[answers["group"].isin([f"p{i}" for i in range(12)])]
    row = score_answers(few, layout).pairs.query("variant == 'v1'").iloc[0]
    asked = few[few["variant"] == "v1"].sort_values("sample")
    med, gen = (asked[asked["model"] == m] for m in ("med", "gen"))
    code = {"a": 0, "b": 1}
    swap = metrics.paired_f1_test(
        med["truth"].map(code), med["parsed"].map(code), gen["parsed"].map(code), 2, med["group"]
    ).estimate
    assert (row["f1_diff"], row["f1_diff_lo"], row["f1_diff_hi"]) == pytest.approx(
        (swap.value, swap.lo, swap.hi), abs=1e-12
    )


def test_score_answers_rescoring_an_earlier_input_after_another_scores_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import medbench.score.scoring as scoring

    scored: list[int] = []

    def fake(answers: pd.DataFrame, layout: ScoringLayout) -> scoring.ScoreTables:
        scored.append(len(answers))
        return scoring.ScoreTables(*(pd.DataFrame({"n": [len(answers)]}),) * 4)

    monkeypatch.setattr(scoring, "_score", fake)
    monkeypatch.setattr(scoring, "_SCORED", {})
    layout = ScoringLayout(classes={}, variants={}, references={}, answer_kinds={})
    results = pd.DataFrame({"model": ["a", "b"], "text": ["x", "y"]})
    likelihood = pd.DataFrame({"model": ["a"], "text": ["z"]})
    # a run: its answers, its likelihood answers, its answers again for the local site
    first = scoring.score_answers(results, layout)
    scoring.score_answers(likelihood, layout)
    again = scoring.score_answers(results, layout)
    assert scored == [2, 1]
    assert again.scores.equals(first.scores) and again.scores is not first.scores
    for n in range(scoring.SCORED_KEPT):
        scoring.score_answers(pd.DataFrame({"model": ["c"] * (n + 3)}), layout)
    scoring.score_answers(results, layout)  # pushed out by the newer inputs
    assert scored[-1] == 2 and len(scored) == 2 + scoring.SCORED_KEPT + 1


def test_score_models_share_one_image_resample_across_a_tasks_families() -> None:
    answers, layout = _patients(grouped=False)
    once = score_answers(answers, layout).models
    twice_layout = ScoringLayout(
        classes={"t": {"f": ["a", "b"], "g": ["a", "b"]}},
        variants={"f": ["v1", "v2"], "g": ["v1", "v2"]},
        references={"f": "v1", "g": "v1"},
        answer_kinds={"f": "label", "g": "label"},
        pairs=layout.pairs,
        n_boot=layout.n_boot,
    )
    twice = score_answers(
        pd.concat([answers, answers.assign(family="g")], ignore_index=True), twice_layout
    ).models
    # a second family asking the same images the same way adds no information
    for name in ("fragility_index", "all_variants_kappa", "mean_f1_all"):
        for suffix in ("", "_lo", "_hi"):
            assert list(twice[name + suffix]) == pytest.approx(list(once[name + suffix])), name


def test_score_pairs_name_their_test_and_adjust_p_across_tasks_by_holm() -> None:
    from statsmodels.stats.multitest import multipletests

    answers, layout = _patients(grouped=True)
    other = answers.assign(task="u")
    both = pd.concat([answers, other], ignore_index=True)
    two_tasks = ScoringLayout(
        classes={"t": {"f": ["a", "b"]}, "u": {"f": ["a", "b"]}},
        variants=layout.variants,
        references=layout.references,
        answer_kinds=layout.answer_kinds,
        pairs=layout.pairs,
        n_boot=50,
        groups={"t": layout.groups["t"], "u": layout.groups["t"]},
    )
    pairs = score_answers(both, two_tasks).pairs
    tested = pairs[pairs["variant"] == "v1"].sort_values("task")
    assert list(tested["test"]) == ["obuchowski", "obuchowski"]  # 30 patients: enough
    expected = multipletests(tested["mcnemar_p"].to_numpy(), method="holm")[1]
    assert list(tested["mcnemar_p_holm"]) == pytest.approx(list(expected))
    few = score_answers(both[both["group"].isin([f"p{i}" for i in range(12)])], two_tasks).pairs
    assert set(few.loc[few["variant"] == "v1", "test"]) == {"cluster_permutation"}
