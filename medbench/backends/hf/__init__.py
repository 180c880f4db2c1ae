"""The Hugging Face transformers backend: local or hub checkpoints, batched generation."""

from __future__ import annotations

from medbench.backends.hf.backend import HFBackend
from medbench.backends.hf.chat import conversation, supports_system_role
from medbench.backends.hf.loading import load, resolve_device, resolve_dtype

__all__ = [
    "HFBackend",
    "conversation",
    "load",
    "resolve_device",
    "resolve_dtype",
    "supports_system_role",
]
