"""Convert an original LLaVA-Med checkpoint (`llava_mistral`) to transformers' Llava layout.

Everything is checked before anything is written (config fields, every weight key and shape, the
prompt's tokens); the weights are then streamed file by file into a staging folder next to DST,
which replaces DST only when complete.

The `<image>` token is new: it gets the next id, and `embed_tokens` and `lm_head` get one row more
each, the mean of their rows. The embedding row is never used (image features replace it). The
lm_head row gives the token the mean of the other logits, below the largest one, so greedy
decoding never picks it; `suppress_tokens` keeps sampling off it too. Over the original
vocabulary the logits are the original model's.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.checkpoints.convert.errors import ConversionError
from medbench.checkpoints.convert.plan import RESIZED, Plan, make_plan
from medbench.checkpoints.convert.processor import (
    IMAGE_TOKEN,
    build_processor,
    check_prompt_tokens,
    image_processor,
    load_tokenizers,
    match_original_spacing,
    tower_config,
)
from medbench.checkpoints.convert.source import TEXT_FIELDS, Source, read_source
from medbench.checkpoints.convert.weights import WeightFile, open_weights, save_shard, sha256_file

if TYPE_CHECKING:
    import torch

CONVERTER_VERSION = 1
"""Bump when the converted output changes for the same source."""
MARKER = "medbench_conversion.json"
INDEX = "model.safetensors.index.json"
_TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Conversion:
    """A finished conversion: where it is and what `medbench_conversion.json` records."""

    dst: Path
    record: dict[str, Any]


def convert_llava_med(
    src: Path,
    dst: Path,
    *,
    vision_tower: Path | None = None,
    revision: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Conversion:
    """Convert SRC (original LLaVA-Med) into DST (transformers Llava, with its processor)."""
    say = progress or (lambda _: None)
    _check_destination(src, dst, overwrite)
    source = read_source(src, vision_tower=vision_tower, revision=revision)
    vision = tower_config(source.tower.folder)
    mm_hidden = source.config.get("mm_hidden_size", vision.hidden_size)
    if mm_hidden != vision.hidden_size:
        raise ConversionError(
            f"{source.config_path}: mm_hidden_size is {mm_hidden}, but the vision tower "
            f"{source.tower.folder} has hidden_size {vision.hidden_size}"
        )
    original_tokenizer, tokenizer = load_tokenizers(src)
    respaced = match_original_spacing(tokenizer)
    images = image_processor(source.tower.folder, vision.image_size)
    processor = build_processor(
        tokenizer, images, patch_size=vision.patch_size, strategy=source.strategy
    )
    check_prompt_tokens(original_tokenizer, processor)
    image_index = int(processor.image_token_id)
    old_vocab = int(source.config["vocab_size"])
    config = llava_config(source, vision, image_index, max(old_vocab, image_index + 1))
    say(f"checking {len(source.shards)} source shards and the vision tower {source.tower.folder}")
    plan = make_plan(source.shards, source.tower.weights, expected_shapes(config), old_vocab)

    staging = dst.parent / f".{dst.name}.converting-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        config.save_pretrained(staging)
        _generation_config(tokenizer, image_index).save_pretrained(staging)
        processor.save_pretrained(staging)
        check_prompt_tokens(original_tokenizer, _reload_processor(staging))
        weights = _write_weights(plan, staging, say, config.text_config.vocab_size)
        record = _record(source, plan, weights, image_index, respaced=respaced)
        text = json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        (staging / MARKER).write_text(text, encoding="utf-8")
        _replace(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    embedded = record["embedded_vision_tower"]
    if embedded and not embedded["identical"]:
        say(
            f"note: the copy of the vision tower inside {src} differs from {source.tower.folder} "
            f"(largest difference {embedded['max_abs_diff']:.3g}); like the original code, the "
            "converted model uses the latter"
        )
    say(f"wrote {dst}")
    return Conversion(dst=dst, record=record)


def _reload_processor(folder: Path) -> Any:
    """The processor as a user will load it: what was saved, not what is in memory."""
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(folder, local_files_only=True)  # type: ignore[no-untyped-call]


def _check_destination(src: Path, dst: Path, overwrite: bool) -> None:
    if dst.resolve() == src.resolve():
        raise ConversionError(f"{dst}: DST must differ from SRC")
    if dst.exists() and not dst.is_dir():
        raise ConversionError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise ConversionError(f"{dst}: already exists; pass --overwrite to replace it")


def llava_config(source: Source, vision: Any, image_index: int, vocab_size: int) -> Any:
    """The LlavaConfig of the converted model: Mistral from SRC's fields, the tower's CLIP."""
    from transformers import LlavaConfig, MistralConfig

    text_fields = {k: source.config[k] for k in TEXT_FIELDS if k in source.config}
    text = MistralConfig(**{**text_fields, "vocab_size": vocab_size}, tie_word_embeddings=False)
    dtype = source.config.get("torch_dtype")
    if isinstance(dtype, str):
        text.dtype = dtype
    patches = (vision.image_size // vision.patch_size) ** 2
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_index,
        image_seq_length=patches + (1 if source.strategy == "full" else 0),
        vision_feature_layer=source.config["mm_vision_select_layer"],
        vision_feature_select_strategy=source.strategy,
        projector_hidden_act="gelu",  # nn.GELU() in the original mlp2x_gelu projector
        multimodal_projector_bias=True,
        tie_word_embeddings=False,
    )
    config.architectures = ["LlavaForConditionalGeneration"]
    if isinstance(dtype, str):
        config.dtype = dtype
    return config


def expected_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor the converted model loads, with its shape (built on the meta device: free)."""
    import torch
    from transformers import LlavaForConditionalGeneration

    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _generation_config(tokenizer: Any, image_index: int) -> Any:
    from transformers import GenerationConfig

    return GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,  # </s>: LLaVA-Med's answers end there
        pad_token_id=tokenizer.pad_token_id,
        suppress_tokens=[image_index],
    )


@dataclass
class _Written:
    shards: list[str]
    weight_map: dict[str, str]
    total_bytes: int
    hashes: dict[Path, str]
    embedded: dict[str, Any] | None


def _write_weights(plan: Plan, out: Path, say: Progress, vocab_size: int) -> _Written:
    """Stream the weights: one input file open at a time, one output shard per input file."""
    written = plan.written
    names = [f"model-{i:05d}-of-{len(written):05d}.safetensors" for i in range(1, len(written) + 1)]
    result = _Written([], {}, 0, {}, None)
    diffs: list[float] = []
    with ExitStack() as towers:
        # The tower files stay open (lazily, memory-mapped) to compare the source's embedded copy.
        opened: dict[Path, WeightFile] = {}
        for path in {p for p, _ in plan.tower_keys.values()}:
            opened[path] = towers.enter_context(open_weights(path))
        for file in plan.files:
            result.hashes[file.path] = sha256_file(file.path)
            with open_weights(file.path) as weights:
                tensors = {
                    target: _converted(weights.tensor(key), target, vocab_size)
                    for key, target in file.writes
                }
                for key, rest in file.compares:
                    tower_path, tower_key = plan.tower_keys[rest]
                    diffs.append(_difference(weights.tensor(key), opened[tower_path], tower_key))
            if file.writes:
                name = names[len(result.shards)]
                say(f"{file.path.name}: {len(tensors)} tensors -> {name}")
                result.total_bytes += save_shard(tensors, out / name)
                result.shards.append(name)
                result.weight_map.update(dict.fromkeys(tensors, name))
            del tensors
    if diffs:
        worst = max(diffs)
        result.embedded = {"keys": len(diffs), "identical": worst == 0.0, "max_abs_diff": worst}
    index = {"metadata": {"total_size": result.total_bytes}, "weight_map": result.weight_map}
    (out / INDEX).write_text(json.dumps(index, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return result


def _converted(tensor: torch.Tensor, target: str, vocab_size: int) -> torch.Tensor:
    if target not in RESIZED or tensor.shape[0] == vocab_size:
        return tensor
    import torch

    # Rows for the added token(s): the mean row (see the module docstring for why it is harmless).
    mean = tensor.float().mean(dim=0, keepdim=True).to(tensor.dtype)
    return torch.cat([tensor, mean.expand(vocab_size - tensor.shape[0], -1)], dim=0)


def _difference(embedded: torch.Tensor, tower: WeightFile, key: str) -> float:
    reference = tower.tensor(key)
    return float((embedded.float() - reference.to(embedded.dtype).float()).abs().max())


def _record(
    source: Source, plan: Plan, written: _Written, image_index: int, *, respaced: bool
) -> dict[str, Any]:
    """What `medbench_conversion.json` holds: provenance, checksums, and every deliberate choice."""
    import transformers

    from medbench import __version__

    def files(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
        present = [folder / n for n in names if (folder / n).is_file()]
        return {p.name: sha256_file(p) for p in present}

    src_files = files(source.folder, ("config.json", "generation_config.json", *_TOKENIZER_FILES))
    tower_files = files(source.tower.folder, ("config.json", "preprocessor_config.json"))
    for path in source.shards:
        src_files[path.name] = written.hashes[path]
    for path in source.tower.weights:
        tower_files[path.name] = written.hashes[path]
    return {
        "schema_version": 1,
        "converter": "llava-med",
        "converter_version": CONVERTER_VERSION,
        "medbench_version": __version__,
        "transformers_version": transformers.__version__,
        "source": {
            "path": str(source.folder.resolve()),
            "revision": source.revision.sha,
            "revision_from": source.revision.found_in,
            "sha256": src_files,
            "ignored_config_fields": source.ignored_fields,
        },
        "vision_tower": {
            "name": source.tower.name,
            "path": str(source.tower.folder.resolve()),
            "revision": source.tower.revision.sha,
            "revision_from": source.tower.revision.found_in,
            "sha256": tower_files,
        },
        "image_token": IMAGE_TOKEN,
        "image_token_index": image_index,
        "added_rows": "embed_tokens and lm_head: the mean of the source rows",
        "tokenizer_legacy_spacing": respaced,
        "ignored_keys": plan.ignored,
        "embedded_vision_tower": written.embedded,
        "shards": written.shards,
    }


def _replace(staging: Path, dst: Path) -> None:
    """Move the finished conversion into place; an old DST is moved aside, then deleted."""
    stale = dst.parent / f".{dst.name}.stale-{uuid.uuid4().hex[:8]}"
    if dst.exists():
        os.replace(dst, stale)
    os.replace(staging, dst)
    shutil.rmtree(stale, ignore_errors=True)
