"""Generation from a shared image prefix: the wordings of a prompt family ask the same image with
the same opening (BOS, system text, the image's tokens), so that opening is computed once.

For a batch (as the processor encoded it, left-padded), rows that show the same images (equal
pixel tensors) after the same tokens form a group. A group's prefix is the longest run of tokens
its rows share, through the last image token and short of each row's last token; it goes through
the model once (images included), keeping the KV cache, which is then copied to one row per
group member (`Cache.batch_select_indices`, as the likelihood scorer does). `generate` continues
from that cache over the rest of each row: every row is laid out as

    [pads | its prefix] [pads | the rest of its prompt]

so that the prefix columns are the cached ones, and the attention mask leaves out both runs of
pads. Positions come from the mask (what `generate` does for left padding: each real token's
position is the number of real tokens before it), so every token sits where it sits alone: the
greedy answers are the tokens of the full-prompt path. Rows that share with nobody ride along
with their own prefix (through their image), computed in the same pass.

The image lies wholly in the cached prefix, so the continuation is text: no pixel values,
and Gemma 3's bidirectional image attention (its `token_type_ids`) applies in the prefix pass only.
Where it is not safe to share, the batch is generated as full prompts (`plan_sharing` says why):
a model family not tested here (positions computed another way, e.g. Qwen2-VL's 3-D rotary
positions), image tensors that are not one entry per image, a sliding window shorter than the
batch's columns (the window counts columns, and the pads between prefix and rest would move
a row's window), or no row that shares its image and the tokens before it with another (e.g.
the text comes before the image and differs between wordings).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# This package is the backend that needs torch; it is imported only when a model generates.
import torch  # noqa: TID253

from medbench.run.backends.base import Request

TOKEN_FIELDS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")
"""Encoded fields with one value per token; the others (pixel values, image sizes) are per image."""

SHARING_FAMILIES = frozenset({"llava", "llava_next", "gemma3"})
"""`model_type`s whose shared-prefix answers are tested to equal the full-prompt path's."""

Inputs = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Sharing:
    """How a batch's rows are split into a cached prefix and a rest."""

    groups: list[list[int]]
    """Rows sharing one prefix (a row that shares with nobody is a group of one)."""
    splits: list[int]
    """Per row, its prefix length in tokens."""
    tokens: list[list[int]]
    """Per row, its real (unpadded) token ids."""
    types: list[list[int]] | None
    """Per row, its real token type ids (Gemma 3), else None."""
    images: list[Inputs]
    """Per row, its per-image tensors (pixel values, image sizes)."""

    @property
    def prefix_width(self) -> int:
        return max(self.splits[group[0]] for group in self.groups)

    @property
    def rest_width(self) -> int:
        return max(len(ids) - split for ids, split in zip(self.tokens, self.splits, strict=True))

    @property
    def prefill_tokens(self) -> int:
        """Tokens the model computes: each group's prefix once, and every row's rest."""
        prefixes = sum(self.splits[group[0]] for group in self.groups)
        return prefixes + sum(len(t) - s for t, s in zip(self.tokens, self.splits, strict=True))


@dataclass
class Prefill:
    """Prompt tokens the model computed (`computed`) against those of the full prompts
    (`prompts`): they differ by the prefixes that rows shared."""

    computed: int = 0
    prompts: int = 0
    shared_batches: int = 0
    """Batches generated from shared prefixes."""


def whole_images(requests: Sequence[Request], start: int, stop: int) -> int:
    """Where a batch from `start` of at most `stop - start` requests ends: at `stop`, or before
    it where the requests at `stop` go on asking the images the batch already asks and an
    earlier request starts asking them."""
    if stop >= len(requests):
        return len(requests)

    def shown(index: int) -> tuple[str, ...]:
        return tuple(image.sha256 for image in requests[index].messages.images)

    last = shown(stop)
    if not last or shown(stop - 1) != last:
        return stop
    cut = stop - 1
    while cut > start and shown(cut - 1) == last:
        cut -= 1
    return cut if cut > start else stop


def real_tokens(inputs: Inputs) -> int:
    """The prompt tokens (pads left out) of an encoded batch: what the full-prompt path computes."""
    return int(inputs["attention_mask"].sum())


def image_count(conversation: Sequence[dict[str, Any]]) -> int:
    """The images of a conversation (content parts of type `image`)."""
    return sum(
        1
        for turn in conversation
        if isinstance(turn["content"], list)
        for part in turn["content"]
        if part.get("type") == "image"
    )


def plan_sharing(
    model: Any, inputs: Inputs, image_counts: Sequence[int], longest_budget: int
) -> Sharing | str | None:
    """How the rows of `inputs` (left-padded) share prefixes; why they cannot (a reason to say);
    None where no two rows show the same image (nothing to share)."""
    config = model.config
    kind = str(getattr(config, "model_type", ""))
    if kind not in SHARING_FAMILIES:
        return f"model type {kind!r} is not one whose shared prefixes are tested"
    image_token = _image_token(config)
    if image_token is None:
        return "the model config names no image token"
    mask = inputs["attention_mask"].bool()
    rows = range(int(mask.shape[0]))
    tokens = [inputs["input_ids"][r][mask[r]].tolist() for r in rows]
    types = None
    if "token_type_ids" in inputs:
        types = [inputs["token_type_ids"][r][mask[r]].tolist() for r in rows]
    images = _images_per_row(inputs, image_counts)
    if images is None:
        return "the processor's image tensors are not one entry per image"
    # a row's opening: its tokens through its last image token (empty without an image)
    ends = [
        max((i + 1 for i, t in enumerate(ids) if t == image_token), default=0) for ids in tokens
    ]
    if any(end >= len(ids) for end, ids in zip(ends, tokens, strict=True)):
        return "a prompt ends with its image"
    groups, alike = _groups(tokens, ends, images)
    if not any(len(group) > 1 for group in groups):
        if alike:
            return "its requests about one image differ before it (a system text, or text first)"
        return None
    sharing = Sharing(groups, _splits(groups, tokens, ends), tokens, types, images)
    window = getattr(config.get_text_config(), "sliding_window", None)
    columns = sharing.prefix_width + sharing.rest_width + longest_budget
    if window is not None and columns > window:
        return f"its prompts and budget pass the model's sliding window of {window} tokens"
    return sharing


def _image_token(config: Any) -> int | None:
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return None


def _images_per_row(inputs: Inputs, counts: Sequence[int]) -> list[Inputs] | None:
    """Each row's slice of the per-image tensors (None: they are not one entry per image)."""
    starts = [0]
    for count in counts:
        starts.append(starts[-1] + count)
    per_image = {k: v for k, v in inputs.items() if k not in TOKEN_FIELDS}
    if any(v.shape[0] != starts[-1] for v in per_image.values()):
        return None
    return [{k: v[a:b] for k, v in per_image.items()} for a, b in itertools.pairwise(starts)]


def _groups(
    tokens: list[list[int]], ends: list[int], images: list[Inputs]
) -> tuple[list[list[int]], bool]:
    """Rows that show the same images after the same tokens, in order of first appearance (a
    row without an image alone), and whether any rows show the same images after other tokens."""
    groups: list[list[int]] = []
    by_image: list[list[int]] = []
    for r, end in enumerate(ends):
        if not end:
            groups.append([r])
            continue
        same = next((seen for seen in by_image if _same_images(images[r], images[seen[0]])), None)
        if same is None:
            by_image.append([r])
            groups.append([r])
            continue
        same.append(r)
        opening = tokens[r][:end]
        group = next(
            (g for g in groups if g[0] in same and tokens[g[0]][: ends[g[0]]] == opening), None
        )
        if group is None:
            groups.append([r])
        else:
            group.append(r)
    alike = any(len(same) > 1 for same in by_image)
    return groups, alike


def _splits(groups: list[list[int]], tokens: list[list[int]], ends: list[int]) -> list[int]:
    """Per row, its prefix: a group's longest common run of tokens, short of each row's last
    token; a row alone, through its image, leaving a rest about as long as the others'."""
    splits = [0] * len(tokens)
    shared = [group for group in groups if len(group) > 1]
    for group in shared:
        shortest = min(len(tokens[r]) for r in group) - 1
        common = ends[group[0]]
        while common < shortest and len({tokens[r][common] for r in group}) == 1:
            common += 1
        for r in group:
            splits[r] = common
    rest = max(len(tokens[r]) - splits[r] for group in shared for r in group)
    for group in groups:
        if len(group) == 1:
            r = group[0]
            splits[r] = min(len(tokens[r]) - 1, max(ends[r], 1, len(tokens[r]) - rest))
    return splits


def _same_images(a: Inputs, b: Inputs) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a
    )


def _left_padded(rows: Sequence[Sequence[int]], width: int, fill: int) -> tuple[Any, Any]:
    """Rows right-aligned in `width` columns after `fill`, and the mask of their real tokens."""
    ids = torch.full((len(rows), width), fill, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        if row:
            ids[r, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[r, width - len(row) :] = 1
    return ids, mask


def generate_shared(
    model: Any,
    sharing: Sharing,
    config: Any,
    pad_id: int,
    on_device: Callable[[Inputs], Inputs],
) -> tuple[torch.Tensor, int]:
    """What `generate` returns for the rows (their prompt columns, then the new tokens) and the
    width of the prompt columns: the groups' prefixes in one pass keeping the KV cache, then
    `generate` from it."""
    tokens, splits = sharing.tokens, sharing.splits
    width, rest = sharing.prefix_width, sharing.rest_width
    firsts = [group[0] for group in sharing.groups]
    ids, mask = _left_padded([tokens[r][: splits[r]] for r in firsts], width, pad_id)
    prefix: Inputs = {
        "input_ids": ids,
        "attention_mask": mask,
        # as `generate` places left-padded rows: a real token's position counts the real ones
        "position_ids": (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0),
    }
    if sharing.types is not None:
        types = sharing.types
        prefix["token_type_ids"] = _left_padded([types[r][: splits[r]] for r in firsts], width, 0)[
            0
        ]
    with_images = [r for r in firsts if sharing.images[r] and _has_images(sharing.images[r])]
    for name in sharing.images[with_images[0]] if with_images else ():
        prefix[name] = torch.cat([sharing.images[r][name] for r in with_images])
    group_of = {r: g for g, group in enumerate(sharing.groups) for r in group}
    rows = len(tokens)
    head, head_mask = _left_padded([tokens[r][: splits[r]] for r in range(rows)], width, pad_id)
    tail, tail_mask = _left_padded([tokens[r][splits[r] :] for r in range(rows)], rest, pad_id)
    full = {
        "input_ids": torch.cat([head, tail], dim=1),
        "attention_mask": torch.cat([head_mask, tail_mask], dim=1),
    }
    with torch.inference_mode():
        out = model(**on_device(prefix), use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        if cache is None:
            raise NoCache
        del out
        index = torch.tensor([group_of[r] for r in range(rows)], dtype=torch.long)
        cache.batch_select_indices(on_device({"index": index})["index"])  # a prefix per row
        generated = model.generate(
            **on_device(full), past_key_values=cache, generation_config=config
        )
    return generated, width + rest


def _has_images(images: Inputs) -> bool:
    return any(v.shape[0] for v in images.values())


class NoCache(Exception):
    """The model's forward pass returned no KV cache: the batch is generated as full prompts."""


__all__ = [
    "SHARING_FAMILIES",
    "TOKEN_FIELDS",
    "NoCache",
    "Prefill",
    "Sharing",
    "generate_shared",
    "image_count",
    "plan_sharing",
    "real_tokens",
    "whole_images",
]
