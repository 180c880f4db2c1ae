"""Tests that one hostile answer or a full disk never loses a run's other answers: a lone
surrogate is stored escaped and marked, a full disk is a clear error naming the folder."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from medbench.errors import CacheError
from medbench.run.backends.base import Output, Request
from medbench.run.backends.baseline import BaselineBackend
from medbench.run.cache import Cache
from medbench.run.loop import run_plan
from medbench.run.plan import make_plan
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path, models=("baseline-chance",))


def test_run_plan_lone_surrogate_answer_is_stored_marked_and_the_others_kept(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = BaselineBackend.generate

    def one_bad(self: BaselineBackend, requests: Sequence[Request]) -> list[Output]:
        outputs = real(self, requests)
        return [Output(text="norm\udc80al"), *outputs[1:]]

    monkeypatch.setattr(BaselineBackend, "generate", one_bad)
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models", hasher=cache.hash_file)
        summary = run_plan(plan, specs, cache, progress=False)
        stored = cache.get_many(j.key for j in plan.jobs)
    bad = [a for a in stored.values() if a.error is not None]
    assert len(stored) == len(plan.jobs)
    assert summary.failed == len(bad) >= 1
    assert {(a.output, a.error) for a in bad} == {
        (
            "norm\\udc80al",
            "the answer is not valid Unicode: a lone surrogate at character 4; its text is kept "
            "escaped",
        )
    }


def test_run_plan_full_disk_is_a_cache_error_naming_the_folder(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models", hasher=cache.hash_file)

        def full(self: Cache) -> object:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(Cache, "transaction", full)
        message = (
            f"{tmp_path / 'c.sqlite'}: cannot store answers (database or disk is full). Free "
            f"space in {tmp_path} and run again: the answers stored so far are kept."
        )
        with pytest.raises(CacheError) as raised:
            run_plan(plan, specs, cache, progress=False)
    assert str(raised.value) == message


def test_main_full_disk_names_the_file_and_its_folder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno

    import medbench.cli
    import medbench.spec.loading

    def full(path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "results/t/scores.csv")

    monkeypatch.setattr(medbench.spec.loading, "load_specs", full)
    monkeypatch.setattr("sys.argv", ["medbench", "validate"])
    with pytest.raises(SystemExit) as raised:
        medbench.cli.main()
    assert raised.value.code == 1
    assert capsys.readouterr().err == (
        "error: no space left on the device while writing results/t/scores.csv. Free space in "
        "results/t and run again: the answers cached so far are kept.\n"
    )


def test_cache_malformed_rows_read_as_failed_and_are_answered_again(
    project: Path, tmp_path: Path
) -> None:
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models", hasher=cache.hash_file)
        run_plan(plan, specs, cache, progress=False)
        keys = sorted(j.key for j in plan.jobs)[:3]
    db = sqlite3.connect(tmp_path / "c.sqlite")
    db.execute("UPDATE answers SET output = ? WHERE key = ?", (b"\xff\xfe", keys[0]))
    db.execute("UPDATE answers SET seconds = 'abc', model = ? WHERE key = ?", (b"m", keys[1]))
    db.execute("UPDATE answers SET precision = ? WHERE key = ?", (b"\x00", keys[2]))
    db.commit()
    db.close()
    with Cache(tmp_path / "c.sqlite") as cache:
        read = cache.get_many(keys)
        assert [read[k].error for k in keys] == [
            "the cached row is malformed (column output); the next run answers it again",
            "the cached row is malformed (column model, seconds); the next run answers it again",
            "the cached row is malformed (column precision); the next run answers it again",
        ]
        assert not set(keys) & cache.finished_keys()
        assert [a.model for a in cache.iter_answers() if a.key == keys[1]] == ["b'm'"]
        summary = run_plan(plan, specs, cache, progress=False)
        assert summary.ran == 3
        assert all(a.error is None for a in cache.get_many(keys).values())
