"""A model's identity for the content key: backend, weights (resolved revision), dtype, decoding.

Resolving never imports torch: a pinned sha is used as is, a branch or tag is asked of the hub,
or read from the local Hugging Face cache when the hub is offline (HF_HUB_OFFLINE).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.data import (
    SHA_RE,
    canonical_json,
    confine,
    data_root,
    hub_offline,
    local_ref,
    resolve_data_path,
    sha256_file,
)
from medbench.errors import BackendError
from medbench.run.tinydata import TrainingData, training_data
from medbench.spec import ModelSpec, check_revision

if TYPE_CHECKING:
    from medbench.run.backends.base import BackendContext
    from medbench.spec.loading import SpecSet

TINY_RECIPE_VERSION = 1
"""Bump when the tiny-model builder changes what it writes for the same spec."""
TEST_MODEL_MARKER = "medbench_tiny.json"
"""The file in a checkpoint that medbench built (`tiny-model`, a demonstration model); its
`"test_model": true` says the weights are random or a demonstration, whatever a spec says."""
CHECKPOINT_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".jinja", ".py")


@dataclass(frozen=True)
class ModelIdentity:
    """What of a model changes its answers, plus where its checkpoint lives (not in the key)."""

    payload: dict[str, Any]
    """Canonical description hashed into every content key of this model."""
    revision: str
    """The resolved revision: a commit sha, a checkpoint hash, or the backend's own name."""
    checkpoint_dir: Path | None = None
    training: TrainingData | None = None
    """For a trained tiny model: what it is fine-tuned on (the key holds its fingerprint)."""
    adapter_revision: str | None = None
    """For a model with an adapter: the adapter's commit sha (hub) or `local:<files hash>`."""
    adapter_dir: Path | None = None
    """For a model with a local (`path`) adapter: its resolved folder."""

    def context(self, context: BackendContext) -> BackendContext:
        """`context` set to load exactly these weights: the checkpoint folder, or the commit sha
        (and the adapter's folder, or its commit sha)."""
        hub_sha = (
            self.revision
            if self.checkpoint_dir is None and SHA_RE.fullmatch(self.revision)
            else None
        )
        adapter_sha = (
            self.adapter_revision
            if self.adapter_dir is None
            and self.adapter_revision is not None
            and SHA_RE.fullmatch(self.adapter_revision)
            else None
        )
        return replace(
            context,
            checkpoint_dir=self.checkpoint_dir,
            revision=hub_sha,
            adapter_dir=self.adapter_dir,
            adapter_revision=adapter_sha,
        )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def resolve_hub_revision(repo: str, revision: str) -> str:
    """A repository revision as a commit sha: pinned, asked of the hub, or (offline only) read
    from the local cache.

    Online, the hub's answer wins over the local ref: a local `refs/main` goes stale as soon as
    the repository gets a new commit, and answers would be filed under the old sha.
    """
    if SHA_RE.fullmatch(revision):
        return revision
    try:
        check_revision(revision)
    except ValueError as e:
        raise BackendError(f"{repo}@{revision[:60]}: {e}.") from e
    if hub_offline():
        local = local_ref(repo, revision, "model", BackendError)
        if local is None:
            raise BackendError(
                f"{repo}@{revision}: cannot resolve the revision offline (no local copy). "
                f"Download the model first, or pin `revision:` to a 40-character commit sha."
            )
        return local
    try:
        from huggingface_hub import HfApi

        sha = HfApi().model_info(repo, revision=revision).sha
    except Exception as e:  # any hub failure: network, auth, missing repo
        local_hint = (
            " or set HF_HUB_OFFLINE=1 to use the copy in the local cache"
            if local_ref(repo, revision, "model", BackendError)
            else ""
        )
        raise BackendError(
            f"{repo}@{revision}: cannot resolve the revision on the Hugging Face hub ({e}). "
            f"Check the network and HF_TOKEN (gated models){local_hint}, "
            f"or pin `revision:` to a commit sha."
        ) from e
    if not sha or not SHA_RE.fullmatch(str(sha)):
        raise BackendError(f"{repo}@{revision}: the hub reported no commit sha (got {sha!r}).")
    return str(sha)


def checkpoint_hash(
    folder: Path, hasher: Callable[[Path], str] = sha256_file, *, inside: Path | None = None
) -> str:
    """A hash over a local checkpoint's files (names and contents), each confined to `inside`
    (with links resolved) when given."""
    if not folder.is_dir():
        raise BackendError(f"{folder}: checkpoint folder not found.")
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
            if inside is not None:
                confine(path, inside, "a checkpoint file")
            digest.update(f"{path.relative_to(folder).as_posix()}\t{hasher(path)}\n".encode())
    return digest.hexdigest()


_SNAPSHOTS: dict[tuple[str, str], str | None] = {}


def served_snapshot(spec: ModelSpec) -> str | None:
    """The model name an OpenAI-compatible endpoint reports for `spec` (one 1-token request,
    remembered for the process; needs the key). Only `medbench run` asks (`served.Probing`)."""
    assert spec.openai is not None
    where = (spec.openai.base_url, spec.openai.model)
    if where not in _SNAPSHOTS:
        from medbench.run.backends.base import BackendContext
        from medbench.run.backends.openai_api import OpenAIBackend

        backend = OpenAIBackend(spec, BackendContext())
        try:
            _SNAPSHOTS[where] = backend.probe()
        finally:
            backend.close()
    return _SNAPSHOTS[where]


def openai_identity(spec: ModelSpec, snapshot: str | None) -> ModelIdentity:
    """The identity of an `openai` model answered by `snapshot` (None: not known)."""
    assert spec.openai is not None
    endpoint: dict[str, Any] = {
        "base_url": spec.openai.base_url,
        "model": spec.openai.model,
        # the name the server reports, when it differs: a new snapshot is a new model
        "snapshot": snapshot if snapshot != spec.openai.model else None,
    }
    # Decoding settings of reasoning models change the answer; absent, old keys stay valid.
    for name in ("reasoning_effort", "max_completion_tokens"):
        value = getattr(spec.openai, name)
        if value is not None:
            endpoint[name] = value
    # Images go where the prompt places them (before the text unless a variant says otherwise,
    # as on the hf backend); they used to follow the text, so a model that reads images is keyed
    # apart from those answers. A text-only model's requests did not change: its keys stay.
    if not spec.text_only:
        endpoint["content_order"] = "image_position"
    return ModelIdentity(_payload(spec, endpoint), snapshot or spec.openai.model)


def tiny_checkpoint_dir(
    spec: ModelSpec, models_dir: Path, training: TrainingData | None = None
) -> Path:
    """Where a tiny model is built: named by the spec's id and a hash of what makes its weights
    (the recipe and, for a trained model, its training data), so that one models folder serves
    every answer cache and spec tree without two builds taking turns in one folder."""
    assert spec.tiny is not None
    recipe = {
        "tiny": spec.tiny.model_dump(mode="json"),
        "training": None if training is None else training.payload(),
    }
    digest = hashlib.sha256(canonical_json(recipe).encode()).hexdigest()[:12]
    return models_dir / f"{spec.id}-{digest}-r{TINY_RECIPE_VERSION}"


def _payload(spec: ModelSpec, weights: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "backend": spec.backend,
        "weights": weights,
        "dtype": spec.dtype,
        "generation": spec.generation.model_dump(mode="json"),
    }
    if spec.backend == "vllm":  # its answers can differ from transformers': the engine is keyed
        payload["engine"] = {"vllm": _version("vllm")}
    # How prompts and images reach the model; keyed only when not the default, so that the
    # keys of models using the defaults stay what they were before these settings existed.
    if spec.system_prompt != "template":
        payload["system_prompt"] = spec.system_prompt
    if spec.image_preprocess != "processor":
        payload["image_preprocess"] = spec.image_preprocess
    return payload


def with_adapter(
    spec: ModelSpec,
    identity: ModelIdentity,
    root: Path,
    hasher: Callable[[Path], str] = sha256_file,
) -> ModelIdentity:
    """`identity` with the spec's adapter in its weights: the resolved commit sha of a hub
    adapter, the hash of a local adapter's files (confined to its data root). Without an
    adapter, `identity` itself: the keys of models without one are unchanged."""
    adapter = spec.adapter
    if adapter is None:
        return identity
    folder: Path | None = None
    if adapter.path is not None:
        folder = resolve_data_path(adapter.path, root)
        digest = checkpoint_hash(folder, hasher, inside=data_root(adapter.path, root))
        described: dict[str, Any] = {"checkpoint": digest}
        revision = f"local:{digest}"
    else:
        assert adapter.repo is not None
        revision = resolve_hub_revision(adapter.repo, adapter.revision)
        described = {"repo": adapter.repo, "revision": revision}
    payload = {**identity.payload, "weights": {**identity.payload["weights"], "adapter": described}}
    return replace(identity, payload=payload, adapter_revision=revision, adapter_dir=folder)


def placeholder_identity(spec: ModelSpec) -> ModelIdentity:
    """A stand-in identity for a model that cannot be resolved here (its revision unknown), to
    count what its jobs would cost: its keys are never those of real answers."""
    weights = {"repo": spec.repo or spec.path or spec.id, "unresolved": spec.revision}
    return ModelIdentity(_payload(spec, weights), f"unresolved:{spec.revision}")


def resolve_identity(
    spec: ModelSpec,
    root: Path,
    models_dir: Path,
    hasher: Callable[[Path], str] = sha256_file,
    *,
    specs: SpecSet | None = None,
    snapshots: Callable[[ModelSpec], str | None] | None = None,
) -> ModelIdentity:
    """Resolve a model spec to its identity, without importing torch or loading weights.

    A trained tiny model needs `specs`: its training prompts and images are part of its identity.
    An `openai` model without a pinned `snapshot` asks `snapshots` for the one it is served as
    (`medbench.run.served`: recorded by a run, or probed); without it, the snapshot is unknown and
    the key holds the requested model name only. Nothing here contacts an endpoint itself.
    """
    if spec.backend == "baseline":
        return ModelIdentity(
            {"backend": "baseline", "baseline": spec.baseline}, f"baseline:{spec.baseline}"
        )
    if spec.backend == "openai":
        assert spec.openai is not None
        snapshot = spec.openai.snapshot
        if snapshot is None and snapshots is not None:
            snapshot = snapshots(spec)
        return openai_identity(spec, snapshot)
    return with_adapter(
        spec, _weights_identity(spec, root, models_dir, hasher, specs), root, hasher
    )


def _weights_identity(
    spec: ModelSpec,
    root: Path,
    models_dir: Path,
    hasher: Callable[[Path], str],
    specs: SpecSet | None,
) -> ModelIdentity:
    """The identity of an `hf` model's base weights (a tiny build, a local folder, a hub sha)."""
    if spec.tiny is not None:
        weights: dict[str, Any] = {
            "tiny": spec.tiny.model_dump(mode="json"),
            "recipe": TINY_RECIPE_VERSION,
            "torch": _version("torch"),
            "transformers": _version("transformers"),
        }
        training = None
        if spec.tiny.train:
            if specs is None:
                raise BackendError(
                    f"model {spec.id}: a trained tiny model's identity needs the spec set "
                    "(its training data): pass `specs=` to resolve_identity"
                )
            training = training_data(
                specs,
                spec,
                lambda model, data: tiny_checkpoint_dir(model, models_dir, data),
                hasher,
            )
            weights["training"] = training.payload()
        folder = tiny_checkpoint_dir(spec, models_dir, training)
        revision = f"tiny-r{TINY_RECIPE_VERSION}"
        return ModelIdentity(_payload(spec, weights), revision, folder, training)
    if spec.path is not None:
        folder = resolve_data_path(spec.path, root)
        digest = checkpoint_hash(folder, hasher, inside=data_root(spec.path, root))
        return ModelIdentity(_payload(spec, {"checkpoint": digest}), f"local:{digest}", folder)
    assert spec.repo is not None
    sha = resolve_hub_revision(spec.repo, spec.revision)
    return ModelIdentity(_payload(spec, {"repo": spec.repo, "revision": sha}), sha)


def marked_test_model(checkpoint_dir: Path | None) -> bool:
    """Whether a checkpoint's own marker (TEST_MODEL_MARKER) says it is a test model."""
    import json

    marker = checkpoint_dir / TEST_MODEL_MARKER if checkpoint_dir is not None else None
    if marker is None or marker.is_symlink() or not marker.is_file():
        return False
    try:
        found = json.loads(marker.read_text(encoding="utf-8")[:100_000])
    except (OSError, ValueError):
        return True  # a marker that cannot be read is no proof of real weights
    return not isinstance(found, dict) or found.get("test_model") is not False
