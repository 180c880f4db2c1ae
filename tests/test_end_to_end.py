import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medbench.publish.verify import verify_records
from tests.spec_tree import make_project

DESCRIBE = (
    "describe:\n  family: describe_findings\n  diagnosers: [tiny-text]\n"
    "  diagnose_families: [closed_diagnosis]\nprobe: {}\n"
)


@pytest.mark.slow
def test_run_end_to_end_writes_results_ladder_records_and_site(tmp_path: Path) -> None:
    project = make_project(
        tmp_path,
        tasks=("pneumonia_cxr", "skin_lesion"),
        families=("closed_diagnosis", "finding_present"),
        models=("tiny-llava", "baseline-chance", "baseline-majority"),
        limit_per_class=3,
    )
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text() + DESCRIBE)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEDBENCH_CACHE": str(tmp_path / "c.sqlite")}
    cmd = [sys.executable, "-m", "medbench", "run", "specs", "--suite", "t"]
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = project / "results" / "t"
    for name in (
        "answers.parquet",
        "scores.csv",
        "fragility.csv",
        "pairs.csv",
        "models.csv",
        "summary.json",
        "layout.json",
        "probe.csv",
        "ladder.csv",
    ):
        assert (results / name).is_file(), name
    assert (results / "tsne" / "tiny-llava" / "skin_lesion.svg").is_file()
    ladder = pd.read_csv(results / "ladder.csv")
    llava = ladder[ladder.model == "tiny-llava"]
    assert sorted(llava.task) == ["pneumonia_cxr", "skin_lesion"]
    assert llava["reading"].str.len().min() > 20
    answers = pd.read_parquet(results / "answers.parquet")
    assert "described/radiologist/tiny-text" in set(answers.pipeline)
    assert verify_records(results / "leaderboard") == []
    page = (project / "_site" / "models" / "tiny-llava.html").read_text()
    assert "knowledge ladder" in page
    assert (results / "leaderboard" / "t" / "tiny-llava.tsne" / "skin_lesion.svg").is_file()
    assert 'src="../charts/t~tiny-llava~tsne~skin_lesion.svg"' in page
    assert "Site built: open _site/index.html" in done.stderr
    # One rule for what the site shows: `site build` after `run` gives the same site.
    first = {
        p.relative_to(project / "_site"): p.read_bytes()
        for p in (project / "_site").rglob("*")
        if p.is_file()
    }
    build = [sys.executable, "-m", "medbench", "site", "build"]
    rebuilt = subprocess.run(
        build, cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert {
        p.relative_to(project / "_site"): p.read_bytes()
        for p in (project / "_site").rglob("*")
        if p.is_file()
    } == first
    assert "local, unpublished" in (project / "_site" / "index.html").read_text()

    again = subprocess.run(
        cmd + ["--no-site"], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert " 0 ran, 0 failed" in again.stderr
