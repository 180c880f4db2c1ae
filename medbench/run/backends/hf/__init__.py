"""The Hugging Face transformers backend: local or hub checkpoints, batched generation."""

from __future__ import annotations

from medbench.run.backends.hf.backend import HFBackend
from medbench.run.backends.hf.chat import conversation, supports_system_role
from medbench.run.backends.hf.embed import extract
from medbench.run.backends.hf.likelihood import OptionScorer
from medbench.run.backends.hf.loading import load, resolve_device, resolve_dtype
from medbench.run.backends.hf.received import load_template

__all__ = [
    "conversation",
    "extract",
    "load_template",
    "supports_system_role",
    "HFBackend",
    "OptionScorer",
    "conversation",
    "load",
    "resolve_device",
    "resolve_dtype",
    "supports_system_role",
]
