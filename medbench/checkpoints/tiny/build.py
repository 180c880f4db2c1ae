"""Build tiny random-weight checkpoints of the real architectures, atomically and reproducibly."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medbench.checkpoints.tiny.tokenizer import (
    CHAT_TEMPLATES,
    GEMMA_SPECIALS,
    llama_tokenizer,
    train_tokenizer,
)
from medbench.checkpoints.tiny.train import train_tiny_model
from medbench.errors import BackendError
from medbench.run import TEST_MODEL_MARKER, TrainingData, step

if TYPE_CHECKING:
    from medbench.spec import TinySpec

Arch = Literal["llava", "llava_next", "gemma3", "text"]

MARKER = TEST_MODEL_MARKER
BUILDER_VERSION = 1
"""Bump when a build changes, so that folders built by an older medbench are rebuilt."""

IMAGE_SIZE = 32


@dataclass(frozen=True)
class Geometry:
    """The image side of a build: the sizes that decide how many tokens an image becomes."""

    image_size: int
    """The CLIP tower's input side: LLaVA's image, each of LLaVA-NeXT's tiles."""
    patch: int
    """The CLIP tower's patch side."""
    gemma_image: int
    """Gemma 3's input side (a squashed square)."""
    gemma_patch: int
    gemma_tokens: int
    """Gemma 3's tokens per image: its patches pooled to a square of this many."""
    positions: int
    """The language model's most positions."""
    gemma_window: int
    """Gemma 3's sliding window (longer than any prompt, as the real model's)."""


TINY = Geometry(IMAGE_SIZE, 8, IMAGE_SIZE, 4, 4, 512, 512)
"""The tests' models: 16 image tokens for LLaVA, 4 for Gemma 3, 32-px tiles for LLaVA-NeXT."""
REAL = Geometry(336, 14, 896, 14, 256, 4096, 1024)
"""The real models' image geometry (tiny weights otherwise): 576 image tokens for LLaVA-1.5,
LLaVA-NeXT's 336-px tiles, 256 for Gemma 3 at 896 px, so that prompts are as long as theirs."""
_TEXT_SIZES: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
_VISION_SIZES: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": IMAGE_SIZE,
}


def marker(arch: Arch, seed: int) -> dict[str, Any]:
    """What `medbench_tiny.json` holds for a build: a changed value means a rebuild."""
    return {
        "arch": arch,
        "builder_version": BUILDER_VERSION,
        "note": "random weights",
        "schema_version": 1,
        "seed": seed,
        "test_model": True,
    }


def trained_marker(spec: TinySpec, training: TrainingData) -> dict[str, Any]:
    """What `medbench_tiny.json` holds for a trained model, less its training log."""
    return {
        "arch": spec.arch,
        "builder_version": BUILDER_VERSION,
        "note": "demonstration weights: fine-tuned on the bundled sample images",
        "schema_version": 1,
        "seed": spec.seed,
        "test_model": True,
        "tiny": spec.model_dump(mode="json"),
        "training": training.payload(),
    }


LOG_KEY = "log"
"""The marker's training log (steps, loss curve): written down, not compared."""


def build_on_first_use(
    model_id: str, spec: TinySpec, folder: Path, training: TrainingData | None
) -> None:
    """Build the tiny model `model_id` into `folder` unless it is there (saying so when it is
    not): what the run stage calls, by name, before loading a tiny model."""
    if not (folder / MARKER).is_file():
        what = "fine-tuning it on the sample" if spec.train else "random weights"
        print(f"Building tiny model {model_id} ({what}), once.", file=sys.stderr)
        with step(f"tiny model {model_id}"):
            ensure_tiny_model(spec, folder, training=training)
        return
    ensure_tiny_model(spec, folder, training=training)


def ensure_tiny_model(
    spec: TinySpec, out_dir: Path, *, training: TrainingData | None = None
) -> Path:
    """Build the tiny model `spec` names into `out_dir` unless the folder already holds it.

    A trained model (`spec.train`) needs its `training` data, which the model's identity
    carries; with `init_from`, the model it starts from is ensured first, in its own folder.
    """
    if spec.train and training is None:
        raise BackendError(
            "a trained tiny model needs its training data: resolve the model's identity with "
            "the spec set and pass `training=identity.training`"
        )
    if not spec.train and training is not None:
        raise BackendError("a random-weight tiny model (`train: false`) takes no training data")
    expected = marker(spec.arch, spec.seed) if training is None else trained_marker(spec, training)
    if _holds(out_dir, expected):
        return out_dir
    if training is not None and training.start is not None:
        start = training.start
        ensure_tiny_model(start.spec, start.folder, training=start.training)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        if training is None:
            build_tiny_model(spec.arch, staging, seed=spec.seed)
        else:
            _train(spec, training, staging, expected)
        _replace_dir(staging, out_dir, expected)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _train(spec: TinySpec, training: TrainingData, staging: Path, expected: dict[str, Any]) -> None:
    """Fine-tune from the start model (or a fresh random one) into `staging`, then mark it."""
    from huggingface_hub.utils.tqdm import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    # medbench draws its own progress; transformers' per-save bars would interleave with it.
    # They are turned back on after: disabling them also hides the hub's download bars.
    was_disabled = are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        if training.start is None:
            build_tiny_model(spec.arch, staging, seed=spec.seed)
            start_dir = staging
        else:
            start_dir = training.start.folder
            staging.mkdir(parents=True)
        log = train_tiny_model(start_dir, staging, spec, training.examples)
    finally:
        if not was_disabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
    text = json.dumps({**expected, LOG_KEY: log.summary()}, sort_keys=True, indent=2)
    (staging / MARKER).write_text(text + "\n")


def _read_marker(folder: Path) -> Any:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _holds(folder: Path, expected: dict[str, Any]) -> bool:
    """Whether `folder` holds the build `expected` describes (its training log aside)."""
    found = _read_marker(folder)
    return isinstance(found, dict) and {k: v for k, v in found.items() if k != LOG_KEY} == expected


def _replace_dir(staging: Path, out_dir: Path, expected: dict[str, Any]) -> None:
    """Move a finished build into place; a stale folder is moved aside first, then deleted."""
    if out_dir.exists():
        stale = out_dir.parent / f".{out_dir.name}.stale-{uuid.uuid4().hex[:8]}"
        os.replace(out_dir, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(staging, out_dir)
    except OSError:
        # Another process finished the same build first: keep its folder if it is the one we want.
        if not _holds(out_dir, expected):
            raise


def build_tiny_model(
    arch: Arch, out_dir: Path, *, seed: int = 0, geometry: Geometry = TINY
) -> Path:
    """Write a tiny random-weight checkpoint of `arch` (model and processor) into `out_dir`;
    `geometry=REAL` gives it the real models' image-token counts (its marker says so)."""
    import torch

    builders = {"llava": _llava, "llava_next": _llava_next, "gemma3": _gemma3, "text": _text}
    if arch not in builders:
        raise ValueError(
            f"unknown tiny architecture {arch!r}; expected one of {', '.join(builders)}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model, processor = builders[arch](geometry)
    model.generation_config.do_sample = False
    if geometry != TINY:  # prompts longer than the tiny tokenizers' 512 (no warning per prompt)
        getattr(processor, "tokenizer", processor).model_max_length = geometry.positions
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    written = marker(arch, seed) | ({} if geometry == TINY else {"geometry": "real"})
    (out_dir / MARKER).write_text(json.dumps(written, sort_keys=True, indent=2) + "\n")
    return out_dir


def _text_sizes(geometry: Geometry) -> dict[str, Any]:
    return {**_TEXT_SIZES, "max_position_embeddings": geometry.positions}


def _vision_sizes(image_size: int) -> dict[str, Any]:
    return {**_VISION_SIZES, "image_size": image_size}


def _token_ids(tokenizer: Any) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _clip_processor(side: int) -> Any:
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": side}, crop_size={"height": side, "width": side}
    )


def _llava(geometry: Geometry) -> tuple[Any, Any]:
    """LLaVA-1.5 layout: CLIP vision tower, MLP projector, Llama (Vicuna) language model."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )
    from transformers.models.llava.processing_llava import LlavaProcessor

    template = CHAT_TEMPLATES["vicuna"]
    tokenizer = llama_tokenizer(template)
    side, patch = geometry.image_size, geometry.patch
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**_vision_sizes(side), patch_size=patch, projection_dim=32),
        text_config=LlamaConfig(**_text_sizes(geometry), **_token_ids(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(side // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    model = LlavaForConditionalGeneration(config)
    processor = LlavaProcessor(  # type: ignore[no-untyped-call]
        image_processor=_clip_processor(side),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    return model, processor


def llava_next_pinpoints(geometry: Geometry) -> list[list[int]]:
    """The real model's tile grids (336-px tiles) in tiles of the geometry's side."""
    side = geometry.image_size
    return [[side * h, side * w] for h, w in ((1, 2), (2, 1), (2, 2), (3, 1), (1, 3))]


def _llava_next(geometry: Geometry) -> tuple[Any, Any]:
    """LLaVA-NeXT (1.6) layout: any-resolution tiles over a CLIP tower, Mistral language model."""
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        MistralConfig,
    )
    from transformers.models.llava_next.image_processing_pil_llava_next import (
        LlavaNextImageProcessorPil,
    )
    from transformers.models.llava_next.processing_llava_next import LlavaNextProcessor

    template = CHAT_TEMPLATES["mistral"]
    tokenizer = llama_tokenizer(template)
    # The real model's pinpoints (336 px tiles) scaled down to 32 px tiles.
    side, patch = geometry.image_size, geometry.patch
    pinpoints = llava_next_pinpoints(geometry)
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**_vision_sizes(side), patch_size=patch, projection_dim=32),
        text_config=MistralConfig(
            **_text_sizes(geometry), **_token_ids(tokenizer), sliding_window=None
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    model = LlavaNextForConditionalGeneration(config)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": side},
        crop_size={"height": side, "width": side},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(  # type: ignore[no-untyped-call]
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    return model, processor


def _gemma3(geometry: Geometry) -> tuple[Any, Any]:
    """Gemma 3 layout: SigLIP vision tower, pooled to a few soft tokens, Gemma 3 language model."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil
    from transformers.models.gemma3.processing_gemma3 import Gemma3Processor

    template = CHAT_TEMPLATES["gemma"]
    tokenizer = train_tokenizer(
        GEMMA_SPECIALS,
        template,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
        boi_token="<start_of_image>",
        eoi_token="<end_of_image>",
        image_token="<image_soft_token>",
    )
    ids = _token_ids(tokenizer)
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    # tiny: (32 px / 4 px patches) = 8 patches a side, pooled 4x4 into 2x2 tokens
    side, tokens_per_image = geometry.gemma_image, geometry.gemma_tokens
    text_config = Gemma3TextConfig(
        **{**_text_sizes(geometry), "num_attention_heads": 2, "num_key_value_heads": 1},
        **{**ids, "eos_token_id": [ids["eos_token_id"], end_of_turn]},
        head_dim=16,
        query_pre_attn_scalar=16,
        # Like the real model's 1024, the window is longer than any prompt: a window shorter than a
        # left-padded prompt would see fewer real tokens in a batch than alone.
        sliding_window=geometry.gemma_window,
    )
    config = Gemma3Config(
        vision_config=SiglipVisionConfig(**_vision_sizes(side), patch_size=geometry.gemma_patch),
        text_config=text_config,
        mm_tokens_per_image=tokens_per_image,
        boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
    )
    model = Gemma3ForConditionalGeneration(config)
    # Gemma 3 starts its image projection at zero, which would make a random model blind.
    torch.nn.init.normal_(
        model.model.multi_modal_projector.mm_input_projection_weight,
        std=config.initializer_range or 0.02,
    )
    model.generation_config.eos_token_id = [ids["eos_token_id"], end_of_turn]
    image_processor = Gemma3ImageProcessorPil(size={"height": side, "width": side})
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=template,
        image_seq_length=tokens_per_image,
    )
    return model, processor


def _text(geometry: Geometry) -> tuple[Any, Any]:
    """A text-only Llama chat model (a diagnoser in the describe pipeline)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = llama_tokenizer(CHAT_TEMPLATES["vicuna"])
    config = LlamaConfig(**_text_sizes(geometry), **_token_ids(tokenizer))
    model = LlamaForCausalLM(config)  # type: ignore[no-untyped-call,unused-ignore]
    return model, tokenizer
