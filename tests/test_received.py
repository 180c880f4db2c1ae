"""`medbench prompts`: what a model receives, rendered with its own chat template."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from medbench.cli import app
from medbench.errors import MedbenchError
from medbench.loading import load_specs
from medbench.received import received_prompts

REPO = Path(__file__).resolve().parent.parent
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
    with pytest.raises(MedbenchError, match=r"^no prompt variant 'closed_diagnosis/nope'\. "):
        received_prompts(
            specs,
            "baseline-chance",
            "pneumonia_cxr",
            models_dir=tmp_path,
            variant="closed_diagnosis/nope",
        )
