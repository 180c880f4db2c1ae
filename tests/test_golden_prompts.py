"""Golden prompts: what each shipped real model receives, against its documented format.

`tests/cases/golden_prompts.yaml` holds, per real model, the documented prompt format written
by hand. Three checks render every variant of the shipped prompt families through medbench's
own path (`medbench prompts`): with the real model's processor when it is in the local Hugging
Face cache (skipped otherwise), with the tiny models' templates where they claim the same
format, and with the converted LLaVA-Med template.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from medbench.checks.received import IMAGE_PLACEHOLDER
from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext
from medbench.spec.loading import load_specs
from medbench.spec.prompts import Messages, render
from tests.spec_tree import tiny_model_spec

ROOT = Path(__file__).resolve().parent.parent
GOLDEN: dict[str, Any] = YAML(typ="safe").load(
    (Path(__file__).parent / "cases" / "golden_prompts.yaml").read_text(encoding="utf-8")
)["models"]
SPECS = load_specs(ROOT / "specs")
TASK = "pneumonia_cxr"


def shipped_messages() -> list[tuple[str, Messages]]:
    """Every variant of the shipped prompt families, rendered for one task with one image."""
    task = SPECS.task(TASK)
    return [
        (f"{family.id}/{variant.id}", render(family, variant, task, (IMAGE_PLACEHOLDER,)).messages)
        for family in SPECS.families.values()
        for variant in family.variants
    ]


def case_of(messages: Messages) -> str:
    """The format a message takes: with or without a system prompt, the image before or after."""
    after = "_image_after" if messages.image_after else ""
    return f"{'with' if messages.system else 'without'}_system{after}"


def expected(formats: dict[str, str], messages: Messages) -> str:
    form = formats[case_of(messages)].replace("{system}", messages.system or "")
    return form.replace("{text}", messages.text)


def test_golden_prompts_cover_every_shipped_real_model() -> None:
    real = sorted(m.id for m in SPECS.models.values() if m.backend == "hf" and not m.test_model)
    assert sorted(GOLDEN) == real
    for model_id, golden in GOLDEN.items():
        assert SPECS.models[model_id].system_prompt == golden["setting"]
        assert golden["setting"] in golden["formats"]
    assert any(m.system for _, m in shipped_messages())
    assert any(not m.system for _, m in shipped_messages())
    assert any(m.image_after for _, m in shipped_messages())


@pytest.mark.parametrize("model_id", sorted(GOLDEN))
def test_golden_prompts_real_model_in_local_hf_cache(model_id: str, tmp_path: Path) -> None:
    from medbench.run.backends.hf.received import load_template
    from medbench.run.identity import resolve_identity

    spec = SPECS.models[model_id]
    if GOLDEN[model_id].get("converted"):
        pytest.skip(
            f"{model_id} loads only after `medbench convert llava-med`; its converted template is "
            "checked by test_golden_prompts_converted_llava_med_template"
        )
    try:
        identity = resolve_identity(spec, SPECS.root, tmp_path)
        template = load_template(spec, identity.context(BackendContext(device="cpu")))
    except BackendError as e:
        pytest.skip(f"{spec.repo} is not in the local Hugging Face cache ({e})")
    formats = GOLDEN[model_id]["formats"][spec.system_prompt]
    for name, messages in shipped_messages():
        assert template.received(messages) == expected(formats, messages), name


TINY_CASES = [
    (model_id, setting)
    for model_id, golden in sorted(GOLDEN.items())
    if golden.get("tiny")
    for setting in golden["formats"]
]


@pytest.mark.parametrize(("model_id", "setting"), TINY_CASES)
def test_golden_prompts_tiny_template_claiming_the_format(
    request: pytest.FixtureRequest, model_id: str, setting: str
) -> None:
    from medbench.run.backends.hf.received import load_template

    arch = GOLDEN[model_id]["tiny"]
    folder = request.getfixturevalue(f"tiny_{arch}_dir")
    spec = tiny_model_spec(arch, system_prompt=setting)
    template = load_template(spec, BackendContext(device="cpu", checkpoint_dir=folder))
    formats = GOLDEN[model_id]["formats"][setting]
    differs = set(GOLDEN[model_id].get("tiny_differs", ()))
    for name, messages in shipped_messages():
        want = expected(formats, messages)
        case = f"{setting}.{case_of(messages)}"
        if case in differs:
            # a known, listed difference of the tiny template: keep the list true
            assert template.received(messages) != want, name
        else:
            assert template.received(messages) == want, name


@pytest.mark.parametrize("setting", sorted(GOLDEN["llava-med-v1.5-mistral-7b"]["formats"]))
def test_golden_prompts_converted_llava_med_template(
    tiny_llava_dir: Path, tmp_path: Path, setting: str
) -> None:
    from medbench.checkpoints.convert.processor import CHAT_TEMPLATE
    from medbench.run.backends.hf.received import load_template

    folder = tmp_path / "llava-med-template"
    shutil.copytree(tiny_llava_dir, folder)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    spec = tiny_model_spec("llava", system_prompt=setting)
    template = load_template(spec, BackendContext(device="cpu", checkpoint_dir=folder))
    formats = GOLDEN["llava-med-v1.5-mistral-7b"]["formats"][setting]
    for name, messages in shipped_messages():
        assert template.received(messages) == expected(formats, messages), name
