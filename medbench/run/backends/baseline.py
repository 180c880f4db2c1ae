"""Baseline backends: reference answers that look at no image and run anywhere."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from medbench.run.backends.base import BackendContext, Output, Request
from medbench.spec import ModelSpec

REFUSAL_TEXT = "I am unable to determine the diagnosis from this image."
"""What `always_refuse` answers: words the parser reads as a refusal."""


def _pick(seed: str, options: Sequence[str]) -> str:
    return options[int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(options)]


class BaselineBackend:
    """`chance` (uniform, deterministic per content key), `majority`, `always_positive`,
    `always_refuse` (declines every question) and `stable_random` (uniform, the same for an
    image under every wording: seeded by the image's content, not by the prompt)."""

    preferred_batch = 256

    def __init__(self, spec: ModelSpec, context: BackendContext) -> None:
        assert spec.baseline is not None
        self.kind = spec.baseline

    def _answer(self, request: Request) -> str:
        if self.kind == "always_refuse":
            return REFUSAL_TEXT
        if not request.options:
            return "No description: a baseline does not look at the image."
        if self.kind == "chance":
            return _pick(request.key, request.options)
        if self.kind == "stable_random":
            # sorted: a wording that reverses the options still gets the same answer
            images = ",".join(image.sha256 for image in request.messages.images)
            return _pick(f"stable_random:{images}", sorted(request.options))
        if self.kind == "majority":
            return request.majority_option or request.options[0]
        return request.positive_options[0] if request.positive_options else request.options[0]

    def generate(self, requests: Sequence[Request]) -> list[Output]:
        return [Output(self._answer(r)) for r in requests]

    def close(self) -> None:
        pass
