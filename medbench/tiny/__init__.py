"""Tiny random-weight checkpoints of the real architectures, built locally for tests and demos.

`import medbench.tiny` is cheap: torch, tokenizers and transformers are imported only by a build.
"""

from __future__ import annotations

from medbench.tiny.build import MARKER, Arch, build_tiny_model, ensure_tiny_model, marker
from medbench.tiny.tokenizer import CHAT_TEMPLATES, corpus, train_tokenizer

__all__ = [
    "CHAT_TEMPLATES",
    "MARKER",
    "Arch",
    "build_tiny_model",
    "corpus",
    "ensure_tiny_model",
    "marker",
    "train_tokenizer",
]
