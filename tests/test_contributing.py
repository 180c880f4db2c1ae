"""CONTRIBUTING.md's three journeys, run exactly as written on the bundled sample.

Every YAML block whose first line names a file (`# specs/...`) is written to that file and every
bash block is run with `medbench` standing for this checkout's CLI, in the page's order, in a
copy of the repository's specs and sample. The only step the page leaves to the reader, putting
a new task's images in place, is done here with the bundled pneumonia images.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "CONTRIBUTING.md"
BLOCK = re.compile(r"^```(yaml|bash)\n(.*?)^```", re.S | re.M)


def journeys() -> list[tuple[str, list[tuple[str, str]]]]:
    """(heading, [(kind, text)]) for each `## N.` section of the page."""
    sections = re.split(r"^## (?=\d\. )", PAGE.read_text(encoding="utf-8"), flags=re.M)[1:]
    return [(s.splitlines()[0], [(m[0], m[1]) for m in BLOCK.findall(s)]) for s in sections]


def test_contributing_has_three_journeys_with_commands() -> None:
    found = journeys()
    assert [heading for heading, _ in found] == [
        "1. Add a task",
        "2. Add a model and its pair",
        "3. Publish a result",
    ]
    for _, blocks in found:
        assert any(kind == "bash" for kind, _ in blocks)
    for _, blocks in found:
        for kind, text in blocks:
            if kind == "yaml":
                assert text.startswith("# specs/"), text[:40]


def test_readme_points_to_contributing_and_gitignore_covers_local_weights() -> None:
    assert "CONTRIBUTING.md" in (REPO / "README.md").read_text(encoding="utf-8")
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "data/models/" in ignored


@pytest.mark.slow
def test_contributing_journeys_run_as_written(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(REPO / "specs", project / "specs")
    shutil.copytree(REPO / "data" / "sample", project / "data" / "sample")
    shutil.copytree(REPO / "data/sample/pneumonia_cxr", project / "data/sample/my_task")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "medbench").write_text(f'#!/bin/sh\nexec {sys.executable} -m medbench "$@"\n')
    (bin_dir / "medbench").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "MEDBENCH_HOME": str(tmp_path / "home"),
    }
    env.pop("MEDBENCH_CACHE", None)
    env.pop("MEDBENCH_DATA", None)
    outputs: list[str] = []
    for heading, blocks in journeys():
        for kind, text in blocks:
            if kind == "yaml":
                target = project / text.splitlines()[0].removeprefix("# ").strip()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                continue
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", text],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            assert done.returncode == 0, f"{heading}:\n{text}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout + done.stderr)
    assert "all valid" in outputs[0]
    records = sorted(p.name for p in (project / "leaderboard" / "my-suite").glob("*.json"))
    assert records == ["my-general.json", "my-medical.json"]
    assert "2 records verified" in outputs[-1]
    assert (project / "_site" / "index.html").is_file()
    assert "warning" not in "".join(outputs)  # the pair was listed with its base
