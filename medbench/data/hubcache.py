"""The local Hugging Face hub cache: where it is, whether the hub is offline, and the commit a
cached branch or tag names (`<kind>s--<owner>--<name>/refs/<revision>`)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from medbench.errors import MedbenchError

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
"""A commit sha as the hub writes it: 40 lowercase hex digits."""


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub chose it (HF_HUB_CACHE, HF_HOME,
    XDG_CACHE_HOME, in its order of precedence)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether the hub may not be contacted (HF_HUB_OFFLINE, in every spelling the hub reads)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def local_ref(
    repo: str,
    revision: str,
    kind: Literal["model", "dataset"],
    error: type[MedbenchError],
) -> str | None:
    """The commit sha the local cache's `refs/<revision>` names for a `kind` repository (None:
    no such ref). A ref that resolves outside `refs/` (a link, a `..`) is ignored; one that does
    not hold a commit sha raises `error`."""
    refs = hf_cache_dir() / f"{kind}s--{repo.replace('/', '--')}" / "refs"
    ref = refs / revision
    if not ref.is_file() or not os.path.realpath(ref).startswith(os.path.realpath(refs) + os.sep):
        return None
    cached = ref.read_text(encoding="utf-8", errors="replace")[:100].strip()
    if not SHA_RE.fullmatch(cached):
        raise error(
            f"{repo}@{revision}: the Hugging Face cache's ref {ref} does not hold a commit sha."
        )
    return cached
