"""Image embeddings of a Hugging Face VLM: what its language model reads of an image.

One rule for every family (its version is `EMBED_RULE` of `medbench.score.probe.embeddings`, part
of every embedding key). Per image:

1. the image is decoded by `medbench.data.images.load_image`, padded to a square where the spec's
   `image_preprocess` says so (`medbench.run.backends.hf.padding`, as for generation), and
   prepared by the checkpoint's own image processor;
2. `vision`: the features the model's multi-modal projector takes: for LLaVA and LLaVA-NeXT the
   vision tower's hidden state at the config's `vision_feature_layer` (CLIP's penultimate layer;
   several layers concatenated where it lists several), its CLS token dropped under the
   `default` `vision_feature_select_strategy`; for Gemma 3, SigLIP's last hidden state;
3. `projected`: those features through the projector: the image tokens in the language model's
   embedding space;
4. each is the mean over the image tokens the language model reads: every token for LLaVA and
   Gemma 3 (Gemma 3's projector average-pools its SigLIP patches into 256 tokens; `vision` is the
   mean of all the patches); for LLaVA-NeXT the whole image's tile plus the high-resolution
   crops' tokens left after unpadding (transformers' `pack_image_features`), never the
   image-newline tokens that end each row (one learned vector, the same for every image).

An image that cannot be decoded gets a row of NaN. A family without this rule is refused.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# This module is the hf backend's embedding half; medbench.score.probe imports it only when
# extracting.
import torch  # noqa: TID253
from numpy.typing import NDArray

from medbench.data import ImageError, load_image
from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext
from medbench.run.backends.hf.loading import Loaded, load
from medbench.run.backends.padding import Padding, square_padding
from medbench.spec import ModelSpec

EMBEDDING_KINDS = ("vision", "projected")
DEFAULT_EMBED_BATCH = 16


def vision_tower(model: Any) -> Any:
    """The model's vision encoder alone."""
    get_encoder = getattr(model, "get_encoder", None)
    if get_encoder is not None:
        try:
            return get_encoder(modality="image")
        except (TypeError, ValueError, AttributeError):
            pass
    for owner in (model, getattr(model, "model", None)):
        tower = getattr(owner, "vision_tower", None)
        if tower is not None:
            return tower
    raise BackendError(f"{type(model).__name__} has no vision tower to embed images with")


def _inner(model: Any) -> Any:
    """The part of a `...ForConditionalGeneration` model that holds tower and projector."""
    inner = getattr(model, "model", model)
    if getattr(inner, "multi_modal_projector", None) is None:
        raise BackendError(
            f"{type(model).__name__} has no multi-modal projector; medbench embeds images only "
            "for the LLaVA, LLaVA-NeXT and Gemma 3 families"
        )
    return inner


def projector_input(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    """(crops, tokens, dim): what the projector takes of a batch of crops (see the docstring)."""
    inner = _inner(model)
    config = inner.config
    tower = vision_tower(model)
    if config.model_type == "gemma3":
        hidden: torch.Tensor = tower(pixel_values=pixels).last_hidden_state
        return hidden
    layer = getattr(config, "vision_feature_layer", None)
    strategy = getattr(config, "vision_feature_select_strategy", None)
    if layer is None or strategy not in ("default", "full"):
        raise BackendError(
            f"{type(model).__name__}: the config names no `vision_feature_layer` and "
            "`vision_feature_select_strategy`; medbench embeds images only for the LLaVA, "
            "LLaVA-NeXT and Gemma 3 families"
        )
    states = tower(pixel_values=pixels, output_hidden_states=True).hidden_states
    layers = [layer] if isinstance(layer, int) else list(layer)
    chosen = [states[i][:, 1:] if strategy == "default" else states[i] for i in layers]
    return torch.cat(chosen, dim=-1)


def read_tokens(
    model: Any, features: torch.Tensor, inputs: dict[str, torch.Tensor]
) -> list[torch.Tensor]:
    """Per image, (tokens, dim): the tokens of `features` (one row per crop, as given by
    `projector_input` or the projector) that the language model reads, newlines left out."""
    inner = _inner(model)
    pack = getattr(inner, "pack_image_features", None)
    if pack is None or "image_sizes" not in inputs:
        return list(features)
    sizes = inputs["image_sizes"]
    crops = _crop_counts(inner, inputs)
    per_image = torch.split(features, crops, dim=0)
    strategy = inner.config.vision_feature_select_strategy
    packed, _ = pack(per_image, sizes, vision_feature_select_strategy=strategy, image_newline=None)
    return list(packed)


def _crop_counts(inner: Any, inputs: dict[str, torch.Tensor]) -> list[int]:
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    config = inner.config
    return [
        image_size_to_num_patches(
            image_size=size,
            grid_pinpoints=config.image_grid_pinpoints,
            patch_size=config.vision_config.image_size,
        )
        for size in inputs["image_sizes"]
    ]


def _crops(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """(crops, channels, h, w): every crop of the batch, LLaVA-NeXT's padded crop slots left out."""
    pixels = inputs["pixel_values"]
    if pixels.dim() != 5:
        return pixels
    counts = _crop_counts(_inner(model), inputs)
    return torch.cat([image[:n] for image, n in zip(pixels, counts, strict=True)], dim=0)


def embed_batch(
    model: Any, inputs: dict[str, torch.Tensor], kinds: Sequence[str]
) -> dict[str, torch.Tensor]:
    """kind -> (images, dim): the batch's embeddings of each kind, by the module's rule."""
    features = projector_input(model, _crops(model, inputs))
    staged = {"vision": features}
    if "projected" in kinds:
        staged["projected"] = _inner(model).multi_modal_projector(features)
    return {
        kind: torch.stack([t.mean(dim=0) for t in read_tokens(model, staged[kind], inputs)])
        for kind in kinds
    }


def _encode(loaded: Loaded, images: list[Any]) -> dict[str, torch.Tensor]:
    processor = getattr(loaded.processor, "image_processor", None)
    if processor is None:
        raise BackendError(
            f"{type(loaded.model).__name__}: the processor has no image processor; "
            "only vision-language models have image embeddings"
        )
    encoded = processor(images=images, return_tensors="pt")
    inputs: dict[str, torch.Tensor] = {}
    for name, value in dict(encoded).items():
        if not isinstance(value, torch.Tensor):
            continue
        if value.is_floating_point():
            inputs[name] = value.to(loaded.device, loaded.dtype)
        else:
            inputs[name] = value.to(loaded.device)
    return inputs


def embed_images(
    loaded: Loaded,
    paths: Sequence[Path],
    kinds: Sequence[str],
    batch_size: int = DEFAULT_EMBED_BATCH,
    padding: Padding | None = None,
) -> dict[str, NDArray[Any]]:
    """Embed each image: kind -> (len(paths), dim) float32, NaN rows for undecodable images;
    `padding`: how generation pads the model's images (None: not at all)."""
    unknown = sorted(set(kinds) - set(EMBEDDING_KINDS))
    if unknown:
        raise ValueError(
            f"unknown embedding kind {unknown[0]!r}; expected one of vision, projected"
        )
    parts: dict[str, list[NDArray[Any]]] = {kind: [] for kind in kinds}
    failed: list[int] = []
    for start in range(0, len(paths), batch_size):
        images, rows = [], []
        for index in range(start, min(start + batch_size, len(paths))):
            try:
                image = load_image(paths[index])
                images.append(image if padding is None else padding.apply(paths[index], image))
                rows.append(index)
            except ImageError:
                failed.append(index)
        if not images:
            continue
        with torch.inference_mode():
            vectors = embed_batch(loaded.model, _encode(loaded, images), kinds)
        for kind in kinds:
            parts[kind].append(vectors[kind].float().cpu().numpy())
    decoded = np.setdiff1d(np.arange(len(paths)), np.array(failed, dtype=np.int64))
    result: dict[str, NDArray[Any]] = {}
    for kind in kinds:
        done = np.concatenate(parts[kind]) if parts[kind] else np.zeros((0, 0), np.float32)
        full = np.full((len(paths), done.shape[1]), np.nan, dtype=np.float32)
        full[decoded] = done
        result[kind] = full
    return result


def extract(
    spec: ModelSpec,
    context: BackendContext,
    paths: Sequence[Path],
    kinds: Sequence[str],
) -> dict[str, NDArray[Any]]:
    """Load the model once (as generation does), embed every image (padded as generation pads
    it), and free the model."""
    loaded = load(spec, context)
    try:
        return embed_images(
            loaded,
            paths,
            kinds,
            batch_size=context.batch_size or DEFAULT_EMBED_BATCH,
            padding=square_padding(spec, loaded.processor),
        )
    finally:
        device = loaded.device
        del loaded
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()


__all__ = [
    "DEFAULT_EMBED_BATCH",
    "EMBEDDING_KINDS",
    "embed_batch",
    "embed_images",
    "extract",
    "projector_input",
    "read_tokens",
    "vision_tower",
]
