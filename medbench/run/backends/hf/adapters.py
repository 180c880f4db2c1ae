"""PEFT adapters: fetch exactly the resolved adapter, apply it over the loaded base, merge it.

The adapter is merged into the base weights (`merge_and_unload`): what is left is a plain
transformers model, so generation, option likelihoods and embeddings run the same code as for
any model, at the base model's speed. Merging in bfloat16 rounds the merged weights once;
that is the numerical noise every bfloat16 run has, not a change of model. Adapters that cannot
be merged (prompt tuning and other non-LoRA kinds) are refused, and so is an adapter whose saved
tensors are not exactly those its config makes over this base model: peft applies such an adapter
with a warning, and its answers would be neither the base model's nor the adapter's.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from medbench.data import SHA_RE, hf_cache_dir
from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext
from medbench.run.identity import resolve_hub_revision
from medbench.spec import ModelSpec

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""What a PEFT adapter folder must hold: its config and safetensors weights (never a pickle)."""


def adapter_folder(spec: ModelSpec, context: BackendContext) -> Path:
    """The folder holding the spec's adapter: the local one its identity resolved, or the hub
    snapshot of the resolved commit sha (downloaded on first use, only the two adapter files)."""
    adapter = spec.adapter
    assert adapter is not None
    if context.adapter_dir is not None:
        folder = context.adapter_dir
    elif adapter.repo is not None:
        sha = context.adapter_revision or resolve_hub_revision(adapter.repo, adapter.revision)
        if not SHA_RE.fullmatch(sha):
            raise BackendError(
                f"model {spec.id}: loading the adapter needs a resolved commit sha, got {sha!r}"
            )
        from huggingface_hub import snapshot_download

        try:
            folder = Path(
                snapshot_download(
                    adapter.repo,
                    revision=sha,
                    cache_dir=str(hf_cache_dir()),
                    allow_patterns=list(ADAPTER_FILES),
                )
            )
        except Exception as e:  # network, auth, missing repo or revision
            raise BackendError(
                f"model {spec.id}: cannot fetch the adapter {adapter.repo}@{sha}: "
                f"{type(e).__name__}: {e}"
            ) from e
    else:
        raise BackendError(
            f"model {spec.id}: a `path:` adapter needs its folder resolved before loading, but "
            "BackendContext.adapter_dir is not set"
        )
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise BackendError(
            f"model {spec.id}: the adapter folder {folder} lacks {', '.join(missing)}; medbench "
            "loads PEFT adapters saved with safetensors (`save_pretrained`, the default)"
        )
    return folder


def apply_adapter(model: Any, spec: ModelSpec, context: BackendContext) -> Any:
    """`model` with the spec's adapter merged into its weights."""
    from peft import PeftModel

    folder = adapter_folder(spec, context)
    try:
        with warnings.catch_warnings():
            # peft only warns of missing keys (and says nothing of unexpected ones): both are
            # refused below, with the keys named.
            warnings.filterwarnings("ignore", message="Found missing adapter keys")
            adapted = PeftModel.from_pretrained(model, str(folder), is_trainable=False)
    except Exception as e:  # a config or weights that do not fit this base model
        raise BackendError(
            f"model {spec.id}: cannot apply the adapter in {folder}: {type(e).__name__}: {e}"
        ) from e
    check_adapter_keys(spec, folder, adapted)
    if not hasattr(adapted, "merge_and_unload"):
        raise BackendError(f"model {spec.id}: the adapter in {folder} cannot be merged")
    try:
        return adapted.merge_and_unload()
    except Exception as e:  # e.g. prompt tuning, which has no weights to merge
        raise BackendError(
            f"model {spec.id}: the adapter in {folder} cannot be merged into the weights "
            f"({type(e).__name__}: {e}); medbench supports LoRA-style adapters"
        ) from e


def check_adapter_keys(spec: ModelSpec, folder: Path, adapted: Any) -> None:
    """Refuse an adapter whose saved tensors are not exactly those that peft, with the adapter's
    config over this base model, expects (and would save): some missing (left at their
    initial values) or some unexpected (never applied)."""
    from peft import get_peft_model_state_dict
    from safetensors import safe_open

    with safe_open(str(folder / ADAPTER_FILES[1]), framework="pt") as weights:
        saved = set(weights.keys())
    expected = set(get_peft_model_state_dict(adapted).keys())
    problems = [
        f"{len(keys)} {what} key(s), e.g. {sorted(keys)[0]}"
        for what, keys in (("missing", expected - saved), ("unexpected", saved - expected))
        if keys
    ]
    if problems:
        raise BackendError(
            f"model {spec.id}: the adapter in {folder} does not fit the base model: "
            f"{' and '.join(problems)}; it was saved for other weights (or another layout of "
            "them): use the adapter made for this base"
        )
