"""Stale records: `validate` names them, `medbench republish` reruns and republishes them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medbench.cli import app
from medbench.publish import stale_records, stale_warnings
from medbench.publish.republish import publish_in_place
from medbench.publish.stale import why_not_rerun
from medbench.publish.verify import verify_records
from medbench.spec.loading import load_specs

REPO = Path(__file__).resolve().parents[2]
BOARD = Path("leaderboard/quickstart")
CAREFUL = (
    "  - id: careful\n    kind: wording\n"
    '    template: "{{ question }} Look carefully, then answer with one of: '
    "{{ options | join(', ') }}.\"\n"
)
runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's specs, sample data and two published quickstart records
    (the quickest baselines to rerun), as the cwd."""
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    shutil.copytree(REPO / "data" / "sample", tmp_path / "data" / "sample")
    shutil.copytree(REPO / BOARD, tmp_path / BOARD)
    for path in (tmp_path / BOARD).iterdir():
        if not path.name.startswith(("baseline-chance.", "baseline-majority.")):
            path.unlink()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDBENCH_DATA", raising=False)
    return tmp_path


def _add_variant(project: Path) -> None:
    family = project / "specs" / "prompts" / "closed_diagnosis.yaml"
    family.write_text(family.read_text().rstrip("\n") + "\n" + CAREFUL)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_stale_warnings_are_empty_for_the_specs_the_records_were_made_with(project: Path) -> None:
    assert stale_warnings(Path("leaderboard"), load_specs(Path("specs"))) == []


def test_stale_warnings_name_each_record_and_the_specs_that_changed(project: Path) -> None:
    _add_variant(project)
    task = project / "specs" / "tasks" / "skin_lesion.yaml"
    task.write_text(task.read_text() + "\n# a comment changes the file\n")
    assert stale_warnings(Path("leaderboard"), load_specs(Path("specs"))) == [
        "leaderboard/quickstart/baseline-chance.json: stale: prompt_family/closed_diagnosis, "
        "task/skin_lesion changed since it was published",
        "leaderboard/quickstart/baseline-majority.json: stale: prompt_family/closed_diagnosis, "
        "task/skin_lesion changed since it was published",
        "2 published record(s) are stale (`medbench verify` fails on a changed prompt family): "
        "rerun and republish them with `medbench republish leaderboard` (`--dry-run` lists "
        "what it would do).",
    ]


def test_validate_warns_of_stale_records_and_exits_0(project: Path) -> None:
    _add_variant(project)
    done = runner.invoke(app, ["validate", "specs", "--no-data"])
    assert done.exit_code == 0
    assert done.stdout.endswith("3 suites: all valid\n")
    assert (
        "warning: leaderboard/quickstart/baseline-chance.json: stale: "
        "prompt_family/closed_diagnosis changed since it was published\n" in done.stderr
    )
    assert "rerun and republish them with `medbench republish leaderboard`" in done.stderr


def test_why_not_rerun_names_a_suite_or_model_that_is_gone_or_a_test_model(project: Path) -> None:
    suite = project / "specs" / "suites" / "quickstart.yaml"
    suite.write_text(suite.read_text().replace("  - baseline-majority\n", ""))
    model = project / "specs" / "models" / "baseline-chance.yaml"
    model.write_text(model.read_text() + "test_model: true\n")
    specs = load_specs(Path("specs"))
    why = {r.model: why_not_rerun(r, specs) for r in stale_records(Path("leaderboard"), specs)}
    assert why == {
        "baseline-chance": "its model 'baseline-chance' is a test model today but was published "
        "as a real result; publish it by hand (`medbench publish --allow-test-models`) if it "
        "should be",
        "baseline-majority": "its model 'baseline-majority' is no longer in suite 'quickstart'",
    }


def test_republish_dry_run_names_what_cannot_run_here_and_exits_1(project: Path) -> None:
    suite = project / "specs" / "suites" / "quickstart.yaml"
    suite.write_text(
        suite.read_text().replace(
            "  - baseline-majority\n", "  - baseline-majority\n  - gemma-3-4b-it\n"
        )
    )
    record = json.loads((project / BOARD / "baseline-majority.json").read_text())
    record["model_id"] = record["model"]["id"] = "gemma-3-4b-it"
    (project / BOARD / "gemma-3-4b-it.json").write_text(json.dumps(record))
    before = _snapshot(project / BOARD)
    done = runner.invoke(app, ["republish", "--dry-run", "--cache", str(project / "cache")])
    assert done.exit_code == 1
    assert done.stdout.splitlines() == [
        f"leaderboard/quickstart/{m}.json: would rerun and republish (stale: suite/quickstart)"
        for m in ("baseline-chance", "baseline-majority")
    ]
    assert re.search(
        r"^leaderboard/quickstart/gemma-3-4b-it\.json: cannot rerun: the model cannot run here: "
        r".*google/gemma-3-4b-it.*\n1 of 3 stale records were not rerun",
        done.stderr,
        re.MULTILINE,
    )
    assert _snapshot(project / BOARD) == before


@pytest.mark.slow
def test_republish_reruns_and_republishes_the_records_an_added_variant_makes_stale(
    project: Path,
) -> None:
    _add_variant(project)
    cache = ["--cache", str(project / "cache")]
    before = _snapshot(project / BOARD)
    dry = runner.invoke(app, ["republish", "--dry-run", *cache])
    assert dry.exit_code == 0, dry.output
    assert _snapshot(project / BOARD) == before
    done = runner.invoke(app, ["republish", *cache])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [
        f"leaderboard/quickstart/{m}.json: reran and republished "
        "(stale: prompt_family/closed_diagnosis)"
        for m in ("baseline-chance", "baseline-majority")
    ]
    assert sorted(_snapshot(project / BOARD)) == sorted(before)
    record = json.loads((project / BOARD / "baseline-chance.json").read_text())
    assert {row["variant"] for row in record["scores"]} >= {"careful", "plain"}
    specs = load_specs(Path("specs"))
    assert verify_records(Path("leaderboard"), specs, []) == []
    assert stale_records(Path("leaderboard"), specs) == []
    again = runner.invoke(app, ["republish", *cache])
    assert again.stdout == "No record under leaderboard/ is stale: nothing to republish.\n"
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".")) == [
        ".leaderboard.lock"
    ]


def test_publish_in_place_leaves_the_records_whole_when_publishing_fails(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def half(specs: object, suite: str, results: Path, out: Path, **_: object) -> list[Path]:
        (out / suite / "baseline-chance.json").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr("medbench.publish.republish.publish_results", half)
    before = _snapshot(project / BOARD)
    with pytest.raises(OSError, match="disk full"):
        publish_in_place(
            load_specs(Path("specs")),
            "quickstart",
            project,
            Path("leaderboard"),
            ["baseline-chance"],
        )
    assert _snapshot(project / BOARD) == before
    assert [p.name for p in project.iterdir() if p.name.startswith(".leaderboard.new")] == []
