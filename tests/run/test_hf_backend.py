"""Tests of the transformers backend on tiny random-weight models and real sample images."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from medbench.data.images import load_image, sha256_file
from medbench.errors import BackendError
from medbench.run.backends import load_backend
from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.backends.hf import HFBackend
from medbench.spec.model import ModelSpec
from medbench.spec.prompts import ImageRef, Messages
from tests.spec_tree import tiny_model_spec

QUESTION = "Does this image show a tumour? Answer with one of: glioma, meningioma, no tumor."
PROMPTS = (QUESTION, "Is this normal or pneumonia? Answer yes or no.")
SYSTEM = "You are an expert radiologist."
# A Mistral v0.1 style template: it refuses a system turn, so the backend must fold it.
NO_SYSTEM_TEMPLATE = (
    "{{- bos_token -}}{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant') -}}"
    "{%- elif message['role'] == 'user' -%}{{- '[INST] ' -}}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>\n' -}}"
    "{%- else -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{{- ' [/INST]' -}}{%- endif -%}{%- endfor -%}"
)


def model_spec(arch: str, **fields: Any) -> ModelSpec:
    extra = {"text_only": arch == "text", "generation": {"max_new_tokens": 8}}
    return tiny_model_spec(arch, **{**extra, **fields})


def make_request(text: str, images: tuple[Path, ...] = (), system: str | None = None) -> Request:
    refs = tuple(ImageRef(str(path), sha256_file(path) if path.exists() else "") for path in images)
    return Request(key=f"{system}|{text}|{images}", messages=Messages(system, text, refs))


def texts(outputs: list[Output]) -> list[str | None]:
    return [output.text for output in outputs]


@pytest.fixture
def open_backend() -> Iterator[Any]:
    """Open HFBackends from a folder; each is closed after the test."""
    opened: list[HFBackend] = []

    def open_(arch: str, folder: Path, batch_size: int = 8, **fields: Any) -> HFBackend:
        context = BackendContext(device="cpu", batch_size=batch_size, checkpoint_dir=folder)
        backend = HFBackend(model_spec(arch, **fields), context)
        opened.append(backend)
        return backend

    yield open_
    for backend in opened:
        backend.close()


@pytest.fixture
def images(sample_images: list[Path]) -> list[Path]:
    """Eight sample images spread over the four tasks."""
    step = len(sample_images) // 8
    return sample_images[::step][:8]


@pytest.mark.parametrize("arch", ["llava", "llava_next", "gemma3"])
def test_hf_backend_answers_requests_about_sample_images(
    request: pytest.FixtureRequest, open_backend: Any, images: list[Path], arch: str
) -> None:
    folder: Path = request.getfixturevalue(f"tiny_{arch}_dir")
    backend = open_backend(arch, folder)
    outputs = backend.generate([request_for(images[i], i) for i in (0, 2, 4, 6)])
    assert [output.error for output in outputs] == [None] * 4
    assert all(isinstance(output.text, str) for output in outputs)
    assert all(output.seconds > 0 for output in outputs)


def request_for(path: Path, index: int) -> Request:
    return make_request(PROMPTS[index % 2], (path,), SYSTEM if index % 3 == 0 else None)


def test_hf_backend_text_only_model_answers_and_refuses_images(
    tiny_text_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("text", tiny_text_dir)
    requests = [
        make_request(f"The report says {word}. Diagnosis?")
        for word in ("mass", "clear", "effusion")
    ]
    outputs = backend.generate([*requests, make_request(QUESTION, (images[0],))])
    assert all(isinstance(output.text, str) for output in outputs[:3])
    assert outputs[3] == Output(
        text=None, error="model tiny-text is text-only and cannot read images"
    )
    assert backend.generate(requests[:1] * 3)[2].text == outputs[0].text


@pytest.mark.parametrize(
    "arch", ["llava", "gemma3", pytest.param("llava_next", marks=pytest.mark.slow)]
)
def test_hf_backend_outputs_do_not_depend_on_batch_size(
    request: pytest.FixtureRequest, open_backend: Any, images: list[Path], arch: str
) -> None:
    folder: Path = request.getfixturevalue(f"tiny_{arch}_dir")
    requests = [request_for(path, i) for path in images for i in range(2)]
    one_by_one = texts(open_backend(arch, folder, batch_size=1).generate(requests))
    batched = texts(open_backend(arch, folder, batch_size=8).generate(requests))
    uneven = texts(open_backend(arch, folder, batch_size=5).generate(requests))
    assert None not in one_by_one
    assert batched == one_by_one
    assert uneven == one_by_one
    assert len(set(one_by_one)) > 2, "the tiny model should answer different images differently"


@pytest.mark.parametrize("arch", ["llava", "llava_next", "gemma3"])
def test_hf_backend_request_without_image_renders_no_image_token_and_answers(
    request: pytest.FixtureRequest, open_backend: Any, images: list[Path], arch: str
) -> None:
    folder: Path = request.getfixturevalue(f"tiny_{arch}_dir")
    backend = open_backend(arch, folder, batch_size=8)
    processor = backend._loaded.processor
    tokens = {processor.image_token, getattr(processor, "boi_token", processor.image_token)}
    bare, seen = make_request(QUESTION), make_request(QUESTION, (images[0],))
    assert not any(token in backend.prompt(bare.messages) for token in tokens)
    assert any(token in backend.prompt(seen.messages) for token in tokens)
    assert QUESTION in backend.prompt(bare.messages)
    # the no-image ablation meets image requests in one batch: same answers as alone
    mixed = [bare, seen, make_request(PROMPTS[1]), make_request(PROMPTS[1], (images[1],))]
    together = backend.generate(mixed)
    assert [o.error for o in together] == [None] * 4
    alone = [backend.generate([r])[0].text for r in mixed]
    assert texts(together) == alone
    assert together[0].image_processor is None
    assert together[1].image_processor is not None


def test_hf_backend_corrupt_image_fails_only_its_request(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    data = images[1].read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    missing = tmp_path / "missing.jpg"
    backend = open_backend("llava", tiny_llava_dir)
    good = [request_for(images[i], i) for i in range(4)]
    mixed = [
        good[0],
        make_request(QUESTION, (corrupt,)),
        good[1],
        make_request(QUESTION, (missing,)),
        *good[2:],
    ]
    outputs = backend.generate(mixed)
    assert outputs[1] == Output(text=None, error=f"image {corrupt}: truncated")
    assert outputs[3] == Output(text=None, error=f"image {missing}: no such file")
    clean = texts(backend.generate(good))
    assert texts([outputs[0], outputs[2], outputs[4], outputs[5]]) == clean


def test_hf_backend_system_turn_where_the_template_has_one(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("llava", tiny_llava_dir)
    assert backend.system_role
    messages = Messages(SYSTEM, "Is it normal?", (ImageRef(str(images[0]), "x"),))
    assert backend.prompt(messages) == f"<s>{SYSTEM}\n\nUSER: <image>\nIs it normal? ASSISTANT:"


def test_hf_backend_gemma3_template_folds_the_system_turn(
    tiny_gemma3_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("gemma3", tiny_gemma3_dir)
    assert backend.system_role
    messages = Messages(SYSTEM, "Is it normal?", (ImageRef(str(images[0]), "x"),))
    assert backend.prompt(messages) == (
        f"<bos><start_of_turn>user\n{SYSTEM}\n\n<start_of_image>Is it normal?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    with_system = backend.generate([make_request("Is it normal?", (images[0],), SYSTEM)])
    assert isinstance(with_system[0].text, str)


def test_hf_backend_template_that_refuses_a_system_turn_is_an_error(
    tiny_llava_dir: Path, open_backend: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "no-system"
    shutil.copytree(tiny_llava_dir, folder)
    (folder / "chat_template.jinja").write_text(NO_SYSTEM_TEMPLATE)
    with pytest.raises(BackendError) as info:
        open_backend("llava", folder)
    assert str(info.value) == (
        "model tiny-llava: its chat template refuses or drops a system turn, but the spec says "
        "`system_prompt: template`. Set `system_prompt: fold_into_user` (the system text goes "
        "at the start of the user turn) or `none` (it is dropped)."
    )


def test_hf_backend_fold_into_user_folds_the_system_prompt(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "no-system"
    shutil.copytree(tiny_llava_dir, folder)
    (folder / "chat_template.jinja").write_text(NO_SYSTEM_TEMPLATE)
    backend = open_backend("llava", folder, system_prompt="fold_into_user")
    assert not backend.system_role
    messages = Messages(SYSTEM, "Is it normal?", (ImageRef(str(images[0]), "x"),))
    assert backend.prompt(messages) == f"<s>[INST] <image>\n{SYSTEM}\n\nIs it normal? [/INST]"
    folded, inline = backend.generate(
        [
            make_request("Is it normal?", (images[0],), SYSTEM),
            make_request(f"{SYSTEM}\n\nIs it normal?", (images[0],)),
        ]
    )
    assert folded.error is None
    assert folded.text == inline.text


def test_hf_backend_fold_into_user_ignores_the_templates_system_turn(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("llava", tiny_llava_dir, system_prompt="fold_into_user")
    messages = Messages(SYSTEM, "Is it normal?", (ImageRef(str(images[0]), "x"),))
    assert backend.prompt(messages) == f"<s>USER: <image>\n{SYSTEM}\n\nIs it normal? ASSISTANT:"


def test_hf_backend_system_prompt_none_drops_it(
    tiny_gemma3_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("gemma3", tiny_gemma3_dir, system_prompt="none")
    messages = Messages(SYSTEM, "Is it normal?", (ImageRef(str(images[0]), "x"),))
    assert backend.prompt(messages) == (
        "<bos><start_of_turn>user\n<start_of_image>Is it normal?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    dropped, plain = backend.generate(
        [
            make_request("Is it normal?", (images[0],), SYSTEM),
            make_request("Is it normal?", (images[0],)),
        ]
    )
    assert dropped == plain


@pytest.mark.parametrize(
    ("setting", "size"),
    [("processor", (40, 20)), ("pad_square", (40, 40)), ("pad_square_grey", (40, 40))],
)
def test_hf_backend_image_preprocess_decides_what_the_processor_gets(
    tiny_llava_dir: Path, open_backend: Any, tmp_path: Path, setting: str, size: tuple[int, int]
) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 20), (255, 0, 0)).save(path)
    backend = open_backend("llava", tiny_llava_dir, image_preprocess=setting)
    seen: list[Any] = []
    encode = backend._encode

    def spy(rows: Any) -> Any:
        seen.extend(
            part["image"]
            for row in rows
            for part in row.conversation[-1]["content"]
            if part["type"] == "image"
        )
        return encode(rows)

    backend._encode = spy
    (output,) = backend.generate([make_request("Is it normal?", (path,))])
    assert output.error is None
    assert [image.size for image in seen] == [size]
    if setting != "processor":
        # LLaVA's expand2square: centred, on the CLIP mean colour truncated to 8 bits
        assert seen[0].getpixel((0, 0)) == (122, 116, 104)
        assert seen[0].getpixel((20, 20)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("setting", "fill"), [("pad_square", (122, 116, 104)), ("pad_square_grey", (114, 114, 114))]
)
def test_hf_backend_pad_square_grey_pads_a_greyscale_file_with_grey(
    tiny_llava_dir: Path, open_backend: Any, tmp_path: Path, setting: str, fill: tuple[int, ...]
) -> None:
    path = tmp_path / "xray.png"
    Image.new("L", (20, 40), 200).save(path)
    backend = open_backend("llava", tiny_llava_dir, image_preprocess=setting)
    [padded] = backend._padded(make_request("x", (path,)).messages, [load_image(path)])
    # LLaVA-Med pads the `L` image with int(255 * mean(CLIP's image_mean)) = 114, then makes RGB
    assert (padded.size, padded.getpixel((0, 0)), padded.getpixel((10, 20))) == (
        (40, 40),
        fill,
        (200, 200, 200),
    )


def test_hf_backend_halves_the_batch_on_out_of_memory(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("llava", tiny_llava_dir)
    requests = [request_for(path, i) for i, path in enumerate(images)]
    expected = texts(backend.generate(requests))
    model = backend._loaded.model
    real_generate = model.generate
    sizes: list[int] = []

    def generate_at_most_two(**inputs: Any) -> Any:
        sizes.append(int(inputs["input_ids"].shape[0]))
        if sizes[-1] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_generate(**inputs)

    model.generate = generate_at_most_two
    outputs = backend.generate(requests)
    assert texts(outputs) == expected
    assert sizes == [8, 4, 2, 2, 4, 2, 2]
    assert {(o.batch_size, o.precision) for o in outputs} == {(2, "float32")}


def test_hf_backend_stream_answers_the_batches_it_is_given(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("llava", tiny_llava_dir)
    requests = [request_for(path, i) for i, path in enumerate(images)]
    expected = texts(backend.generate(requests))
    streamed = list(backend.stream(requests, [3, 1, 4]))
    assert [indices for indices, _ in streamed] == [[0, 1, 2], [3], [4, 5, 6, 7]]
    assert [[o.batch_size for o in outputs] for _, outputs in streamed] == [[3] * 3, [1], [4] * 4]
    assert [o.text for _, outputs in streamed for o in outputs] == expected


def test_hf_backend_records_out_of_memory_at_batch_size_one(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("llava", tiny_llava_dir, batch_size=2)

    def always_out_of_memory(**inputs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    backend._loaded.model.generate = always_out_of_memory
    outputs = backend.generate([request_for(path, i) for i, path in enumerate(images[:3])])
    error = "out of memory at batch size 1: CUDA out of memory (simulated)"
    assert [(output.text, output.error) for output in outputs] == [(None, error)] * 3


class FakeGPU:
    """Device memory that stays allocated while anything refers to it, as CUDA tensors do: a
    failed call's activations live on in its frames for as long as its traceback does."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.live = 0

    def allocate(self, units: int) -> Any:
        gpu = self

        class Block:
            def __init__(self) -> None:
                gpu.live += units

            def __del__(self) -> None:
                gpu.live -= units

        return Block()


def on_fake_gpu(backend: HFBackend, capacity: int) -> tuple[FakeGPU, list[int]]:
    """Make the backend's model allocate one unit per row and run out of memory past
    `capacity` units; returns the fake GPU and the batch sizes that reached the model."""
    gpu, sizes = FakeGPU(capacity), []
    model = backend._loaded.model
    real_generate = model.generate

    def generate(**inputs: Any) -> Any:
        sizes.append(int(inputs["input_ids"].shape[0]))
        activations = gpu.allocate(sizes[-1])  # held by this frame until it returns
        if gpu.live > gpu.capacity:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        del activations
        return real_generate(**inputs)

    model.generate = generate
    return gpu, sizes


def test_hf_backend_retries_halves_after_the_failed_batch_memory_is_released(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("llava", tiny_llava_dir, batch_size=4)
    requests = [request_for(path, i) for i, path in enumerate(images[:4])]
    expected = texts(backend.generate(requests))
    gpu, sizes = on_fake_gpu(backend, capacity=2)
    outputs = backend.generate(requests)
    assert [o.error for o in outputs] == [None] * 4
    assert texts(outputs) == expected
    assert sizes == [4, 2, 2]
    assert gpu.live == 0


def auto_backend(folder: Path, state: Path) -> HFBackend:
    context = BackendContext(device="cpu", checkpoint_dir=folder, state_dir=state)
    return HFBackend(model_spec("llava"), context)


def test_hf_backend_auto_batch_grows_from_one_halves_on_oom_and_is_remembered(
    tiny_llava_dir: Path,
    open_backend: Any,
    images: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    requests = [request_for(images[i % len(images)], i) for i in range(16)]
    expected = texts(open_backend("llava", tiny_llava_dir, batch_size=1).generate(requests))
    backend = auto_backend(tiny_llava_dir, tmp_path)
    try:
        _, sizes = on_fake_gpu(backend, capacity=3)
        assert texts(backend.generate(requests)) == expected
        # Two batches are prepared ahead, so each size is cut before the last one finished.
        assert sizes == [1, 1, 1, 2, 2, 2, 4, 2, 2, 3]
        assert (backend.batch_size, backend.sizer.out_of_memory_at) == (2, 4)
    finally:
        backend.close()
    memory = tmp_path / "batch_sizes.json"
    spec_hash = hashlib.sha256(model_spec("llava").model_dump_json().encode()).hexdigest()
    key = f"tiny-llava@{spec_hash[:12]}"
    assert json.loads(memory.read_text()) == {
        "schema_version": 1,
        "sizes": [{"model": key, "device": "cpu float32", "batch_size": 2}],
    }
    assert capsys.readouterr().err == (
        f"tiny-llava on cpu float32: auto batch size 2 (out of memory at 4, remembered in "
        f"{memory})\n"
    )
    again = auto_backend(tiny_llava_dir, tmp_path)
    try:
        _, sizes = on_fake_gpu(again, capacity=3)
        assert texts(again.generate(requests[:6])) == expected[:6]
        assert sizes == [2, 2, 2]
    finally:
        again.close()
    assert capsys.readouterr().err == (
        f"tiny-llava on cpu float32: auto batch size 2 (remembered in {memory})\n"
    )


def test_hf_backend_refuses_original_llava_checkpoints() -> None:
    spec = model_spec(
        "llava",
        tiny=None,
        test_model=False,
        id="llava-med",
        repo="microsoft/llava-med-v1.5-mistral-7b",
        checkpoint_format="llava_original",
    )
    message = (
        "model llava-med: `checkpoint_format: llava_original` is the original LLaVA code's "
        "layout, which transformers cannot load. Convert it first with `medbench convert "
        "llava-med SRC DST`, then point `path:` at DST (with `checkpoint_format: hf`)."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        HFBackend(spec, BackendContext(device="cpu"))


def test_hf_backend_refuses_a_llava_mistral_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_mistral"}))
    spec = model_spec("llava", tiny=None, path="llava-med")
    message = (
        f"model tiny-llava: {tmp_path} holds a `llava_mistral` checkpoint (the original LLaVA-Med "
        "code's layout), which transformers cannot load. Convert it first with `medbench convert "
        "llava-med SRC DST`, then point `path:` at DST (with `checkpoint_format: hf`)."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        HFBackend(spec, BackendContext(device="cpu", checkpoint_dir=tmp_path))


def test_hf_backend_needs_a_checkpoint_folder_for_tiny_models() -> None:
    message = (
        "model tiny-llava: a `path:` or `tiny:` model needs its checkpoint folder resolved before "
        "loading, but BackendContext.checkpoint_dir is not set"
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        HFBackend(model_spec("llava"), BackendContext(device="cpu"))


def test_hf_backend_reports_an_unloadable_folder(tmp_path: Path) -> None:
    with pytest.raises(
        BackendError, match=rf"^model tiny-llava: cannot load {re.escape(str(tmp_path))}: "
    ):
        HFBackend(model_spec("llava"), BackendContext(device="cpu", checkpoint_dir=tmp_path))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_hf_backend_cuda_without_cuda_is_an_error(tiny_llava_dir: Path) -> None:
    message = "device 'cuda' was asked for, but CUDA is not available here"
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        HFBackend(model_spec("llava"), BackendContext(device="cuda", checkpoint_dir=tiny_llava_dir))


def test_hf_backend_loads_through_the_registry_and_closes(
    tiny_gemma3_dir: Path, images: list[Path]
) -> None:
    context = BackendContext(device="cpu", checkpoint_dir=tiny_gemma3_dir)
    backend = load_backend(model_spec("gemma3"), context)
    assert isinstance(backend, HFBackend)
    assert backend.batch_size == 1  # auto: grows from 1 while batches fit
    backend.close()
    backend.close()
    with pytest.raises(RuntimeError, match=r"^HFBackend.generate called after close\(\)$"):
        backend.generate([make_request(QUESTION, (images[0],))])


def test_hf_backend_load_keeps_hub_download_progress_bars_on(
    tiny_llava_dir: Path, open_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.utils

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    huggingface_hub.utils.enable_progress_bars()
    open_backend("llava", tiny_llava_dir)
    # a first download of a real model takes minutes: its bars must show
    assert not huggingface_hub.utils.are_progress_bars_disabled()


def test_hf_backend_records_the_image_processor_of_answers_with_images(
    tiny_gemma3_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("gemma3", tiny_gemma3_dir)
    with_image, text_only = backend.generate(
        [make_request(QUESTION, (images[0],)), make_request(QUESTION)]
    )
    assert with_image.image_processor == "pil:Gemma3ImageProcessorPil"
    assert text_only.image_processor is None


def test_image_processor_name_tells_torchvision_from_pil() -> None:
    from types import SimpleNamespace

    from medbench.run.backends.hf.chat import image_processor_name

    class TorchvisionBackend:  # named like transformers' base: the check reads the class tree
        pass

    class CLIPImageProcessor(TorchvisionBackend):
        pass

    assert image_processor_name(SimpleNamespace(image_processor=CLIPImageProcessor())) == (
        "torchvision:CLIPImageProcessor"
    )
    assert image_processor_name(SimpleNamespace()) is None


def test_hf_backend_cuts_each_row_at_its_own_budget_and_records_why_it_ended(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    requests = [request_for(path, i) for i, path in enumerate(images[:4])]
    short = texts(
        open_backend("llava", tiny_llava_dir, generation={"max_new_tokens": 3}).generate(requests)
    )
    full = open_backend("llava", tiny_llava_dir).generate(requests)  # the model's 8
    budgets = [3, None, 3, None]
    mixed = open_backend("llava", tiny_llava_dir).generate(
        [replace(r, max_new_tokens=b) for r, b in zip(requests, budgets, strict=True)]
    )
    assert texts(mixed) == [short[0], full[1].text, short[2], full[3].text]
    # random weights never end an answer themselves: every answer ran out of tokens
    assert {o.finish_reason for o in [*mixed, *full]} == {"length"}


def test_cut_rows_stops_at_the_end_token_within_the_budget() -> None:
    from medbench.run.backends.hf.finish import cut_rows

    rows, reasons = cut_rows([[5, 2, 0, 0], [5, 6, 7, 2], [5, 6, 0, 0]], [4, 3, 4], {2})
    assert rows == [[5, 2], [5, 6, 7], [5, 6, 0, 0]]
    assert reasons == ["stop", "length", "length"]


def test_hf_backend_cuts_each_request_at_its_own_budget(
    open_backend: Any, tiny_llava_dir: Path, images: list[Path]
) -> None:
    from dataclasses import replace

    backend = open_backend("llava", tiny_llava_dir, generation={"max_new_tokens": 8})
    plain = make_request(QUESTION, (images[0],))
    cut = replace(plain, key="cut", max_new_tokens=3)
    full, short = texts(backend.generate([plain, cut]))
    assert full is not None and short is not None
    assert full.startswith(short) and len(short) < len(full)
    assert texts(backend.generate([cut])) == [short]  # alone or beside a longer budget


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        # llava-hf's LLaVA-1.5 and LLaVA-NeXT templates write every image part first: the image
        # goes into the text as its token after a line break, as LLaVA's own code writes it
        ("llava", "<s>USER: Is it normal?\n<image> ASSISTANT:"),
        ("llava_next", "<s>[INST] Is it normal?\n<image> [/INST]"),
        # Gemma 3's template follows the order of the content parts
        (
            "gemma3",
            "<bos><start_of_turn>user\nIs it normal?<start_of_image><end_of_turn>\n"
            "<start_of_turn>model\n",
        ),
    ],
)
def test_hf_backend_image_after_text_renders_the_image_after_the_text(
    arch: str, expected: str, tiny_models_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    from tests.conftest import _tiny

    backend = open_backend(arch, _tiny(tiny_models_dir, arch))
    messages = Messages(None, "Is it normal?", (ImageRef(str(images[0]), "x"),), "after_text")
    assert backend.prompt(messages) == expected


def test_hf_backend_template_following_the_content_order_gets_image_parts_after_the_text(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "in-order"
    shutil.copytree(tiny_llava_dir, folder)
    (folder / "chat_template.jinja").write_text(NO_SYSTEM_TEMPLATE)
    backend = open_backend("llava", folder, system_prompt="fold_into_user")
    messages = Messages(None, "Is it normal?", (ImageRef(str(images[0]), "x"),), "after_text")
    assert backend.prompt(messages) == "<s>[INST] Is it normal?<image>\n [/INST]"


@pytest.mark.parametrize("arch", ["llava", "gemma3"])
def test_hf_backend_image_after_text_encodes_the_image_tokens_after_the_text(
    arch: str, tiny_models_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    from tests.conftest import _tiny

    backend = open_backend(arch, _tiny(tiny_models_dir, arch))
    ref = (ImageRef(str(images[0]), sha256_file(images[0])),)
    tokenizer = backend._loaded.tokenizer
    image_id = tokenizer.convert_tokens_to_ids(backend._loaded.processor.image_token)
    question = tokenizer("Is it normal?", add_special_tokens=False).input_ids
    first = {}
    for position in ("before_text", "after_text"):
        messages = Messages(None, "Is it normal?", ref, position)  # type: ignore[arg-type]
        row = backend._row(0, messages, backend._padded(messages, [load_image(images[0])]))
        first[position] = backend._encode([row])["input_ids"][0].tolist().index(image_id)
    # the question's tokens moved before the image's (give or take a merged space)
    assert first["after_text"] - first["before_text"] >= len(question) - 1 > 1


def test_hf_backend_image_after_text_answers_alike_in_any_batch(
    tiny_llava_dir: Path, open_backend: Any, images: list[Path]
) -> None:
    backend = open_backend("llava", tiny_llava_dir)
    refs = [(ImageRef(str(path), sha256_file(path)),) for path in images[:3]]
    requests = [
        Request("a", Messages(None, QUESTION, refs[0], "after_text")),
        Request("b", Messages(None, QUESTION, refs[1])),
        Request("c", Messages(None, QUESTION, refs[2], "after_text")),
    ]
    together = backend.generate(requests)
    alone = [backend.generate([request])[0] for request in requests]
    assert [o.error for o in together] == [None, None, None]
    assert texts(together) == texts(alone)
