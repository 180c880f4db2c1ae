"""The Hugging Face transformers backend: local or hub checkpoints, batched generation."""

from __future__ import annotations

from medbench.run.backends.hf.backend import HFBackend
from medbench.run.backends.hf.chat import conversation, supports_system_role
from medbench.run.backends.hf.loading import load, resolve_device, resolve_dtype

__all__ = [
    "HFBackend",
    "conversation",
    "load",
    "resolve_device",
    "resolve_dtype",
    "supports_system_role",
]
