"""Generation from a shared image prefix: the same tokens as full prompts, less prefill."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from benchmarks import bench_prefix
from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.backends.hf import HFBackend
from medbench.run.backends.hf.backend import _Row
from medbench.run.backends.hf.prefix import plan_sharing, whole_images
from medbench.spec.prompts import ImageRef, Messages
from tests.spec_tree import REPO, tiny_model_spec

ARCHS = ["llava", "llava_next", "gemma3"]


def family_requests(images: list[Path], family: str = "closed_diagnosis") -> list[Request]:
    """Every wording of a shipped family about each image (its persona has its own system text;
    its image-after wording shares nothing), in the runner's order: one image's side by side."""
    return bench_prefix.family_requests(REPO, images, family, image_after=True)


def texts(outputs: list[Output]) -> list[str | None]:
    return [o.text for o in outputs]


@pytest.fixture
def images(sample_images: list[Path]) -> list[Path]:
    return sample_images[:: len(sample_images) // 3][:3]


@pytest.fixture
def open_backend() -> Iterator[Any]:
    opened: list[HFBackend] = []

    def open_(arch: str, folder: Path, batch_size: int = 16, share: bool = True) -> HFBackend:
        spec = tiny_model_spec(arch, generation={"max_new_tokens": 10})
        context = BackendContext(device="cpu", batch_size=batch_size, checkpoint_dir=folder)
        backend = HFBackend(spec, context)
        backend.share_prefix = share
        opened.append(backend)
        return backend

    yield open_
    for backend in opened:
        backend.close()


@pytest.mark.parametrize("arch", ARCHS)
def test_shared_prefix_answers_are_the_tokens_of_full_prompts(
    request: pytest.FixtureRequest, open_backend: Any, images: list[Path], arch: str
) -> None:
    folder: Path = request.getfixturevalue(f"tiny_{arch}_dir")
    bare = Request(key="no image", messages=Messages(None, "Is a tumour likely? yes or no.", ()))
    requests = [*family_requests(images), bare]
    full = open_backend(arch, folder, share=False)
    expected = texts(full.generate(requests))
    shared = open_backend(arch, folder)
    # batches of 16 cut through an image's wordings: groups of every size meet
    assert texts(shared.generate(requests)) == expected
    assert None not in expected and len(set(expected)) > 3, "the answers should differ"
    assert full.prefill.computed == full.prefill.prompts == shared.prefill.prompts
    assert shared.prefill.shared_batches == 2
    # the tiny models' images are a few tokens: benchmarks/bench_prefix.py measures the saving
    assert shared.prefill.computed < shared.prefill.prompts


def test_shared_prefix_one_by_one_and_uneven_batches_agree(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    requests = family_requests(images[:2])
    alone = texts(open_backend("llava", tiny_llava_dir, batch_size=1).generate(requests))
    assert texts(open_backend("llava", tiny_llava_dir, batch_size=5).generate(requests)) == alone


def test_text_before_the_image_is_generated_in_full_and_said_once(
    tiny_gemma3_dir: Path,
    open_backend: Any,
    images: list[Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    backend = open_backend("gemma3", tiny_gemma3_dir)
    from medbench.data import load_image

    image = load_image(images[0])
    rows = [
        _Row(
            i,
            [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": t}, {"type": "image", "image": image}],
                }
            ],
        )
        for i, t in enumerate(("Is there a tumour?", "Which tumour is it?"))
    ]
    for _ in range(2):
        answers = backend._generate_splitting(rows, backend._encode(rows))
    assert [a.error for a in answers.values()] == [None, None]
    assert backend.prefill.shared_batches == 0
    assert capsys.readouterr().err.count("differ before it (a system text, or text first)") == 1


def test_a_model_without_a_kv_cache_is_generated_in_full(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    requests = family_requests(images[:1])
    expected = texts(open_backend("llava", tiny_llava_dir, share=False).generate(requests))
    backend = open_backend("llava", tiny_llava_dir)
    model = backend._loaded.model

    class NoCache:
        def __getattr__(self, name: str) -> Any:
            return getattr(model, name)

        def __call__(self, **inputs: Any) -> Any:
            out = model(**inputs)
            out.past_key_values = None
            return out

    backend._loaded.model = NoCache()
    assert texts(backend.generate(requests)) == expected
    assert backend.generate(requests) and backend.prefill.shared_batches == 0
    assert capsys.readouterr().err.count("the model returned no KV cache") == 1


def test_a_sliding_window_shorter_than_the_batch_is_generated_in_full(
    tiny_gemma3_dir: Path, open_backend: Any, images: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    requests = family_requests(images[:1])
    backend = open_backend("gemma3", tiny_gemma3_dir)
    config = backend._loaded.model.config.get_text_config()
    window = config.sliding_window
    try:
        config.sliding_window = 40  # the tiny prompts run to about 60 tokens
        assert None not in texts(backend.generate(requests))
    finally:
        config.sliding_window = window
    assert backend.prefill.shared_batches == 0
    assert "pass the model's sliding window of 40 tokens" in capsys.readouterr().err


def test_an_untested_model_family_shares_nothing() -> None:
    model = SimpleNamespace(config=SimpleNamespace(model_type="qwen2_vl"))
    inputs = {"input_ids": torch.ones((2, 3), dtype=torch.long)}
    assert plan_sharing(model, inputs, [1, 1], 8) == (
        "model type 'qwen2_vl' is not one whose shared prefixes are tested"
    )


def test_out_of_memory_halves_a_shared_batch_and_shares_again(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    requests = family_requests(images[:2])  # 16 requests, two images
    expected = texts(open_backend("llava", tiny_llava_dir, share=False).generate(requests))
    backend = open_backend("llava", tiny_llava_dir)
    model = backend._loaded.model
    real_generate = model.generate
    sizes: list[int] = []

    def generate_at_most_eight(**inputs: Any) -> Any:
        sizes.append(int(inputs["input_ids"].shape[0]))
        if sizes[-1] > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        assert inputs["past_key_values"] is not None  # each half still shares its image
        return real_generate(**inputs)

    model.generate = generate_at_most_eight
    outputs = backend.generate(requests)
    assert texts(outputs) == expected
    assert sizes == [16, 8, 8]
    assert {o.batch_size for o in outputs} == {8}


def test_an_automatic_batch_ends_between_two_images() -> None:
    def asking(*shas: str) -> list[Request]:
        images = [(ImageRef(s, s),) if s else () for s in shas]
        return [
            Request(key=str(i), messages=Messages(None, "q", refs)) for i, refs in enumerate(images)
        ]

    requests = asking("a", "a", "a", "b", "b", "b", "", "c")
    assert whole_images(requests, 0, 2) == 2  # "a" alone passes the batch: cut through it
    assert whole_images(requests, 0, 4) == 3  # "b" would be split: the batch ends before it
    assert whole_images(requests, 3, 6) == 6  # no image at 6: nothing to keep together
    assert whole_images(requests, 3, 20) == 8
