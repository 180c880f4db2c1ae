"""Tests of medbench.checks.audit and `medbench audit-parse`: a judge reads sampled answers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from medbench.checks.audit import Judged, agreement, judge_messages, sample_by_rule
from medbench.commands.audit import audit_parse
from medbench.run.cache import Cache
from medbench.run.loop import run_plan
from medbench.run.plan import make_plan
from medbench.spec.loading import load_specs
from tests.spec_tree import make_project


def _answers(rules: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": "m",
            "task": "t",
            "family": "f",
            "variant": "v",
            "pipeline": "direct",
            "sample": [f"s{i}" for i in range(len(rules))],
            "status": ["error" if r == "job_failed" else "answer" for r in rules],
            "rule": rules,
        }
    )


def test_sample_by_rule_takes_every_rule_round_robin() -> None:
    answers = _answers(["option_text"] * 50 + ["refusal"] * 2 + ["letter"] * 3 + ["job_failed"])
    sample = sample_by_rule(answers, 7)
    assert list(sample["rule"]) == ["letter", "option_text", "refusal"] * 2 + ["letter"]
    assert sample.equals(sample_by_rule(answers, 7))
    assert not sample.equals(sample_by_rule(answers, 7, seed=1))


def test_judge_messages_offer_options_refusal_and_unparseable() -> None:
    messages = judge_messages(("glioma", "meningioma"), "It is a glioma.")
    assert messages.images == ()
    assert messages.text.endswith(
        "Answer with exactly one of: glioma, meningioma, refusal, unparseable."
    )
    assert '"""\nIt is a glioma.\n"""' in messages.text


def test_agreement_counts_per_rule() -> None:
    judged = [
        Judged("letter", "B", "meningioma", "meningioma"),
        Judged("letter", "A or B", "unparseable", "glioma"),
        Judged("refusal", "I cannot tell.", "refusal", "refusal"),
    ]
    assert agreement(judged) == [("letter", 2, 1), ("refusal", 1, 1)]


def test_audit_parse_command_reports_agreement_and_caches_the_judge(tmp_path: Path) -> None:
    project = make_project(
        tmp_path,
        tasks=("pneumonia_cxr",),
        families=("closed_diagnosis",),
        models=("baseline-chance", "baseline-majority"),
        limit_per_class=2,
    )
    specs = load_specs(project / "specs")
    cache_path = tmp_path / "c.sqlite"
    with Cache(cache_path) as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models")
        run_plan(plan, specs, cache, progress=False)
    app = typer.Typer()
    app.command()(audit_parse)
    args = [str(project / "specs"), "--suite", "t", "--judge", "baseline-majority"]
    args += ["--n", "5", "--cache", str(cache_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[:2] == [
        "parser vs judge baseline-majority: 5 answers of suite t",
        "option_text: 2 of 5 agree (0.40)",
    ]
    assert lines[2:] == ["[option_text] parser: normal | judge: pneumonia | 'normal'"] * 3
    with Cache(cache_path) as cache:
        stored = cache.stats()
    again = CliRunner().invoke(app, args)
    assert again.stdout == first.stdout
    with Cache(cache_path) as cache:
        assert cache.stats() == stored
