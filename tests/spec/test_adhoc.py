"""Ad hoc models (`--model hf:ORG/NAME[@REV]`): the keys of the spec one would write, no spec."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medbench.cli import app
from medbench.errors import MedbenchError
from medbench.run.cache import Cache
from medbench.run.prepare import plan_suite as build_plan
from medbench.spec.adhoc import adhoc_spec, with_adhoc_models
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "89abcdef0123456789abcdef0123456789abcdef"
SPEC = f"""\
schema_version: 1
kind: model
id: my-vlm
title: My VLM
backend: hf
family: llava
repo: org/My_VLM
revision: {SHA}
"""


def test_adhoc_spec_is_a_repo_and_a_revision_with_defaults() -> None:
    spec = adhoc_spec(f"hf:org/My_VLM@{SHA}")
    assert (spec.id, spec.repo, spec.revision) == ("org--my_vlm", "org/My_VLM", SHA)
    assert (spec.dtype, spec.generation.max_new_tokens, spec.base) == ("auto", 128, None)
    assert adhoc_spec("hf:org/name").revision == "main"


def test_adhoc_spec_refuses_a_malformed_reference() -> None:
    message = (
        "--model hf:org: expected hf:ORG/NAME or hf:ORG/NAME@REVISION (a branch, tag or commit "
        "sha)."
    )
    with pytest.raises(MedbenchError, match=f"^{re.escape(message)}$"):
        adhoc_spec("hf:org")


def test_adhoc_model_shares_the_cache_keys_of_the_same_spec(tmp_path: Path) -> None:
    project = make_project(tmp_path, models=("baseline-chance", "my-vlm"))
    (project / "specs/models/my-vlm.yaml").write_text(SPEC)
    with Cache(tmp_path / "c.sqlite") as cache:
        _, written = build_plan(project / "specs", "t", cache, ["my-vlm"], None, None)
        _, adhoc = build_plan(project / "specs", "t", cache, [f"hf:org/My_VLM@{SHA}"], None, None)
    assert [j.key for j in adhoc.jobs] == [j.key for j in written.jobs]
    assert {j.model for j in adhoc.jobs} == {"org--my_vlm"}


def test_adhoc_model_with_a_base_runs_as_a_pair(tmp_path: Path) -> None:
    specs = load_specs(make_project(tmp_path) / "specs")
    grown, chosen = with_adhoc_models(specs, "t", [f"hf:org/med@{SHA}"], f"hf:org/general@{OTHER}")
    assert chosen == ["org--med", "org--general"]
    assert grown.models["org--med"].base == "org--general"
    assert grown.models["org--med"].medical is True
    assert grown.suites["t"].models == ("baseline-chance", "org--general", "org--med")
    assert "org--med" not in specs.models  # the loaded specs are left alone


def test_adhoc_base_needs_an_adhoc_model(tmp_path: Path) -> None:
    specs = load_specs(make_project(tmp_path) / "specs")
    with pytest.raises(MedbenchError, match=r"^--base pairs an ad hoc model"):
        with_adhoc_models(specs, "t", ["baseline-chance"], "hf:org/general")


def test_cli_plan_of_an_adhoc_model_counts_its_jobs(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "plan",
            str(project / "specs"),
            "-s",
            "t",
            "--model",
            f"hf:org/med@{SHA}",
            "--base",
            f"hf:org/general@{OTHER}",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    assert result.exit_code == 0, result.output
    # 2 models x 4 images x 8 variants of the closed family
    assert result.output.endswith("0 cached; 64 distinct answers to compute.\n")


def test_publish_refuses_an_adhoc_model_and_says_how_to_publish_it(tmp_path: Path) -> None:
    import pandas as pd

    from medbench.errors import RecordError
    from medbench.publish.local import check_choice

    specs = load_specs(make_project(tmp_path) / "specs")
    answers = pd.DataFrame({"model": ["baseline-chance", "org--med"]})
    message = (
        "org--med: no model spec (an ad hoc `--model hf:REPO` run?): only a model with a spec in "
        "specs/models/, listed in suite t, is published. Write its spec and run the suite again "
        "(the cached answers are reused), or name the other models with --model."
    )
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        check_choice(specs, "t", ["baseline-chance", "org--med"], answers, [], tmp_path, False)
    check_choice(specs, "t", ["baseline-chance"], answers, [], tmp_path, False)
