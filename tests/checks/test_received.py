"""`medbench prompts`: what a model receives, rendered with its own chat template."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medbench.checks.received import received_prompts
from medbench.cli import app
from medbench.errors import MedbenchError, UnknownIdError
from medbench.spec.loading import load_specs

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
PERSONA = "You are an expert in reading chest X-rays with many years of clinical experience."
QUESTION = "Does this chest X-ray show pneumonia? Answer with one of: pneumonia, normal."


def test_prompts_command_shows_the_chat_template_rendering(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "prompts",
            str(REPO / "specs"),
            "--model",
            "tiny-gemma3",
            "--task",
            "pneumonia_cxr",
            "--variant",
            "closed_diagnosis/persona",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "=== closed_diagnosis/persona (persona)\n"
        f"<bos><start_of_turn>user\n{PERSONA}\n\n<start_of_image>{QUESTION}<end_of_turn>\n"
        "<start_of_turn>model\n\n"
    )


def test_received_prompts_api_model_shows_the_messages_sent(tmp_path: Path) -> None:
    specs = load_specs(REPO / "specs")
    shown = received_prompts(
        specs,
        "gpt-5.1",
        "pneumonia_cxr",
        models_dir=tmp_path,
        suite="paper",
        variant="closed_diagnosis/persona",
    )
    assert [(p.family, p.variant, p.kind) for p in shown] == [
        ("closed_diagnosis", "persona", "persona")
    ]
    assert shown[0].text == f"[system] {PERSONA}\n[user] {QUESTION}"


def test_received_prompts_every_variant_of_the_suites_families(tmp_path: Path) -> None:
    specs = load_specs(REPO / "specs")
    shown = received_prompts(
        specs, "baseline-chance", "pneumonia_cxr", models_dir=tmp_path, suite="quickstart"
    )
    suite = specs.suite("quickstart")
    families = [*suite.prompt_families, suite.describe.family if suite.describe else ""]
    assert [f"{p.family}/{p.variant}" for p in shown] == [
        f"{f}/{v.id}" for f in families for v in specs.family(f).variants
    ]
    assert all(p.text.startswith(("[user] [image] ", "[system] ")) for p in shown)


def test_received_prompts_ambiguous_or_unknown_variant_is_an_error(tmp_path: Path) -> None:
    specs = load_specs(REPO / "specs")
    with pytest.raises(MedbenchError, match=r"^variant 'plain' is in several families: write it"):
        received_prompts(
            specs, "baseline-chance", "pneumonia_cxr", models_dir=tmp_path, variant="plain"
        )
    with pytest.raises(
        UnknownIdError, match=r"^'closed_diagnosis/nope' is not a prompt variant in the specs\. "
    ):
        received_prompts(
            specs,
            "baseline-chance",
            "pneumonia_cxr",
            models_dir=tmp_path,
            variant="closed_diagnosis/nope",
        )


def test_received_prompts_closed_vqa_task_shows_the_samples_own_question_as_planned(
    tmp_path: Path,
) -> None:
    from medbench.run.plan import make_plan

    specs = load_specs(REPO / "specs")
    plan = make_plan(
        specs, "medvqa", models_dir=tmp_path, models=["baseline-chance"], tasks=["pmc_vqa_choice"]
    )
    first, second = plan.samples["pmc_vqa_choice"][:2]
    for sample, chosen in ((first, None), (second, second.id)):
        shown = received_prompts(
            specs,
            "baseline-chance",
            "pmc_vqa_choice",
            models_dir=tmp_path,
            suite="medvqa",
            sample=chosen,
        )
        variants = [v.id for v in specs.family("closed_vqa").variants]
        assert [(p.variant, p.sample) for p in shown] == [(v, sample.id) for v in variants]
        for p in shown:
            planned = plan.prompt("closed_vqa", p.variant, "pmc_vqa_choice", sample.id)
            assert p.text.endswith(f"[user] [image] {planned.rendered.messages.text}")
            assert "option A" not in p.text


def test_received_prompts_unknown_sample_or_sample_of_a_fixed_question_task_is_an_error(
    tmp_path: Path,
) -> None:
    specs = load_specs(REPO / "specs")
    with pytest.raises(
        MedbenchError,
        match=r"^task 'pmc_vqa_choice' has no sample 'row-000001' in its sample data\. "
        r"Did you mean 'row000001'\?$",
    ):
        received_prompts(
            specs, "baseline-chance", "pmc_vqa_choice", models_dir=tmp_path, sample="row-000001"
        )
    with pytest.raises(
        MedbenchError, match=r"^task 'pneumonia_cxr' asks every image the same question: drop"
    ):
        received_prompts(
            specs, "baseline-chance", "pneumonia_cxr", models_dir=tmp_path, sample="row000001"
        )


def test_prompts_command_names_the_closed_vqa_sample_it_shows(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "prompts",
            str(REPO / "specs"),
            "--model",
            "baseline-chance",
            "--task",
            "vqa_rad_yes_no",
            "--variant",
            "closed_vqa/plain",
            "--sample",
            "row000001",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
    )
    assert result.exit_code == 0, result.output
    head, text = result.stdout.split("\n", 1)
    assert head == "=== closed_vqa/plain (wording, sample row000001)"
    assert text.startswith("[user] [image] Are the lungs clear?")
