from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from medbench.run.cache import Cache
from medbench.run.loop import RunSummary, run_suite
from medbench.run.plan import Plan, make_plan
from medbench.score.report import score_and_report
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project

DESCRIBE = (
    "describe:\n  family: describe_findings\n  diagnosers: [{}]\n"
    "  diagnose_families: [closed_diagnosis]\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = make_project(tmp_path, models=("tiny-llava", "baseline-chance"), limit_per_class=1)
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text() + DESCRIBE.format("tiny-text"))
    return project


def _run(project: Path, cache: Cache) -> tuple[Plan, RunSummary]:
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=cache.path.parent / "models", hasher=cache.hash_file)
    return plan, run_suite(plan, specs, cache, progress=False)


def test_describe_stage_plans_descriptions_for_vision_models_only(
    project: Path, tmp_path: Path
) -> None:
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "models")
    describe = [j for j in plan.jobs if j.pipeline == "describe"]
    # 2 images x 2 describe variants, for tiny-llava only (a baseline does not describe)
    assert {j.model for j in describe} == {"tiny-llava"}
    assert len(describe) == 2 * 2
    assert plan.models == ["baseline-chance", "tiny-llava"]


def test_describe_then_diagnose_runs_both_stages_and_scores_them(
    project: Path, tmp_path: Path
) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, summary = _run(project, cache)
        diagnose = [j for j in plan.jobs if j.pipeline.startswith("described/")]
        # 4 descriptions x 1 diagnoser x 7 closed variants (a description has no image to
        # place: the image-after variant is not asked of it)
        assert len(diagnose) == 4 * 7
        assert {j.model for j in diagnose} == {"tiny-text"}
        assert {j.evaluated for j in diagnose} == {"tiny-llava"}
        assert all(not cache.get_many([j.key])[j.key].prompt.count('"images":["') for j in diagnose)
        assert summary.failed == 0
        score_and_report(
            load_specs(project / "specs"), plan, cache, tmp_path / "r", Console(quiet=True)
        )
    answers = pd.read_parquet(tmp_path / "r/t/answers.parquet")
    pipelines = set(answers[answers.model == "tiny-llava"].pipeline)
    assert pipelines == {"direct", "described/plain/tiny-text", "described/radiologist/tiny-text"}
    scores = pd.read_csv(tmp_path / "r/t/scores.csv")
    assert set(scores.pipeline) == pipelines


def test_describe_rerun_makes_no_model_call(project: Path, tmp_path: Path) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        _run(project, cache)
        plan, second = _run(project, cache)
    assert (second.ran, second.failed) == (0, 0)
    assert second.cached == len(plan.jobs)


def test_describe_new_diagnoser_reuses_every_description(project: Path, tmp_path: Path) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        _run(project, cache)
        other = project / "specs/models/tiny-text-2.yaml"
        text = (project / "specs/models/tiny-text.yaml").read_text()
        other.write_text(
            text.replace("id: tiny-text", "id: tiny-text-2").replace("seed: 0", "seed: 1")
        )
        suite = project / "specs/suites/t.yaml"
        suite.write_text(suite.read_text().replace("[tiny-text]", "[tiny-text, tiny-text-2]"))
        plan, summary = _run(project, cache)
    new = [j for j in plan.jobs if j.model == "tiny-text-2"]
    assert summary.ran == len({j.key for j in new}) > 0


def test_describe_changed_description_prompt_reruns_only_its_diagnoses(
    project: Path, tmp_path: Path
) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        first, _ = _run(project, cache)
        family = project / "specs/prompts/describe_findings.yaml"
        family.write_text(family.read_text().replace("in detail.", "in great detail."))
        plan, summary = _run(project, cache)
    old = {j.key for j in first.jobs}
    new = [j for j in plan.jobs if j.key not in old]
    assert {j.pipeline for j in new} <= {"describe", "described/plain/tiny-text"}
    assert {j.variant for j in new if j.pipeline == "describe"} == {"plain"}
    assert summary.ran == len({j.key for j in new})


def test_describe_failed_description_is_tried_once_per_run(project: Path, tmp_path: Path) -> None:
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text().replace("limit_per_class: 1\n", ""))
    folder = project / "data/sample/pneumonia_cxr/normal"
    (folder / "IM-9900-zz_broken.jpg").write_text("not an image")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, summary = _run(project, cache)
    broken = [
        j for j in plan.jobs if j.sample == "normal/IM-9900-zz_broken" and j.model == "tiny-llava"
    ]
    # 8 closed variants + 2 describe variants fail once each; no diagnosis is planned for them
    assert len(broken) == 8 + 2
    assert summary.failed == len(broken)
    assert not any(
        j.sample == "normal/IM-9900-zz_broken" for j in plan.jobs if j.model == "tiny-text"
    )


def test_describe_identical_descriptions_keep_one_diagnosis_per_image(
    project: Path, tmp_path: Path
) -> None:
    from medbench.run.diagnose import add_diagnose_jobs

    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "models")
    describe = [j for j in plan.jobs if j.pipeline == "describe"]
    # every image described with the same words: the diagnoses share keys, not jobs
    added = add_diagnose_jobs(plan, specs, {j.key: "a grey image" for j in describe})
    assert added == len(describe) * 7
    assert add_diagnose_jobs(plan, specs, {j.key: "a grey image" for j in describe}) == 0
    diagnoses = [j for j in plan.jobs if j.pipeline.startswith("described/")]
    assert len({j.key for j in diagnoses}) == 7  # one answer per closed variant, shared by all
