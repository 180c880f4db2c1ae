"""The source of a conversion: an original-format LLaVA-Med folder, its vision tower, revisions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medbench.checkpoints.convert.errors import ConversionError

PROJECTOR_TYPE = "mlp2x_gelu"
Strategy = Literal["default", "full"]
SELECT_STRATEGIES: dict[str, Strategy] = {"patch": "default", "cls_patch": "full"}
"""LLaVA's `mm_vision_select_feature` -> transformers' `vision_feature_select_strategy`."""
TEXT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "rope_theta",
    "sliding_window",
    "attention_dropout",
)
"""The Mistral fields of the source config that make the text config of the converted model."""
USED_FIELDS = frozenset(
    {
        *TEXT_FIELDS,
        "model_type",
        "architectures",
        "torch_dtype",
        "tie_word_embeddings",
        "rope_scaling",
        "mm_vision_tower",
        "mm_projector_type",
        "mm_vision_select_layer",
        "mm_vision_select_feature",
        "mm_hidden_size",
        "image_aspect_ratio",
        "mm_use_im_start_end",
    }
)
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_SHA = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


@dataclass(frozen=True)
class Revision:
    """The commit a folder was downloaded at, and where that was read (None when unknown)."""

    sha: str | None
    found_in: str


@dataclass(frozen=True)
class Tower:
    """The CLIP vision tower that `mm_vision_tower` names, as a local folder."""

    name: str
    folder: Path
    weights: tuple[Path, ...]
    revision: Revision


@dataclass(frozen=True)
class Source:
    """A validated original-format LLaVA-Med checkpoint folder."""

    folder: Path
    config: dict[str, Any]
    shards: tuple[Path, ...]
    revision: Revision
    tower: Tower

    @property
    def config_path(self) -> Path:
        return self.folder / "config.json"

    @property
    def strategy(self) -> Strategy:
        """transformers' `vision_feature_select_strategy` for this checkpoint."""
        return SELECT_STRATEGIES[self.config.get("mm_vision_select_feature", "patch")]

    @property
    def ignored_fields(self) -> list[str]:
        """Config fields the conversion does not read: training settings of the original code."""
        return sorted(set(self.config) - USED_FIELDS)


def read_source(src: Path, *, vision_tower: Path | None, revision: str | None) -> Source:
    """Read and check SRC's config, find its weight shards and the vision tower it names."""
    if not src.is_dir():
        raise ConversionError(f"{src}: not a folder; SRC must be a local LLaVA-Med checkpoint")
    config_path = src / "config.json"
    config = read_json(config_path)
    problems = check_config(config, config_path)
    if problems:
        raise ConversionError("\n".join(problems))
    name = str(config["mm_vision_tower"])
    tower_folder = find_tower(name, config_path, src, vision_tower)
    tower = Tower(
        name=name,
        folder=tower_folder,
        weights=weight_files(tower_folder),
        revision=find_revision(tower_folder, None),
    )
    return Source(
        folder=src,
        config=config,
        shards=weight_files(src),
        revision=find_revision(src, revision),
        tower=tower,
    )


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConversionError(f"{path}: not found") from e
    except (OSError, ValueError) as e:
        raise ConversionError(f"{path}: cannot read JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def check_config(config: dict[str, Any], path: Path) -> list[str]:
    """Every reason the original config cannot be converted faithfully, one line each."""
    problems: list[str] = []

    def expect(field: str, ok: bool, wanted: str) -> None:
        if not ok:
            got = repr(config[field]) if field in config else "missing"
            problems.append(f"{path}: {field} is {got}, {wanted}")

    expect(
        "model_type",
        config.get("model_type") == "llava_mistral",
        "expected 'llava_mistral' (the original LLaVA-Med code's LlavaMistralForCausalLM)",
    )
    expect(
        "mm_projector_type",
        config.get("mm_projector_type") == PROJECTOR_TYPE,
        f"only {PROJECTOR_TYPE!r} is supported",
    )
    tower = config.get("mm_vision_tower")
    expect("mm_vision_tower", isinstance(tower, str) and bool(tower), "expected the CLIP tower")
    layer = config.get("mm_vision_select_layer")
    expect(
        "mm_vision_select_layer",
        isinstance(layer, int) and not isinstance(layer, bool),
        "expected an integer layer index",
    )
    if config.get("mm_vision_select_feature", "patch") not in SELECT_STRATEGIES:
        expect("mm_vision_select_feature", False, "only 'patch' or 'cls_patch' is supported")
    expect(
        "image_aspect_ratio",
        config.get("image_aspect_ratio") == "pad",
        "only 'pad' (square padding with the mean colour) is supported",
    )
    for field in ("mm_use_im_start_end", "tie_word_embeddings", "rope_scaling"):
        if config.get(field):
            expect(field, False, "not supported by this converter")
    for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
        value = config.get(field)
        expect(field, isinstance(value, int) and value > 0, "expected a positive integer")
    return problems


def weight_files(folder: Path) -> tuple[Path, ...]:
    """The weight files of a checkpoint folder, from its index if sharded, in index order."""
    for name in _INDEXES:
        index = folder / name
        if index.is_file():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise ConversionError(f"{index}: has no weight_map")
            files = tuple(folder / f for f in sorted(set(map(str, weight_map.values()))))
            for file in files:
                if not file.is_file():
                    raise ConversionError(f"{index}: names {file.name}, which does not exist")
            return files
    for name in _SINGLE_FILES:
        if (folder / name).is_file():
            return (folder / name,)
    raise ConversionError(
        f"{folder}: no weights found; expected {', '.join(_INDEXES + _SINGLE_FILES)}"
    )


def find_tower(name: str, config_path: Path, src: Path, given: Path | None) -> Path:
    """The local folder of the vision tower: --vision-tower, a local path, or the hub cache."""
    if given is not None:
        if not (given / "config.json").is_file():
            raise ConversionError(
                f"{given}: not a vision tower folder (no config.json); --vision-tower must "
                f"point at a local copy of {name}"
            )
        return given
    for candidate in (Path(name).expanduser(), src / name):
        if (candidate / "config.json").is_file():
            return candidate
    cached = _hub_snapshot(name)
    if cached is not None and (cached / "config.json").is_file():
        return cached
    raise ConversionError(
        f"{config_path}: mm_vision_tower {name!r} is neither a local folder nor in the Hugging "
        f"Face cache; download it (for example `hf download {name} --local-dir DIR`) and pass "
        "--vision-tower DIR"
    )


def _hub_snapshot(repo: str) -> Path | None:
    """The cached snapshot of a hub repository, without reaching the network."""
    if not _REPO_ID.fullmatch(repo):
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not cached, or a cache the hub client cannot read: both mean "not here"
        return None


def find_revision(folder: Path, given: str | None) -> Revision:
    """The commit `folder` holds: --revision, git, a hub cache snapshot or `hf download` files."""
    if given:
        return Revision(given, "--revision")
    head = _git_head(folder / ".git")
    if head is not None:
        return Revision(head, "git")
    resolved = folder.resolve()
    if resolved.parent.name == "snapshots" and _SHA.fullmatch(resolved.name):
        return Revision(resolved.name, "hub cache")
    # `hf download --local-dir` leaves one metadata file per file, the commit on its first line.
    metadata = folder / ".cache" / "huggingface" / "download" / "config.json.metadata"
    try:
        first = metadata.read_text(encoding="utf-8").splitlines()[0].strip()
    except (OSError, IndexError):
        first = ""
    if _SHA.fullmatch(first):
        return Revision(first, "hf download metadata")
    return Revision(None, "unknown")


def _git_head(git: Path) -> str | None:
    if git.is_file():  # a worktree: `.git` names the real git folder
        text = git.read_text(encoding="utf-8").strip()
        if not text.startswith("gitdir:"):
            return None
        git = (git.parent / text.removeprefix("gitdir:").strip()).resolve()
    try:
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if _SHA.fullmatch(head):
        return head
    ref = head.removeprefix("ref:").strip()
    try:
        value = (git / ref).read_text(encoding="utf-8").strip()
    except OSError:
        value = ""
    if _SHA.fullmatch(value):
        return value
    try:
        packed = (git / "packed-refs").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in packed:
        sha, _, name = line.partition(" ")
        if name == ref and _SHA.fullmatch(sha):
            return sha
    return None
