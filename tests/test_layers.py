"""Tests of scripts/check_layers.py: the stages import only earlier stages, through faces."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import check_layers  # noqa: E402


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A copy of medbench/ to plant bad imports in."""
    copy = tmp_path / "medbench"
    shutil.copytree(ROOT / "medbench", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def plant(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_check_layers_medbench_passes() -> None:
    assert check_layers.problems(ROOT / "medbench") == []


def test_check_layers_upward_import_fails(package: Path) -> None:
    plant(package / "score" / "summary.py", "from medbench.publish import Record")
    found = check_layers.problems(package)
    assert any(
        "score/summary.py:" in p and "(score) imports a later stage: medbench.publish" in p
        for p in found
    ), found


def test_check_layers_lazy_upward_import_fails(package: Path) -> None:
    plant(package / "data" / "images.py", "def _f() -> None:\n    from medbench.run import Cache")
    found = check_layers.problems(package)
    assert any("medbench.data.images (data) imports a later stage" in p for p in found), found


def test_check_layers_sibling_stage_import_fails(package: Path) -> None:
    plant(package / "checks" / "audit.py", "import medbench.checkpoints.tiny")
    found = check_layers.problems(package)
    assert any("(checks) imports a later stage: medbench.checkpoints.tiny" in p for p in found)


def test_check_layers_module_past_a_face_fails(package: Path) -> None:
    plant(package / "score" / "summary.py", "from medbench.run.cache import Cache")
    found = check_layers.problems(package)
    assert any(
        "imports medbench.run.cache, a module of the run stage: import what it needs from the "
        "face, medbench.run" in p
        for p in found
    ), found


def test_check_layers_circle_fails(package: Path) -> None:
    plant(package / "score" / "metrics" / "_codes.py", "from medbench.score.summary import x")
    plant(package / "score" / "summary.py", "from medbench.score.metrics._codes import y")
    found = check_layers.problems(package)
    assert any(
        p.startswith("import circle:")
        and "medbench.score.metrics._codes" in p
        and "medbench.score.summary" in p
        for p in found
    ), found


def test_check_layers_type_checking_circle_fails(package: Path) -> None:
    plant(
        package / "publish" / "record.py",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from medbench.publish.verify import x",
    )
    found = check_layers.problems(package)
    assert any(p.startswith("import circle:") and "publish.record" in p for p in found), found


def test_check_layers_command_importing_a_command_fails(package: Path) -> None:
    plant(package / "commands" / "scoring.py", "from medbench.commands.runner import run")
    found = check_layers.problems(package)
    assert (
        "medbench/commands/scoring.py: command medbench.commands.scoring imports another "
        "command: medbench.commands.runner" in found
    )


def test_check_layers_shared_options_module_passes(package: Path) -> None:
    assert not any("medbench.commands.options" in p for p in check_layers.problems(package))


def test_check_layers_main_exits_1_and_prints_each_problem(
    package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(package / "spec" / "grouping.py", "import medbench.score")
    assert check_layers.main(["check_layers.py", str(package)]) == 1
    out = capsys.readouterr()
    assert "medbench.spec.grouping (spec) imports a later stage: medbench.score" in out.out
    assert "layering problem(s)" in out.err
