"""The CI check that keeps the remote-code allow-list out of spec pull requests."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_allow_list", REPO / "scripts" / "check_allow_list.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_check_allow_list_refuses_a_spec_and_the_list_together() -> None:
    found = _script().problems(["specs/allow_remote_code.txt", "specs/models/evil.yaml"])
    assert found == [
        "specs/allow_remote_code.txt: changed together with 1 spec file(s) "
        "(specs/models/evil.yaml). Allow-list a model in a pull request of its own, "
        "reviewed by a maintainer."
    ]


@pytest.mark.parametrize(
    "changed",
    [
        ["specs/models/a.yaml", "README.md"],
        ["specs/allow_remote_code.txt", "README.md"],
        [],
    ],
)
def test_check_allow_list_passes_either_alone(changed: list[str]) -> None:
    assert _script().problems(changed) == []


def test_check_allow_list_reads_the_pull_request_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "specs" / "models").mkdir(parents=True)
    (tmp_path / "specs" / "allow_remote_code.txt").write_text("# maintainers\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "base")
    base = _git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "specs" / "allow_remote_code.txt").write_text("# maintainers\nevil\n")
    (tmp_path / "specs" / "models" / "evil.yaml").write_text("id: evil\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "pr")
    monkeypatch.chdir(tmp_path)
    assert _script().main(["--base", base]) == 1
    assert capsys.readouterr().err == (
        "specs/allow_remote_code.txt: changed together with 1 spec file(s) "
        "(specs/models/evil.yaml). Allow-list a model in a pull request of its own, "
        "reviewed by a maintainer.\n"
    )


def test_pull_request_workflow_runs_the_allow_list_check() -> None:
    workflow = (REPO / ".github" / "workflows" / "pr.yml").read_text(encoding="utf-8")
    assert 'python scripts/check_allow_list.py --base "$BASE_SHA"' in workflow


def test_codeowners_cover_the_allow_list_and_the_workflows() -> None:
    lines = (REPO / ".github" / "CODEOWNERS").read_text(encoding="utf-8").splitlines()
    owned = {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}
    assert {"/specs/allow_remote_code.txt", "/.github/"} <= owned
