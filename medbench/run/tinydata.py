"""What a demonstration (tiny, trained) model is fine-tuned on: its examples and start model.

A trained tiny model's identity holds a fingerprint of this data, so the run stage describes it
here and passes it down to the builder in `medbench.checkpoints.tiny`, which never has to be
imported to compute a content key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.data import Hasher, load_samples, sha256_file
from medbench.errors import BackendError
from medbench.spec import ImageRef, Messages, ModelSpec, TinySpec, render

if TYPE_CHECKING:
    from medbench.spec.loading import SpecSet


TRAIN_RECIPE_VERSION = 1
"""Bump when training changes the weights it writes for the same spec and data."""
TRAINABLE_ARCHS = ("llava", "gemma3")
"""Architectures whose image takes a fixed number of tokens: each prompt is tokenized once."""
SAMPLE_SOURCE = "sample"


@dataclass(frozen=True)
class Example:
    """One training prompt: what the model sees, and the answer it learns to give."""

    messages: Messages
    target: str


@dataclass(frozen=True)
class StartPoint:
    """The trained tiny model another one starts from (`init_from`); built first when missing."""

    spec: TinySpec
    folder: Path
    training: TrainingData


@dataclass(frozen=True)
class TrainingData:
    """What a tiny model is fine-tuned on, and the trained model it starts from, if any."""

    examples: tuple[Example, ...]
    start: StartPoint | None = None

    def fingerprint(self) -> str:
        """A hash of the examples: rendered texts, image contents (never paths) and targets."""
        digest = hashlib.sha256()
        for example in self.examples:
            row = {"messages": example.messages.key_payload(), "target": example.target}
            digest.update(json.dumps(row, sort_keys=True, separators=(",", ":")).encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def payload(self) -> dict[str, Any]:
        """Everything of the training that changes the weights, the start model's included."""
        start = self.start
        return {
            "recipe": TRAIN_RECIPE_VERSION,
            "data": self.fingerprint(),
            "examples": len(self.examples),
            "start": None
            if start is None
            else {"tiny": start.spec.model_dump(mode="json"), "training": start.training.payload()},
        }


def training_examples(
    specs: SpecSet, tiny: TinySpec, hasher: Hasher = sha256_file
) -> tuple[Example, ...]:
    """Every sample image of each of `tiny.train_tasks`, asked in each of `tiny.train_variants`,
    with its answer. Other tasks of the spec set are never read: adding one changes nothing."""
    tasks = [specs.task(t) for t in sorted(tiny.train_tasks)]
    samples = {
        task.id: load_samples(task, SAMPLE_SOURCE, specs.root, hasher=hasher) for task in tasks
    }
    examples: list[Example] = []
    for ref in tiny.train_variants:
        family_id, variant_id = ref.split("/")
        family = specs.family(family_id)
        variant = next((v for v in family.variants if v.id == variant_id), None)
        if variant is None:
            raise BackendError(
                f"train variant {ref}: prompt family {family_id!r} has no such variant"
            )
        if variant.lettered or family.answer == "text":
            raise BackendError(
                f"train variant {ref}: its answers are letters or free text; train on variants "
                "answered with a label's name or yes/no"
            )
        for task in tasks:
            names = {label.id: label for label in task.labels}
            for sample in samples[task.id]:
                if sample.error is not None:
                    continue  # an image that cannot be read is left out, not a failed build
                label = names[sample.label]
                target = label.name
                if family.answer == "yes_no":
                    target = "yes" if label.positive else "no"
                image = ImageRef(str(sample.path), sample.sha256)
                examples.append(Example(render(family, variant, task, (image,)).messages, target))
    return tuple(examples)


def training_data(
    specs: SpecSet,
    model: ModelSpec,
    folder_of: Callable[[ModelSpec, TrainingData], Path],
    hasher: Hasher = sha256_file,
    *,
    _seen: tuple[str, ...] = (),
) -> TrainingData:
    """The examples of a trained tiny model, and (with `init_from`) its start model's, recursively.

    `folder_of` says where a tiny model with this training data lives (its identity's folder).
    """
    tiny = model.tiny
    if tiny is None or not tiny.train:
        raise BackendError(f"model {model.id}: not a trained tiny model")
    if tiny.arch not in TRAINABLE_ARCHS:
        raise BackendError(
            f"model {model.id}: training is implemented for {', '.join(TRAINABLE_ARCHS)} tiny "
            f"models, not {tiny.arch!r}"
        )
    start = None
    if tiny.init_from is not None:
        chain = (*_seen, model.id)
        parent = specs.model(tiny.init_from)
        if parent.id in chain:
            loop = " -> ".join((*chain, parent.id))
            raise BackendError(f"model {chain[0]}: `init_from` loops: {loop}")
        if parent.tiny is None or not parent.tiny.train or parent.tiny.arch != tiny.arch:
            raise BackendError(
                f"model {model.id}: `init_from: {parent.id}` must name a trained tiny "
                f"{tiny.arch} model"
            )
        parent_data = training_data(specs, parent, folder_of, hasher, _seen=chain)
        start = StartPoint(parent.tiny, folder_of(parent, parent_data), parent_data)
    return TrainingData(training_examples(specs, tiny, hasher), start)
