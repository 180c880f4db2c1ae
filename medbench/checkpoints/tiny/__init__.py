"""Tiny checkpoints of the real architectures, built locally for tests and demos.

Random-weight models exercise the loading and generation code; trained ones (`tiny.train`) are
demonstration models fine-tuned on the bundled sample images, so that they answer in words.
`import medbench.checkpoints.tiny` is cheap: torch, tokenizers and transformers are imported
only by a build.
"""

from __future__ import annotations

from medbench.checkpoints.tiny.build import (
    MARKER,
    Arch,
    build_on_first_use,
    build_tiny_model,
    ensure_tiny_model,
    marker,
    trained_marker,
)
from medbench.checkpoints.tiny.tokenizer import CHAT_TEMPLATES, corpus, train_tokenizer
from medbench.checkpoints.tiny.train import TrainingLog, train_tiny_model
from medbench.run import (
    TRAIN_RECIPE_VERSION,
    Example,
    StartPoint,
    TrainingData,
    training_data,
    training_examples,
)

__all__ = [
    "CHAT_TEMPLATES",
    "MARKER",
    "TRAIN_RECIPE_VERSION",
    "Arch",
    "Example",
    "StartPoint",
    "TrainingData",
    "TrainingLog",
    "build_on_first_use",
    "build_tiny_model",
    "corpus",
    "ensure_tiny_model",
    "marker",
    "train_tiny_model",
    "trained_marker",
    "train_tokenizer",
    "training_data",
    "training_examples",
]
