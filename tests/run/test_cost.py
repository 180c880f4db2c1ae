"""The cost of a plan: image-token rules, text tokens, the counts per model, calibrations, and
`medbench plan --cost`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from medbench.cli import app
from medbench.errors import MedbenchError
from medbench.run.cost import (
    COUNTS,
    FAMILY_RULES,
    Calibration,
    Speed,
    image_rule,
    plan_cost,
    read_calibration,
    write_calibration,
)
from medbench.run.plan import make_plan
from medbench.spec.loading import load_specs
from tests.spec_tree import REPO, make_project


def test_family_rule_llava_next_tiles_a_square_image_into_2928_tokens() -> None:
    # 512 x 512 -> the 672 x 672 grid: 48 x 48 unpadded + 48 newlines + the 24 x 24 base tile
    assert FAMILY_RULES["llava_next"].tokens(512, 512) == 2304 + 48 + 576
    # a wide chest X-ray keeps 36 of the grid's 48 rows
    assert FAMILY_RULES["llava_next"].tokens(1858, 1422) == 36 * 48 + 36 + 576
    assert FAMILY_RULES["llava"].tokens(1858, 1422) == 576
    assert FAMILY_RULES["gemma3"].tokens(10, 10000) == 256


@pytest.mark.parametrize("size", [(32, 32), (80, 40), (40, 90), (100, 33), (33, 33)])
def test_image_rule_llava_next_matches_the_processors_image_tokens(
    tiny_llava_next_dir: Path, size: tuple[int, int]
) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_llava_next_dir)
    inputs = processor(text="<image> hi", images=[Image.new("RGB", size)], return_tensors="pt")
    expected = int((inputs["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<image>"))
                   .sum())  # fmt: skip
    rule = image_rule("llava_next", tiny_llava_next_dir)
    assert rule is not None and rule.source == "processor config"
    assert rule.tokens(*size) == expected


def test_image_rule_reads_the_fixed_grids_from_the_processor_config(
    tiny_llava_dir: Path, tiny_gemma3_dir: Path
) -> None:
    llava, gemma = image_rule("llava", tiny_llava_dir), image_rule("gemma3", tiny_gemma3_dir)
    assert llava is not None and (llava.fixed, llava.source) == (16, "processor config")
    assert gemma is not None and (gemma.fixed, gemma.source) == (4, "processor config")
    assert image_rule("llava", None) == FAMILY_RULES["llava"]
    assert image_rule("unknown", None) is None


def _project(tmp_path: Path) -> Path:
    return make_project(
        tmp_path,
        families=("closed_diagnosis", "describe_findings"),
        models=("llava-1.5-7b", "gemma-3-4b-it", "baseline-chance"),
        suite_extra=(
            "describe: {family: describe_findings, diagnosers: [gpt-5.1], "
            "diagnose_families: [closed_diagnosis]}\nlikelihood: {}\n"
            "image_variants:\n  - {id: no-image, transform: no_image}\n"
        ),
    )


def test_plan_cost_counts_generations_tokens_likelihoods_and_llm_calls(tmp_path: Path) -> None:
    project = _project(tmp_path)
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "m", placeholders=True)
    cost = plan_cost(plan, specs, folder_of=lambda model: None)
    by_id = {m.id: m for m in cost.models}
    assert sorted(by_id) == ["gemma-3-4b-it", "llava-1.5-7b"]  # baselines cost nothing
    llava = by_id["llava-1.5-7b"]
    # 4 images: 8 closed + 2 describe wordings; the reference asked without an image is one
    # prompt (one key) for every image
    assert llava.generations == 4 * (8 + 2) + 1
    # the hf backend computes each image's prefix once per system text; the image-after
    # wording shares none (see the shared-prefix test)
    assert llava.image_tokens == 4 * 4 * 576
    assert llava.decode_budget_tokens == (4 * 8 + 1) * 64 + 4 * 2 * 200  # closed: 64 each
    assert llava.likelihood_requests == 4 * 8
    # each description diagnosed under the 7 wordings that do not only move the image
    assert llava.llm_calls == 4 * 2 * 7
    assert llava.prefill_tokens > llava.image_tokens
    assert (llava.image_rule, llava.text_tokens) == ("family rule", "estimate")
    assert by_id["gemma-3-4b-it"].image_tokens == 4 * 4 * 256
    assert cost.placeholders == ["gemma-3-4b-it", "llava-1.5-7b"]
    assert cost.gpu_hours is None


def test_plan_cost_json_has_exactly_the_documented_keys(tmp_path: Path) -> None:
    project = _project(tmp_path)
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "m", placeholders=True)
    data = plan_cost(plan, specs, folder_of=lambda model: None).to_json()
    assert [set(m) for m in data["models"]] == [{"id", *COUNTS}] * 2
    assert set(data["total"]) == set(COUNTS)
    assert data["total"]["generations"] == sum(m["generations"] for m in data["models"])


def test_plan_cost_with_calibration_gives_gpu_hours(tmp_path: Path) -> None:
    project = _project(tmp_path)
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "m", placeholders=True)
    speeds = {m: Speed(1000.0, 10.0, 8) for m in ("llava-1.5-7b", "gemma-3-4b-it")}
    cost = plan_cost(plan, specs, Calibration("NVIDIA H100", speeds), folder_of=lambda m: None)
    llava = next(m for m in cost.models if m.id == "llava-1.5-7b")
    seconds = (llava.prefill_tokens + llava.likelihood_prefill_tokens) / 1000 + (
        llava.decode_budget_tokens / 10
    )
    assert llava.gpu_hours == pytest.approx(seconds / 3600)
    assert cost.gpu == "NVIDIA H100"


def test_read_calibration_round_trips_and_refuses_another_format(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    calibration = Calibration("NVIDIA H100", {"m": Speed(2.0, 1.0, 4)})
    write_calibration(path, calibration)
    assert read_calibration(path) == calibration
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "schema_version": 2}))
    with pytest.raises(MedbenchError, match=r"calibration schema_version 2; this medbench reads 1"):
        read_calibration(path)
    path.write_text(json.dumps({**data, "models": {"m": {"prefill_tokens_per_s": -1}}}))
    with pytest.raises(
        MedbenchError, match=r"models\.m\.prefill_tokens_per_s: expected a positive"
    ):
        read_calibration(path)


def test_plan_command_cost_prints_tokens_and_how_to_get_hours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path)
    monkeypatch.chdir(project)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = ["--cache", str(tmp_path / "c.sqlite")]
    result = CliRunner().invoke(app, ["plan", "specs", "--suite", "t", "--cost", *cache])
    assert result.exit_code == 0, result.output
    assert "llava-1.5-7b" in result.output and "total" in result.output
    assert "image tokens by the family rule" in result.output
    assert "scripts/gpu_check.sh --calibration FILE" in result.output
    result = CliRunner().invoke(app, ["plan", "specs", "--suite", "t", "--json", *cache])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)["total"]) == set(COUNTS)
    calibration = tmp_path / "cal.json"
    write_calibration(calibration, Calibration("NVIDIA H100", {"llava-1.5-7b": Speed(9.0, 1.0)}))
    result = CliRunner().invoke(
        app, ["plan", "specs", "-s", "t", "--cost", "--calibration", str(calibration), *cache]
    )
    assert result.exit_code == 0, result.output
    assert "GPU-hours estimated from speeds measured on NVIDIA H100" in result.output


def test_make_full_tree_writes_the_real_datasets_sizes(tmp_path: Path) -> None:
    out = tmp_path / "data"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_full_tree.py"), str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    counts = {
        folder: sum(1 for _ in (out / folder).rglob("*.jpeg"))
        for folder in ("brain_tumor_mri", "chest_xray", "skin_isic", "lung_colon_image_set")
    }
    assert counts == {
        "brain_tumor_mri": 1311,
        "chest_xray": 624,
        "skin_isic": 99,
        "lung_colon_image_set": 750,
    }
    first = next((out / "chest_xray" / "test" / "NORMAL").iterdir())
    with Image.open(first) as image:
        assert image.size[0] > 1000


def test_plan_cost_decode_budget_follows_each_familys_budget(tmp_path: Path) -> None:
    project = _project(tmp_path)
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=tmp_path / "m", placeholders=True)
    llava = next(m for m in plan_cost(plan, specs, folder_of=lambda m: None).models
                 if m.id == "llava-1.5-7b")  # fmt: skip
    # 32 closed generations and 1 no-image at the family's 64, 8 descriptions at their 200
    assert llava.decode_budget_tokens == 32 * 64 + 8 * 200 + 1 * 64


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_plan_cost_counts_a_shared_prefix_once(tmp_path: Path, backend: str) -> None:
    project = _project(tmp_path)
    specs = load_specs(project / "specs")
    llava = specs.models["llava-1.5-7b"]
    specs.models["llava-1.5-7b"] = llava.model_copy(update={"backend": backend})
    plan = make_plan(specs, "t", models_dir=tmp_path / "m", placeholders=True)
    cost = next(m for m in plan_cost(plan, specs, folder_of=lambda m: None).models
                if m.id == "llava-1.5-7b")  # fmt: skip
    # per image: one prefix without a system text, one with the persona's, one per describe
    # wording's system text (radiologist) or none (shared with the closed family's); the
    # image-after wording (`image_position: after_text`) shares none: its image counts whole
    assert cost.image_tokens == 4 * (3 + 1) * 576
