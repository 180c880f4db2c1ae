"""Tests of medbench.checkpoints.tiny: small, reproducible, loadable, atomically built models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from medbench.checkpoints.tiny import (
    CHAT_TEMPLATES,
    MARKER,
    Arch,
    build_tiny_model,
    corpus,
    ensure_tiny_model,
    marker,
)
from medbench.checkpoints.tiny import build as tiny_build
from medbench.spec.model import TinySpec

ARCHS: tuple[Arch, ...] = ("llava", "llava_next", "gemma3", "text")
LABEL_WORDS = (
    "glioma",
    "meningioma",
    "no tumor",
    "pituitary tumor",
    "normal",
    "pneumonia",
    "benign",
    "malignant",
    "adenocarcinoma",
    "benign lung tissue",
    "squamous cell carcinoma",
    "yes",
    "no",
)


@pytest.fixture(scope="module")
def built(tiny_models_dir: Path) -> dict[str, Path]:
    """Each architecture built twice with seed 0 and once with seed 1."""
    root = tiny_models_dir / "test_tiny"
    return {
        f"{arch}/{copy}": build_tiny_model(
            arch, root / f"{arch}-{copy}", seed=1 if copy == "c" else 0
        )
        for arch in ARCHS
        for copy in ("a", "b", "c")
    }


def load(folder: Path, arch: str) -> tuple[Any, Any]:
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )

    if arch == "text":
        return AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)  # type: ignore[no-untyped-call]
    return processor, AutoModelForImageTextToText.from_pretrained(folder)


@pytest.mark.parametrize("arch", ARCHS)
def test_build_tiny_model_is_byte_identical_for_a_seed(built: dict[str, Path], arch: str) -> None:
    first, second = built[f"{arch}/a"], built[f"{arch}/b"]
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.parametrize("arch", ARCHS)
def test_build_tiny_model_weights_change_with_the_seed(built: dict[str, Path], arch: str) -> None:
    weights = "model.safetensors"
    assert (built[f"{arch}/a"] / weights).read_bytes() != (
        built[f"{arch}/c"] / weights
    ).read_bytes()


@pytest.mark.parametrize("arch", ARCHS)
def test_build_tiny_model_is_small_and_marked(built: dict[str, Path], arch: str) -> None:
    folder = built[f"{arch}/a"]
    assert sum(p.stat().st_size for p in folder.iterdir()) < 2_000_000
    assert json.loads((folder / MARKER).read_text()) == {
        "arch": arch,
        "builder_version": 1,
        "note": "random weights",
        "schema_version": 1,
        "seed": 0,
        "test_model": True,
    }


@pytest.mark.parametrize("arch", ARCHS)
def test_build_tiny_model_loads_offline_with_auto_classes(
    built: dict[str, Path], arch: str
) -> None:
    processor, model = load(built[f"{arch}/a"], arch)
    tokenizer = processor if arch == "text" else processor.tokenizer
    assert tokenizer.padding_side == "left"
    assert 500 <= len(tokenizer) <= 1000
    assert model.config.get_text_config().vocab_size == len(tokenizer)
    expected = {
        "llava": "LlavaForConditionalGeneration",
        "llava_next": "LlavaNextForConditionalGeneration",
        "gemma3": "Gemma3ForConditionalGeneration",
        "text": "LlamaForCausalLM",
    }
    assert type(model).__name__ == expected[arch]


@pytest.mark.parametrize("arch", ["llava", "llava_next", "gemma3"])
def test_build_tiny_model_image_token_is_one_token(built: dict[str, Path], arch: str) -> None:
    processor, model = load(built[f"{arch}/a"], arch)
    ids = processor.tokenizer.encode(processor.image_token, add_special_tokens=False)
    assert ids == [processor.image_token_id]
    assert model.config.image_token_id in (
        processor.image_token_id,
        processor.tokenizer.image_token_id,
    )


def test_tiny_tokenizer_knows_the_label_words(built: dict[str, Path]) -> None:
    tokenizer, _ = load(built["text/a"], "text")
    for word in LABEL_WORDS:
        ids = tokenizer.encode(" " + word, add_special_tokens=False)
        assert len(ids) <= len(word.split()) + 1, word
        assert tokenizer.decode(ids) == " " + word


def test_corpus_holds_a_few_hundred_sentences_with_every_label() -> None:
    sentences = corpus()
    assert 200 <= len(sentences) <= 1000
    text = "\n".join(sentences)
    assert all(word in text for word in LABEL_WORDS)


SYSTEM_AND_USER = [
    {"role": "system", "content": [{"type": "text", "text": "You are a radiologist."}]},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is it normal?"}]},
]


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("llava", "<s>You are a radiologist.\n\nUSER: <image>\nIs it normal? ASSISTANT:"),
        (
            "llava_next",
            "<s><<SYS>>\nYou are a radiologist.\n<</SYS>>\n\n[INST] <image>\nIs it normal? [/INST]",
        ),
        (
            "gemma3",
            "<bos><start_of_turn>user\nYou are a radiologist.\n\n<start_of_image>Is it normal?"
            "<end_of_turn>\n<start_of_turn>model\n",
        ),
    ],
)
def test_tiny_chat_template_places_the_system_prompt(
    built: dict[str, Path], arch: str, expected: str
) -> None:
    processor, _ = load(built[f"{arch}/a"], arch)
    assert processor.apply_chat_template(SYSTEM_AND_USER, add_generation_prompt=True) == expected


def test_tiny_text_template_accepts_string_contents(built: dict[str, Path]) -> None:
    tokenizer, _ = load(built["text/a"], "text")
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    rendered = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
    assert rendered == "<s>Be brief.\n\nUSER: Hello ASSISTANT:"
    assert set(CHAT_TEMPLATES) == {"vicuna", "mistral", "gemma"}


def test_ensure_tiny_model_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = TinySpec(arch="text")
    folder = ensure_tiny_model(spec, tmp_path / "text")
    assert json.loads((folder / MARKER).read_text()) == marker("text", 0)
    calls: list[str] = []
    monkeypatch.setattr(tiny_build, "build_tiny_model", lambda *a, **k: calls.append("built"))
    assert ensure_tiny_model(spec, tmp_path / "text") == folder
    assert calls == []


def test_ensure_tiny_model_rebuilds_when_the_marker_differs(tmp_path: Path) -> None:
    folder = ensure_tiny_model(TinySpec(arch="text"), tmp_path / "model")
    before = (folder / "model.safetensors").read_bytes()
    ensure_tiny_model(TinySpec(arch="text", seed=3), folder)
    assert json.loads((folder / MARKER).read_text())["seed"] == 3
    assert (folder / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_ensure_tiny_model_crash_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(arch: str, out_dir: Path, *, seed: int = 0) -> Path:
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("killed half way")

    monkeypatch.setattr(tiny_build, "build_tiny_model", crash)
    with pytest.raises(RuntimeError, match=r"^killed half way$"):
        ensure_tiny_model(TinySpec(arch="llava"), tmp_path / "llava")
    assert list(tmp_path.iterdir()) == []


def test_ensure_tiny_model_keeps_an_old_folder_when_a_rebuild_crashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = ensure_tiny_model(TinySpec(arch="text"), tmp_path / "text")

    def crash(arch: str, out_dir: Path, *, seed: int = 0) -> Path:
        raise RuntimeError("killed")

    monkeypatch.setattr(tiny_build, "build_tiny_model", crash)
    with pytest.raises(RuntimeError, match=r"^killed$"):
        ensure_tiny_model(TinySpec(arch="text", seed=5), folder)
    assert json.loads((folder / MARKER).read_text())["seed"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text"]


def test_import_medbench_tiny_does_not_import_torch() -> None:
    heavy = "{'torch', 'transformers', 'tokenizers'}"
    code = f"import sys, medbench.checkpoints.tiny; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_torch_runs_on_one_thread_in_tests(tiny_models_dir: Path) -> None:
    assert torch.get_num_threads() == 1
