"""Tests of model identity: the commit a hub model resolves to, and that loading uses exactly it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import huggingface_hub
import pytest

# transformers binds HfApi by name on import: import it before any test swaps in the fake.
import transformers.utils.hub  # noqa: F401
from huggingface_hub import constants

from medbench.data.hubcache import hf_cache_dir, hub_offline
from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext
from medbench.run.identity import resolve_hub_revision, resolve_identity
from medbench.spec.model import ModelSpec

ROOT = Path(__file__).resolve().parents[2]
REPO = "medbench-test/tiny-llava"
STALE = "a" * 40
"""What the local `refs/main` says: the commit downloaded long ago."""
FRESH = "b" * 40
"""What the hub says `main` is today."""
REAL_HF_API = huggingface_hub.HfApi


class FakeHfApi:
    """Answers `model_info` like the hub would, and remembers what it was asked."""

    calls: list[tuple[str, str | None]] = []
    sha: str | None = FRESH
    error: Exception | None = None

    def __init__(self, **_: Any) -> None:
        pass

    def model_info(self, repo_id: str, revision: str | None = None, **_: Any) -> Any:
        FakeHfApi.calls.append((repo_id, revision))
        if FakeHfApi.error is not None:
            raise FakeHfApi.error
        return SimpleNamespace(sha=FakeHfApi.sha)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An HF cache whose `refs/main` of REPO is STALE, the hub online, and HfApi faked."""
    cache = tmp_path / "hub"
    refs = cache / f"models--{REPO.replace('/', '--')}" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(STALE)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHfApi)
    monkeypatch.setattr(FakeHfApi, "calls", [])
    monkeypatch.setattr(FakeHfApi, "sha", FRESH)
    monkeypatch.setattr(FakeHfApi, "error", None)
    return cache


def hub_spec(**fields: Any) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "model",
            "id": "hub-llava",
            "title": "A hub model",
            "backend": "hf",
            "family": "llava",
            "repo": REPO,
            "revision": "main",
            **fields,
        }
    )


def test_resolve_hub_revision_online_asks_the_hub_over_a_stale_local_ref(hub: Path) -> None:
    assert resolve_hub_revision(REPO, "main") == FRESH
    assert FakeHfApi.calls == [(REPO, "main")]


def test_resolve_hub_revision_offline_reads_the_local_ref(
    hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve_hub_revision(REPO, "main") == STALE
    assert FakeHfApi.calls == []


def test_resolve_hub_revision_pinned_sha_asks_nobody(hub: Path) -> None:
    assert resolve_hub_revision(REPO, "c" * 40) == "c" * 40
    assert FakeHfApi.calls == []


def test_resolve_hub_revision_offline_without_local_copy_fails(
    hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BackendError) as info:
        resolve_hub_revision("medbench-test/absent", "main")
    assert str(info.value) == (
        "medbench-test/absent@main: cannot resolve the revision offline (no local copy). "
        "Download the model first, or pin `revision:` to a 40-character commit sha."
    )


def test_resolve_hub_revision_hub_failure_names_the_offline_fallback(hub: Path) -> None:
    FakeHfApi.error = ConnectionError("no route to host")
    with pytest.raises(BackendError) as info:
        resolve_hub_revision(REPO, "main")
    assert str(info.value) == (
        f"{REPO}@main: cannot resolve the revision on the Hugging Face hub (no route to host). "
        "Check the network and HF_TOKEN (gated models) or set HF_HUB_OFFLINE=1 to use the copy "
        "in the local cache, or pin `revision:` to a commit sha."
    )


def test_resolve_hub_revision_hub_without_sha_fails(hub: Path) -> None:
    FakeHfApi.sha = None
    with pytest.raises(BackendError, match=r"^medbench-test/tiny-llava@main: the hub reported no "):
        resolve_hub_revision(REPO, "main")


def test_resolve_identity_hub_model_keys_the_fresh_sha(hub: Path, tmp_path: Path) -> None:
    identity = resolve_identity(hub_spec(), ROOT, tmp_path / "models")
    assert identity.revision == FRESH
    assert identity.payload["weights"] == {"repo": REPO, "revision": FRESH}
    assert identity.context(BackendContext()).revision == FRESH


@pytest.mark.parametrize(
    ("env", "offline", "cache"),
    [
        ({"HF_HUB_OFFLINE": "ON", "XDG_CACHE_HOME": "/x"}, True, "/x/huggingface/hub"),
        ({"HF_HUB_OFFLINE": "True", "HF_HOME": "/h"}, True, "/h/hub"),
        ({"HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": "/c", "HF_HOME": "/h"}, False, "/c"),
        ({"TRANSFORMERS_OFFLINE": "yes"}, True, None),
    ],
)
def test_hub_settings_follow_huggingface_hub_constants(
    env: dict[str, str], offline: bool, cache: str | None
) -> None:
    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")
    clean = {k: v for k, v in os.environ.items() if k not in names}
    code = (
        "from medbench.data.hubcache import hf_cache_dir, hub_offline; "
        "print(hub_offline(), hf_cache_dir())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    got_offline, got_cache = done.stdout.split()
    assert got_offline == str(offline)
    if cache is not None:
        assert got_cache == cache
    # in this process, the same functions read the same constants
    assert hub_offline() is bool(constants.HF_HUB_OFFLINE)
    assert str(hf_cache_dir()) == constants.HF_HUB_CACHE


def _snapshot(cache: Path, sha: str, source: Path) -> Path:
    folder = cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / sha
    shutil.copytree(source, folder)
    return folder


def test_load_uses_the_resolved_sha_for_model_and_processor(
    hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from medbench.checkpoints.tiny import ensure_tiny_model
    from medbench.run.backends.hf.loading import load
    from medbench.spec.model import TinySpec

    torch.set_num_threads(1)
    old = ensure_tiny_model(TinySpec(arch="llava", seed=0), tmp_path / "seed0")
    new = ensure_tiny_model(TinySpec(arch="llava", seed=1), tmp_path / "seed1")
    _snapshot(hub, STALE, old)
    fresh = _snapshot(hub, FRESH, new)
    # the fresh commit also changed the processor: its chat template ends differently
    config = fresh / "chat_template.jinja"
    if config.is_file():
        config.write_text(config.read_text() + "{# fresh #}")
    else:
        path = fresh / "processor_config.json"
        data = json.loads(path.read_text())
        data["chat_template"] += "{# fresh #}"
        path.write_text(json.dumps(data))
    identity = resolve_identity(hub_spec(dtype="float32"), ROOT, tmp_path / "models")
    # the weights are local now: transformers must find them without the network
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "HfApi", REAL_HF_API)
    loaded = load(hub_spec(dtype="float32"), identity.context(BackendContext(device="cpu")))
    from transformers import AutoModelForImageTextToText

    want = AutoModelForImageTextToText.from_pretrained(new).state_dict()
    got = loaded.model.state_dict()
    assert all(torch.equal(got[name], want[name]) for name in want)
    assert loaded.processor.chat_template.endswith("{# fresh #}")


def test_resolve_identity_keys_prompt_and_image_handling_only_when_not_default(
    tmp_path: Path,
) -> None:
    from tests.spec_tree import tiny_model_spec

    default = resolve_identity(tiny_model_spec("llava"), ROOT, tmp_path)
    # the defaults leave the payload, and so every existing key, as it was
    assert set(default.payload) == {"backend", "weights", "dtype", "generation"}
    changed = resolve_identity(
        tiny_model_spec("llava", system_prompt="fold_into_user", image_preprocess="pad_square"),
        ROOT,
        tmp_path,
    )
    assert changed.payload == {
        **default.payload,
        "system_prompt": "fold_into_user",
        "image_preprocess": "pad_square",
    }


def test_model_spec_prompt_and_image_handling_not_for_baselines() -> None:
    from pydantic import ValidationError

    with pytest.raises(
        ValidationError, match=r"only apply to models \(`backend: hf`, `vllm` or `openai`\)"
    ):
        ModelSpec.model_validate(
            {
                "schema_version": 1,
                "kind": "model",
                "id": "chance",
                "title": "Chance",
                "backend": "baseline",
                "family": "baseline",
                "baseline": "chance",
                "system_prompt": "none",
            }
        )
