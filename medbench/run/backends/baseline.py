"""Baseline backends: reference answers that look at no image and run anywhere."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from medbench.run.backends.base import BackendContext, Output, Request
from medbench.spec import ModelSpec


class BaselineBackend:
    """`chance` (uniform, deterministic per content key), `majority`, `always_positive`."""

    preferred_batch = 256

    def __init__(self, spec: ModelSpec, context: BackendContext) -> None:
        assert spec.baseline is not None
        self.kind = spec.baseline

    def _answer(self, request: Request) -> str:
        if not request.options:
            return "No description: a baseline does not look at the image."
        if self.kind == "chance":
            index = int(hashlib.sha256(request.key.encode()).hexdigest(), 16) % len(request.options)
            return request.options[index]
        if self.kind == "majority":
            return request.majority_option or request.options[0]
        return request.positive_options[0] if request.positive_options else request.options[0]

    def generate(self, requests: Sequence[Request]) -> list[Output]:
        return [Output(self._answer(r)) for r in requests]

    def close(self) -> None:
        pass
