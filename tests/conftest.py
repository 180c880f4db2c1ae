"""Shared fixtures: the sample images, and tiny random-weight models built once per session.

Fixtures any test may use:

- `sample_images`: every `data/sample/<task>/<label>/*.jpg`, as a sorted list of Paths.
- `tiny_llava_dir`, `tiny_llava_next_dir`, `tiny_gemma3_dir`, `tiny_text_dir`: a folder holding a
  tiny checkpoint of that architecture (seed 0), loadable with `from_pretrained` offline. Built on
  first use (about 0.1 s each once transformers is imported) and shared by the whole session:
  treat it as read-only (copy it to change it).
- `tiny_models_dir`: the session folder the tiny models live in; asking for it also sets torch
  to one thread.
- `medbench_home`: `$MEDBENCH_HOME` for the whole session (set for every test): commands build
  tiny models and keep their default cache there, never in the user's folder.

Tests never reach the network (`HF_HUB_OFFLINE=1`), and torch runs on one thread: on a busy
2-core machine two threads were 5-15x slower.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "data" / "sample"


@pytest.fixture(scope="session", autouse=True)
def medbench_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """medbench's home folder (tiny models, default cache) for the session: never the user's."""
    home = tmp_path_factory.mktemp("medbench-home")
    os.environ["MEDBENCH_HOME"] = str(home)
    os.environ.pop("MEDBENCH_CACHE", None)
    return home


@pytest.fixture(scope="session")
def sample_images() -> list[Path]:
    images = sorted(SAMPLE_DIR.glob("*/*/*.jpg"))
    if not images:
        pytest.fail(f"no sample images under {SAMPLE_DIR}; copy them from ../shared/data/sample")
    return images


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    return tmp_path_factory.mktemp("tiny-models")


def _tiny(root: Path, arch: str) -> Path:
    from medbench.checkpoints.tiny import ensure_tiny_model
    from medbench.spec.model import TinySpec

    return ensure_tiny_model(TinySpec.model_validate({"arch": arch}), root / arch)


@pytest.fixture(scope="session")
def tiny_llava_dir(tiny_models_dir: Path) -> Path:
    return _tiny(tiny_models_dir, "llava")


@pytest.fixture(scope="session")
def tiny_llava_next_dir(tiny_models_dir: Path) -> Path:
    return _tiny(tiny_models_dir, "llava_next")


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tiny_models_dir: Path) -> Path:
    return _tiny(tiny_models_dir, "gemma3")


@pytest.fixture(scope="session")
def tiny_text_dir(tiny_models_dir: Path) -> Path:
    return _tiny(tiny_models_dir, "text")
