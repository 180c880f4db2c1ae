"""Executors: how batches of requests reach the backends (in-process, or on Ray)."""

from __future__ import annotations

from medbench.run.executors.base import (
    DEFAULT_BATCH,
    EXECUTORS,
    MODEL_FAILED,
    Executor,
    ModelWork,
    Sink,
    automatic_batch,
    batch_ranges,
    model_failure,
    preferred_batch,
)
from medbench.run.executors.local import prepare_checkpoint

__all__ = [
    "DEFAULT_BATCH",
    "EXECUTORS",
    "Executor",
    "MODEL_FAILED",
    "ModelWork",
    "Sink",
    "automatic_batch",
    "batch_ranges",
    "model_failure",
    "preferred_batch",
    "prepare_checkpoint",
]
