"""The `mismatched` ablation: pair each image with an image of another class of its task."""

from __future__ import annotations

import random
from collections.abc import Sequence

from medbench.data.samples import Sample


def mismatched_partners(samples: Sequence[Sample], seed: int, task: str) -> dict[str, Sample]:
    """Sample id -> the sample whose image it is shown instead of its own: always one of
    another class, by a seeded derangement.

    The readable samples are laid out class by class (classes and the samples within each in a
    seeded order) and each is paired with the one as many places on as the largest class has
    samples: a permutation that never stays within a class whenever no class holds more than
    half of the images. Where one does, a sample that would meet its own class gets a seeded
    draw among the other classes' images instead. Empty when fewer than two classes remain.
    """
    by_label: dict[str, list[Sample]] = {}
    for sample in sorted((s for s in samples if s.error is None), key=lambda s: s.id):
        by_label.setdefault(sample.label, []).append(sample)
    if len(by_label) < 2:
        return {}
    rng = random.Random(f"{seed}:mismatched:{task}")
    labels = sorted(by_label)
    rng.shuffle(labels)
    for label in labels:
        rng.shuffle(by_label[label])
    order = [sample for label in labels for sample in by_label[label]]
    shift = max(len(group) for group in by_label.values())
    partners: dict[str, Sample] = {}
    for i, sample in enumerate(order):
        partner = order[(i + shift) % len(order)]
        if partner.label == sample.label:
            others = [o for o in order if o.label != sample.label]
            partner = others[rng.randrange(len(others))]
        partners[sample.id] = partner
    return partners
