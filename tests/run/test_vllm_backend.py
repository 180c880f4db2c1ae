"""The vLLM backend against a fake `vllm` module that records what it is asked (vLLM itself
needs a GPU): the prompts medbench renders, the images, the sampling parameters, the batches."""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from medbench.data.images import sha256_file
from medbench.errors import BackendError
from medbench.run.backends import load_backend
from medbench.run.backends.base import BackendContext, Request
from medbench.run.identity import resolve_identity
from medbench.spec.prompts import ImageRef, Messages
from tests.spec_tree import tiny_model_spec

QUESTION = "Does this chest X-ray show pneumonia? Answer with one of: pneumonia, normal."


@dataclass
class FakeEngine:
    """What the fake vllm module was asked."""

    init: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[list[dict[str, Any]], list[Any]]] = field(default_factory=list)


def fake_vllm(engine: FakeEngine) -> types.ModuleType:
    module = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, **options: Any) -> None:
            self.options = options

    class LLM:
        def __init__(self, **options: Any) -> None:
            engine.init = options

        def generate(
            self, prompts: list[dict[str, Any]], sampling_params: list[Any], use_tqdm: bool
        ) -> list[Any]:
            engine.calls.append((prompts, sampling_params))
            return [
                types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" answer {i} ")])
                for i in range(len(prompts))
            ]

    module.LLM = LLM  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    return module


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    recorded = FakeEngine()
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(recorded))
    return recorded


def _request(key: str, image: Path | None, system: str | None = None) -> Request:
    images = (ImageRef(str(image), sha256_file(image)),) if image is not None else ()
    return Request(key, Messages(system, QUESTION, images))


def test_vllm_backend_sends_medbenchs_prompts_images_and_sampling(
    engine: FakeEngine, tiny_llava_dir: Path, sample_images: list[Path]
) -> None:
    spec = tiny_model_spec(
        "llava", backend="vllm", generation={"max_new_tokens": 12}, dtype="bfloat16"
    )
    context = BackendContext(device="cuda", checkpoint_dir=tiny_llava_dir)
    backend = load_backend(spec, context)
    assert engine.init["model"] == str(tiny_llava_dir)
    assert engine.init["enable_prefix_caching"] is True
    assert engine.init["dtype"] == "bfloat16"
    image = sample_images[0]
    requests = [
        _request("a", image),
        replace(_request("b", image, "You are a radiologist."), max_new_tokens=5),
        _request("c", None),
    ]
    outputs = backend.generate(requests)
    assert [o.text for o in outputs] == ["answer 0", "answer 1", "answer 2"]
    assert [o.batch_size for o in outputs] == [3, 3, 3]
    [(prompts, params)] = engine.calls
    assert [p["prompt"].count("<image>") for p in prompts] == [1, 1, 0]
    assert all(QUESTION in p["prompt"] for p in prompts)
    assert "You are a radiologist." in prompts[1]["prompt"]
    shown = prompts[0]["multi_modal_data"]["image"]
    assert isinstance(shown, Image.Image) and shown.mode == "RGB"
    with Image.open(image) as original:
        assert shown.size == original.size
    assert "multi_modal_data" not in prompts[2]
    assert [p.options for p in params] == [
        {"temperature": 0.0, "max_tokens": 12},
        {"temperature": 0.0, "max_tokens": 5},
        {"temperature": 0.0, "max_tokens": 12},
    ]
    backend.close()


def test_vllm_backend_fails_an_unreadable_image_alone(
    engine: FakeEngine, tiny_llava_dir: Path, sample_images: list[Path], tmp_path: Path
) -> None:
    spec = tiny_model_spec("llava", backend="vllm")
    backend = load_backend(spec, BackendContext(checkpoint_dir=tiny_llava_dir))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    outputs = backend.generate([_request("a", broken), _request("b", sample_images[0])])
    assert outputs[0].error is not None and outputs[0].error.endswith("not an image")
    assert outputs[1].text == "answer 0"
    assert [len(prompts) for prompts, _ in engine.calls] == [1]


def test_vllm_backend_without_vllm_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tiny_llava_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    spec = tiny_model_spec("llava", backend="vllm")
    with pytest.raises(BackendError, match=r"pip install -e '\.\[vllm\]'"):
        load_backend(spec, BackendContext(checkpoint_dir=tiny_llava_dir))


def test_vllm_identity_keys_the_engine_apart_from_hf(tmp_path: Path) -> None:
    hf = resolve_identity(tiny_model_spec("llava"), tmp_path, tmp_path)
    vllm = resolve_identity(tiny_model_spec("llava", backend="vllm"), tmp_path, tmp_path)
    assert vllm.payload["backend"] == "vllm" and "vllm" in vllm.payload["engine"]
    assert "engine" not in hf.payload
    assert {k: v for k, v in vllm.payload.items() if k not in ("backend", "engine")} == {
        k: v for k, v in hf.payload.items() if k != "backend"
    }


def test_gpu_check_vllm_section_compares_answers_with_hf_in_the_spec_dtype(
    engine: FakeEngine, tmp_path: Path
) -> None:
    from medbench.checks.gpu_steps import sample_requests
    from medbench.checks.vllm_check import check_vllm
    from medbench.run.executors import ModelWork, prepare_checkpoint
    from medbench.spec.loading import load_specs
    from tests.spec_tree import REPO

    specs = load_specs(REPO / "specs")
    spec = specs.models["tiny-llava"]
    identity = resolve_identity(spec, specs.root, tmp_path / "models", specs=specs)
    prepare_checkpoint(ModelWork(spec, identity, []))
    requests = sample_requests(specs, 2)
    line = check_vllm(specs, "tiny-llava", requests, ["answer 0", "x", "y", "z"], tmp_path)
    assert re.fullmatch(
        r"tiny-llava \(vllm\): load \d+\.\d s; \d+\.\d\d requests/s; 3 of 4 answers differ "
        r"from the hf backend's",
        line,
    ), line
    assert engine.init["dtype"] == spec.dtype == "float32"


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("llava", f"<s>USER: {QUESTION}\n<image> ASSISTANT:"),
        ("gemma3", f"<bos><start_of_turn>user\n{QUESTION}<start_of_image><end_of_turn>\n"),
    ],
)
def test_vllm_backend_renders_the_image_after_the_text_where_the_variant_puts_it(
    engine: FakeEngine,
    arch: str,
    expected: str,
    tiny_models_dir: Path,
    sample_images: list[Path],
) -> None:
    from tests.conftest import _tiny

    folder = _tiny(tiny_models_dir, arch)
    backend = load_backend(
        tiny_model_spec(arch, backend="vllm"), BackendContext(checkpoint_dir=folder)
    )
    image = sample_images[0]
    messages = Messages(None, QUESTION, (ImageRef(str(image), sha256_file(image)),), "after_text")
    backend.generate([Request("a", messages)])
    [(prompts, _)] = engine.calls
    assert prompts[0]["prompt"].startswith(expected)
    assert isinstance(prompts[0]["multi_modal_data"]["image"], Image.Image)


def test_vllm_backend_pads_a_greyscale_file_with_llava_meds_grey(
    engine: FakeEngine, tiny_llava_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "xray.png"
    Image.new("L", (20, 40), 200).save(path)
    spec = tiny_model_spec("llava", backend="vllm", image_preprocess="pad_square_grey")
    backend = load_backend(spec, BackendContext(checkpoint_dir=tiny_llava_dir))
    backend.generate([_request("a", path)])
    [(prompts, _)] = engine.calls
    shown = prompts[0]["multi_modal_data"]["image"]
    assert (shown.size, shown.getpixel((0, 0)), shown.getpixel((10, 20))) == (
        (40, 40),
        (114, 114, 114),
        (200, 200, 200),
    )
