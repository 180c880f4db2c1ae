"""medbench's home folder: one models folder shared by every answer cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from medbench.home import medbench_home, models_dir
from medbench.run.cache import Cache, default_cache_path
from medbench.run.prepare import plan_suite as build_plan
from tests.spec_tree import make_project


def test_home_names_the_models_folder_and_the_default_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MEDBENCH_CACHE", raising=False)
    assert medbench_home() == tmp_path / "home"
    assert models_dir() == tmp_path / "home" / "models"
    assert default_cache_path() == tmp_path / "home" / "answers.sqlite"


def test_home_defaults_to_the_user_cache_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from platformdirs import user_cache_dir

    monkeypatch.delenv("MEDBENCH_HOME")
    assert models_dir() == Path(user_cache_dir("medbench")) / "models"


def test_home_models_are_shared_by_every_answer_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))
    tasks = ("brain_tumor_mri", "histopathology", "pneumonia_cxr", "skin_lesion")
    project = make_project(tmp_path, tasks=tasks, models=("tiny-gemma3-general", "tiny-llava"))
    folders = []
    for name in ("one", "two"):
        with Cache(tmp_path / name / "answers.sqlite") as cache:
            _, plan = build_plan(project / "specs", "t", cache, None, None, None)
        folders.append({m: i.checkpoint_dir for m, i in plan.identities.items()})
    assert folders[0] == folders[1]
    assert {p.parent for p in folders[0].values() if p} == {tmp_path / "home" / "models"}
