"""Executors: how batches of requests reach the backends (in-process, or on Ray)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from medbench.backends.base import BackendContext, Output, Request
from medbench.identity import ModelIdentity
from medbench.specs import ModelSpec

Sink = Callable[[Sequence[Request], Sequence[Output]], None]
"""Receives each finished batch; the caller stores it before the next batch starts."""


@dataclass(frozen=True)
class ModelWork:
    """The cache misses of one model."""

    spec: ModelSpec
    identity: ModelIdentity
    requests: list[Request]


class Executor(Protocol):
    """Runs every request of every model and hands each finished batch to `sink`."""

    def execute(
        self,
        work: Sequence[ModelWork],
        context: BackendContext,
        sink: Sink,
        should_stop: Callable[[], bool],
    ) -> None: ...


EXECUTORS: dict[str, str] = {
    "local": "medbench.executors.local:LocalExecutor",
    "ray": "medbench.executors.ray:RayExecutor",
}
