"""Shared fixtures.

Fixtures any test may use:

- `sample_images`: every `data/sample/<task>/<label>/*.jpg`, as a sorted list of Paths.

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


@pytest.fixture(scope="session")
def sample_images() -> list[Path]:
    images = sorted(SAMPLE_DIR.glob("*/*/*.jpg"))
    if not images:
        pytest.fail(f"no sample images under {SAMPLE_DIR}; copy them from ../shared/data/sample")
    return images
