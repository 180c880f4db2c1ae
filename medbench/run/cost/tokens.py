"""Token counts of a model's prompts: image tokens by its processor's rule, text tokens by its
tokenizer, read from the checkpoint's files when they are on this machine.

Nothing here imports transformers or torch: the processor's settings are read from its JSON
files, and the image-token rules below are transformers' own (`LlavaProcessor`,
`LlavaNextProcessor._get_number_of_features`, `Gemma3Processor`), written out. Where a model's
files are not here, its family's documented settings stand in, and the count says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.data import SHA_RE, hf_cache_dir

CHARS_PER_TOKEN = 4.0
"""The text estimate without a tokenizer: about four characters of English per token (the
rule of thumb for Llama, Mistral and Gemma tokenizers on prose)."""
TEMPLATE_TOKENS = 12
"""The estimate's allowance for a chat template's own tokens (BOS, turn markers, roles)."""

LLAVA_NEXT_PINPOINTS = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))
"""llava-hf/llava-v1.6-*'s `image_grid_pinpoints` (height, width)."""


@dataclass(frozen=True)
class ImageRule:
    """How many tokens one image becomes for a model, and where the settings came from."""

    family: str
    """`llava` (a fixed grid), `llava_next` (any-resolution tiles) or `gemma3` (fixed)."""
    fixed: int = 0
    """Tokens per image for the fixed-grid families."""
    patch_size: int = 14
    tile: int = 336
    """The vision tower's input side (the base image and each tile)."""
    pinpoints: tuple[tuple[int, int], ...] = LLAVA_NEXT_PINPOINTS
    extra: int = 0
    """Tokens added per image beyond the features (LLaVA-NeXT's CLS token, less one with the
    `default` feature strategy)."""
    source: str = "family rule"
    """`processor config` (read from the model's files) or `family rule` (documented values)."""

    def tokens(self, width: int, height: int) -> int:
        """The image tokens of one `width` x `height` image."""
        if self.family != "llava_next":
            return self.fixed
        return (
            llava_next_tokens(width, height, self.pinpoints, self.tile, self.patch_size)
            + self.extra
        )

    @property
    def needs_size(self) -> bool:
        """Whether the count depends on the image's size."""
        return self.family == "llava_next"


FAMILY_RULES: dict[str, ImageRule] = {
    "llava": ImageRule("llava", fixed=576),
    "llava_next": ImageRule("llava_next"),
    "gemma3": ImageRule("gemma3", fixed=256),
}
"""The documented rules: LLaVA-1.5 at 336 px (24 x 24 patches of 14 px), LLaVA-NeXT's
any-resolution tiles of 336 px, Gemma 3's 256 tokens per image (pan and scan off)."""


def select_best_resolution(
    height: int, width: int, pinpoints: Sequence[tuple[int, int]]
) -> tuple[int, int]:
    """The pinpoint (height, width) that keeps the most of the image and wastes the least
    (transformers' `select_best_resolution`)."""
    best = (0, 0)
    most, least = 0, math.inf
    for h, w in pinpoints:
        scale = min(w / width, h / height)
        effective = min(int(width * scale) * int(height * scale), width * height)
        wasted = h * w - effective
        if effective > most or (effective == most and wasted < least):
            most, least, best = effective, wasted, (h, w)
    return best


def llava_next_tokens(
    width: int, height: int, pinpoints: Sequence[tuple[int, int]], tile: int, patch: int
) -> int:
    """LLaVA-NeXT's image features for one image: the base tile's patches plus the unpadded
    patches of the best grid of tiles and one newline per row (before the CLS adjustment)."""
    best_h, best_w = select_best_resolution(height, width, pinpoints)
    scale_h, scale_w = best_h // tile, best_w // tile
    side = tile // patch
    current_h, current_w = side * scale_h, side * scale_w
    if width / height > current_w / current_h:
        new_h = int(round(height * (current_w / width), 7))
        current_h -= (current_h - new_h) // 2 * 2
    else:
        new_w = int(round(width * (current_h / height), 7))
        current_w -= (current_w - new_w) // 2 * 2
    return current_h * current_w + current_h + side * side


def checkpoint_folder(checkpoint_dir: Path | None, repo: str | None, revision: str) -> Path | None:
    """The model's files on this machine: its checkpoint folder, else its snapshot in the
    local Hugging Face cache (None: not here)."""
    if checkpoint_dir is not None:
        return checkpoint_dir if checkpoint_dir.is_dir() else None
    if repo is None or not SHA_RE.match(revision):
        return None
    folder = hf_cache_dir() / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    return folder if folder.is_dir() else None


def _json(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    if not path.is_file() or path.stat().st_size > 10_000_000:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def image_rule(family: str, folder: Path | None) -> ImageRule | None:
    """The image-token rule of a model of `family`: from its processor config in `folder`
    when readable, else the family's documented rule (None: a family without one)."""
    documented = FAMILY_RULES.get(family)
    if folder is None:
        return documented
    try:
        config = _json(folder, "config.json")
        processor = _json(folder, "processor_config.json")
        images = processor.get("image_processor") or _json(folder, "preprocessor_config.json")
        kind = str(config.get("model_type", family))
        if kind == "gemma3":
            return ImageRule("gemma3", fixed=int(config["mm_tokens_per_image"]), source=_READ)
        vision = config["vision_config"]
        patch = int(processor.get("patch_size") or vision["patch_size"])
        extra = int(processor.get("num_additional_image_tokens", 0))
        extra -= processor.get("vision_feature_select_strategy") == "default"
        if kind == "llava":
            crop = images.get("crop_size") or {"height": vision["image_size"]}
            side = int(crop["height"]) // patch
            return ImageRule("llava", fixed=side * side + extra, source=_READ)
        if kind == "llava_next":
            pins = tuple((int(h), int(w)) for h, w in config["image_grid_pinpoints"])
            tile = int(vision["image_size"])
            return ImageRule("llava_next", patch_size=patch, tile=tile, pinpoints=pins,
                             extra=extra, source=_READ)  # fmt: skip
    except (KeyError, TypeError, ValueError, OSError):
        pass  # an unexpected config: the family's documented rule
    return documented


_READ = "processor config"


class TextCounter:
    """Counts the tokens of prompt texts: with the model's own tokenizer (`tokenizer.json`)
    when it is here, else by `CHARS_PER_TOKEN`; each distinct text is counted once."""

    def __init__(self, folder: Path | None) -> None:
        self._tokenizer: Any = None
        tokenizer_file = folder / "tokenizer.json" if folder is not None else None
        if tokenizer_file is not None and tokenizer_file.is_file():
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.source = "tokenizer" if self._tokenizer is not None else "estimate"
        self._memo: dict[str, int] = {}

    def count(self, text: str) -> int:
        """Tokens of `text` (the template's own tokens included only in the estimate)."""
        found = self._memo.get(text)
        if found is None:
            if self._tokenizer is not None:
                found = len(self._tokenizer.encode(text, add_special_tokens=False).ids)
            else:
                found = math.ceil(len(text) / CHARS_PER_TOKEN) + TEMPLATE_TOKENS
            self._memo[text] = found
        return found
