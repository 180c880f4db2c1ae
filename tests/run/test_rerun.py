"""A warm `medbench run` reuses the last complete run's results and site only when nothing
it reads has changed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from medbench.cli import app
from medbench.run import rerun
from medbench.run.cache import Cache
from tests.spec_tree import make_project

REUSED = "Nothing changed since the complete run"
runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = make_project(tmp_path, models=("baseline-chance", "baseline-majority"))
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "answers.sqlite"))
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))
    return folder


def run(*extra: str) -> Any:
    result = runner.invoke(app, ["run", "specs", "--suite", "t", "--no-probe", *extra])
    assert result.exit_code == 0, result.output
    return result


def count_scoring(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of the scoring stage (the expensive half a reuse skips)."""
    import medbench.score.results

    calls: list[int] = []
    real = medbench.score.results.score_suite

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(medbench.score.results, "score_suite", counted)
    return calls


def test_rerun_unchanged_inputs_reuse_results_site_and_report(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run()
    assert REUSED not in first.output
    assert (project / "results/t" / rerun.STAMP_NAME).is_file()
    calls = count_scoring(monkeypatch)
    second = run()
    assert calls == []
    assert REUSED in second.stderr
    # the results the first run printed, word for word, on stdout
    assert "baseline-chance" in first.stdout
    assert second.stdout == first.stdout


@pytest.mark.parametrize(
    "change",
    ["spec", "site_file", "results_file", "leaderboard", "cache_row", "environment", "option"],
)
def test_rerun_any_changed_input_or_output_scores_again(
    project: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    run()
    extra: list[str] = []
    if change == "spec":
        family = project / "specs/prompts/closed_diagnosis.yaml"
        family.write_text(family.read_text() + "# edited\n")
    elif change == "site_file":
        (project / "_site/index.html").unlink()
    elif change == "results_file":
        scores = project / "results/t/scores.csv"
        scores.write_text(scores.read_text() + "\n")
    elif change == "leaderboard":
        (project / "leaderboard").mkdir(exist_ok=True)
        (project / "leaderboard/README.md").write_text("published records\n")
    elif change == "cache_row":
        with Cache(Path(os.environ["MEDBENCH_CACHE"])) as cache:
            cache.put_many([("k" * 64, "m", "t", "f", "v", "s", "p", "out", None, 0.1)])
    elif change == "environment":
        monkeypatch.setenv("MEDBENCH_DATA", str(project / "elsewhere"))
    elif change == "option":
        extra = ["--rescore"]
    calls = count_scoring(monkeypatch)
    again = run(*extra)
    assert calls == [1], change
    assert REUSED not in again.output


def test_rerun_crash_while_scoring_leaves_no_stamp(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medbench.score.results

    run()
    stamp = project / "results/t" / rerun.STAMP_NAME
    assert stamp.is_file()

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(medbench.score.results, "score_suite", crash)
        result = runner.invoke(app, ["run", "specs", "--suite", "t", "--no-probe", "--rescore"])
    assert result.exit_code != 0
    assert not stamp.exists()
    calls = count_scoring(monkeypatch)
    run()
    assert calls == [1]


def test_store_versions_move_on_writes_not_on_reads(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite"
    row = ("a" * 64, "m", "t", "f", "v", "s", "p", None, "timeout", 0.1)
    with Cache(path) as cache:
        cache.put_many([row])
    failed = rerun.store_versions(tmp_path)
    with Cache(path) as cache:
        cache.get_many(["a" * 64])
    assert rerun.store_versions(tmp_path) == failed
    # a later try replaces the failed row in place (same row id, same count)
    with Cache(path) as cache:
        cache.put_many([(*row[:7], "pneumonia", None, 0.1)])
    assert rerun.store_versions(tmp_path) != failed
    assert rerun.store_versions(tmp_path)["embeddings.sqlite"] == ["absent"]


def test_tree_digest_sees_size_and_time_and_ignores_the_stamp(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    before = rerun.tree_digest([tmp_path])
    (tmp_path / rerun.STAMP_NAME).write_text("{}")
    assert rerun.tree_digest([tmp_path]) == before
    os.utime(tmp_path / "a.txt", ns=(1, 1))
    assert rerun.tree_digest([tmp_path]) != before


def test_read_stamp_unreadable_or_foreign_is_none(tmp_path: Path) -> None:
    (tmp_path / rerun.STAMP_NAME).write_text('{"stamp_version": 1, "inputs": 3}')
    assert rerun.read_stamp(tmp_path) is None
    (tmp_path / rerun.STAMP_NAME).write_text("not json")
    assert rerun.read_stamp(tmp_path) is None
    rerun.write_stamp(tmp_path, "i", "o", "report\n")
    assert rerun.reusable(tmp_path, "i", "o") is not None
    assert rerun.reusable(tmp_path, "i", "other") is None


def test_run_narrowed_never_shrinks_the_suites_results(project: Path) -> None:
    run("--no-site")
    kept = {p: p.read_bytes() for p in Path("results/t").rglob("*") if p.is_file()}
    narrowed = run("--no-site", "--model", "baseline-chance", "--limit", "1")
    assert {p: p.read_bytes() for p in kept} == kept
    beside = Path("results/t/narrowed/t")
    assert sorted(set(pd.read_csv(beside / "models.csv")["model"])) == ["baseline-chance"]
    assert sorted(set(pd.read_csv("results/t/models.csv")["model"])) == [
        "baseline-chance",
        "baseline-majority",
    ]
    assert (
        "This run was narrowed (--model baseline-chance, --limit 1): its scores are in "
        "results/t/narrowed/t/, beside the suite's results in results/t/, which it left as they "
        "were (no local records, no site). Run the whole suite to score it all."
    ) in " ".join(narrowed.output.split())


def test_score_command_writes_results_to_stdout_and_progress_to_stderr(project: Path) -> None:
    run()
    scored = CliRunner().invoke(app, ["score", "specs", "--suite", "t"])
    assert scored.exit_code == 0, scored.output
    assert "baseline-chance" in scored.stdout and "baseline-majority" in scored.stdout
    assert "Scores written to results/t/" in scored.stderr
    assert "Scores written" not in scored.stdout


def test_run_command_writes_results_to_stdout_and_steps_to_stderr(project: Path) -> None:
    result = run()
    assert "baseline-chance" in result.stdout and "baseline-majority" in result.stdout
    assert "Scores written" not in result.stdout and "Site built" not in result.stdout
    assert "Scores written to results/t/" in result.stderr
    # one line per step where stderr is not a terminal, the counts of those that have them
    steps = [line.split(" 0:00")[0].rstrip() for line in result.stderr.splitlines()]
    assert "✓ scoring the answers" in steps
    assert "✓ building the site in _site/" in steps
    assert any(line.startswith("✓ suite t ") for line in steps)
