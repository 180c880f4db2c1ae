"""Which source tensor becomes which converted tensor: every key is mapped, ignored for a stated
reason, or refused; every key the converted model needs must come from somewhere.

Original layout (LlavaMistralForCausalLM)       transformers layout (LlavaForConditionalGeneration)
  model.embed_tokens / layers.* / norm          model.language_model.*
  model.mm_projector.0 / .2 (Linear GELU Linear) model.multi_modal_projector.linear_1 / linear_2
  lm_head.weight                                lm_head.weight
  tower file: vision_model.*                    model.vision_tower.* (this transformers' naming)
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medbench.checkpoints.convert.errors import ConversionError
from medbench.checkpoints.convert.weights import open_weights

EMBEDDED_TOWER = "model.vision_tower.vision_tower."
"""Where the original checkpoint keeps a copy of the CLIP tower, which the original code never
loads: it builds the tower with `delay_load=True` and reads the weights `mm_vision_tower` names."""
RESIZED = ("model.language_model.embed_tokens.weight", "lm_head.weight")
_PROJECTOR = re.compile(r"model\.mm_projector\.([02])\.(weight|bias)")
_CLIP_TEXT_SIDE = ("text_model.", "text_projection.", "visual_projection.", "logit_scale")
_BUFFERS = ("embeddings.position_ids",)
MAX_LISTED = 10


@dataclass
class FilePlan:
    """What to do with one weight file: tensors to write under new names, copies to compare."""

    path: Path
    writes: list[tuple[str, str]] = field(default_factory=list)
    compares: list[tuple[str, str]] = field(default_factory=list)
    """(key in this file, canonical tower key): the embedded tower copy, checked, not written."""


@dataclass
class Plan:
    """The conversion of every weight file, in order: source shards, then the tower's files."""

    files: list[FilePlan]
    tower_keys: dict[str, tuple[Path, str]]
    """canonical tower key (`embeddings.patch_embedding.weight`) -> (tower file, key in it)"""
    ignored: dict[str, int]

    @property
    def written(self) -> list[FilePlan]:
        return [f for f in self.files if f.writes]


def tower_prefix(expected: dict[str, tuple[int, ...]]) -> str:
    """How this transformers names the CLIP tower inside Llava (with or without `vision_model.`)."""
    nested = "model.vision_tower.vision_model.embeddings.patch_embedding.weight"
    return "model.vision_tower.vision_model." if nested in expected else "model.vision_tower."


def source_target(key: str) -> str | None:
    """The converted name of a source key; None for a key outside the known layout."""
    if key == "lm_head.weight":
        return key
    projector = _PROJECTOR.fullmatch(key)
    if projector:
        layer = 1 if projector.group(1) == "0" else 2
        return f"model.multi_modal_projector.linear_{layer}.{projector.group(2)}"
    if key.startswith("model.") and not key.startswith(("model.mm_projector.", EMBEDDED_TOWER)):
        return "model.language_model." + key.removeprefix("model.")
    return None


def canonical_tower_key(key: str) -> str:
    return key.removeprefix("vision_model.")


class _Checker:
    """Collects every problem with the keys while the files are read."""

    def __init__(self, expected: dict[str, tuple[int, ...]], old_vocab: int) -> None:
        self.expected = expected
        self.old_vocab = old_vocab
        self.produced: dict[str, Path] = {}
        self.problems: list[str] = []
        self.ignored: Counter[str] = Counter()
        self.tower_shapes: dict[str, tuple[int, ...]] = {}

    def unknown(self, path: Path, key: str) -> None:
        self.problems.append(f"{path}: unknown key {key!r}: refusing to drop it")

    def target(self, path: Path, key: str, target: str, shape: tuple[int, ...]) -> None:
        if target not in self.expected:
            self.unknown(path, key)
            return
        if target in self.produced:
            self.problems.append(f"{path}: key {key!r} also appears in {self.produced[target]}")
            return
        self.produced[target] = path
        want = self.expected[target]
        if target in RESIZED:
            want = (self.old_vocab, *want[1:])
        if shape != want:
            self.problems.append(
                f"{path}: {key!r} has shape {list(shape)}, the config implies {list(want)}"
            )

    def embedded(self, path: Path, key: str, rest: str, shape: tuple[int, ...]) -> None:
        """The source's own copy of the tower must at least have the shapes of the tower used."""
        self.ignored["source: embedded copy of the vision tower, unused"] += 1
        tower = self.tower_shapes[rest]
        if shape != tower:
            self.problems.append(
                f"{path}: {key!r} has shape {list(shape)}, but the vision tower's {rest!r} has "
                f"{list(tower)}: is the vision tower the one mm_vision_tower names?"
            )

    def missing(self) -> None:
        missing = sorted(set(self.expected) - set(self.produced))
        if missing:
            listed = ", ".join(missing[:MAX_LISTED])
            more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
            self.problems.append(f"missing keys after conversion: {listed}{more}")


def make_plan(
    shards: tuple[Path, ...],
    tower_files: tuple[Path, ...],
    expected: dict[str, tuple[int, ...]],
    old_vocab: int,
) -> Plan:
    """Map every key of every file; raise once with every unknown, missing or misshapen key."""
    checker = _Checker(expected, old_vocab)
    tower_keys: dict[str, tuple[Path, str]] = {}
    towers = [_plan_tower_file(p, tower_prefix(expected), checker, tower_keys) for p in tower_files]
    sources = [_plan_shard(path, checker, tower_keys) for path in shards]
    checker.missing()
    if checker.problems:
        raise ConversionError("\n".join(checker.problems))
    ignored = dict(sorted(checker.ignored.items()))
    return Plan(files=sources + towers, tower_keys=tower_keys, ignored=ignored)


def _plan_tower_file(
    path: Path, prefix: str, checker: _Checker, tower_keys: dict[str, tuple[Path, str]]
) -> FilePlan:
    plan = FilePlan(path)
    with open_weights(path) as weights:
        for key in weights.names():
            rest = canonical_tower_key(key)
            if key.startswith(_CLIP_TEXT_SIDE):
                checker.ignored["vision tower: CLIP text side, unused by LLaVA"] += 1
            elif rest in _BUFFERS:
                checker.ignored["vision tower: position_ids buffer, rebuilt by transformers"] += 1
            else:
                tower_keys[rest] = (path, key)
                checker.tower_shapes[rest] = weights.shape(key)
                plan.writes.append((key, prefix + rest))
                checker.target(path, key, prefix + rest, weights.shape(key))
    return plan


def _plan_shard(path: Path, checker: _Checker, tower_keys: dict[str, tuple[Path, str]]) -> FilePlan:
    plan = FilePlan(path)
    with open_weights(path) as weights:
        for key in weights.names():
            target = source_target(key)
            if key.endswith(".rotary_emb.inv_freq"):
                checker.ignored["source: rotary inv_freq buffer, rebuilt from rope_theta"] += 1
            elif key.startswith(EMBEDDED_TOWER):
                rest = canonical_tower_key(key.removeprefix(EMBEDDED_TOWER))
                if rest in _BUFFERS:
                    checker.ignored["source: position_ids buffer of the embedded tower"] += 1
                elif rest not in tower_keys:
                    checker.unknown(path, key)
                else:
                    checker.embedded(path, key, rest, weights.shape(key))
                    plan.compares.append((key, rest))
            elif target is None:
                checker.unknown(path, key)
            else:
                plan.writes.append((key, target))
                checker.target(path, key, target, weights.shape(key))
    return plan
