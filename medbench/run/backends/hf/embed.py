"""Image embeddings of a Hugging Face VLM: its vision tower's output and what its LM receives.

Two kinds, per image, as float32 vectors:

- `vision`: the vision tower's own embedding of the image. CLIP towers (LLaVA, LLaVA-NeXT) give
  their CLS token after the final layer norm (`pooler_output`), the token CLIP was trained to
  pool into; other towers (SigLIP in Gemma 3, which drops SigLIP's attention-pooling head) give
  the mean of their patch tokens. LLaVA-NeXT's image processor cuts an image into the whole
  image resized to the tower's resolution (tile 0) plus high-resolution crops; `vision` embeds
  tile 0 only, so that it is the same view of the image as LLaVA's.
- `projected`: `model.get_image_features(...)`, the image tokens the language model reads,
  averaged over tokens. For LLaVA-NeXT these are all the tokens of every crop (and the row-end
  newline tokens), exactly what the LM receives.

Images are decoded by `medbench.data.images.load_image` and prepared by the checkpoint's own image
processor, as for generation. An image that cannot be decoded gets a row of NaN.
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
from medbench.spec import ModelSpec

EMBEDDING_KINDS = ("vision", "projected")
DEFAULT_EMBED_BATCH = 16

_CLS_TOWERS = frozenset({"clip_vision_model", "clip"})
"""Vision towers whose embedding is their pooled CLS token; the others are mean-pooled."""


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


def _vision(model: Any, pixels: torch.Tensor) -> torch.Tensor:
    tower = vision_tower(model)
    base = pixels[:, 0] if pixels.dim() == 5 else pixels
    out = tower(pixel_values=base)
    model_type = getattr(getattr(tower, "config", None), "model_type", "")
    pooled = getattr(out, "pooler_output", None)
    if model_type in _CLS_TOWERS and pooled is not None:
        result: torch.Tensor = pooled
        return result
    hidden: torch.Tensor = out.last_hidden_state
    return hidden.mean(dim=1)


def _projected(model: Any, inputs: dict[str, torch.Tensor], n_images: int) -> torch.Tensor:
    options = {"image_sizes": inputs["image_sizes"]} if "image_sizes" in inputs else {}
    result = model.get_image_features(pixel_values=inputs["pixel_values"], **options)
    # transformers 5 wraps the projected tokens as `pooler_output`; older versions return them.
    features = getattr(result, "pooler_output", result)
    if isinstance(features, torch.Tensor) and features.dim() == 3:
        return features.mean(dim=1)
    if isinstance(features, (list, tuple)) and len(features) == n_images:
        return torch.stack([f.reshape(-1, f.shape[-1]).mean(dim=0) for f in features])
    shape = getattr(features, "shape", None) or [getattr(f, "shape", None) for f in features]
    raise BackendError(
        f"{type(model).__name__}.get_image_features gave an unexpected shape {shape} for "
        f"{n_images} images; expected (images, tokens, dim) or one (tokens, dim) per image"
    )


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
) -> dict[str, NDArray[Any]]:
    """Embed each image: kind -> (len(paths), dim) float32, NaN rows for undecodable images."""
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
                images.append(load_image(paths[index]))
                rows.append(index)
            except ImageError:
                failed.append(index)
        if not images:
            continue
        with torch.inference_mode():
            inputs = _encode(loaded, images)
            for kind in kinds:
                if kind == "vision":
                    vectors = _vision(loaded.model, inputs["pixel_values"])
                else:
                    vectors = _projected(loaded.model, inputs, len(images))
                parts[kind].append(vectors.float().cpu().numpy())
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
    """Load the model once (as generation does), embed every image, and free the model."""
    loaded = load(spec, context)
    try:
        return embed_images(
            loaded, paths, kinds, batch_size=context.batch_size or DEFAULT_EMBED_BATCH
        )
    finally:
        device = loaded.device
        del loaded
        if device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()


__all__ = ["DEFAULT_EMBED_BATCH", "EMBEDDING_KINDS", "embed_images", "extract", "vision_tower"]
