"""Executors: how batches of requests reach the backends (in-process, or on Ray)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from medbench.backends.base import BackendContext, Output, Request
from medbench.errors import MedbenchError
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


MODEL_FAILED = "model failed"
"""The reason prefix of every job of a model that could not be loaded or stopped answering:
the run records it for those jobs, goes on with the other models and names it at the end."""


def model_failure(error: BaseException) -> str:
    """The stored reason of a model's failure: `model failed: <what went wrong>`."""
    detail = str(error) if isinstance(error, MedbenchError) else f"{type(error).__name__}: {error}"
    return f"{MODEL_FAILED}: {' '.join(detail.split())}"


EXECUTORS: dict[str, str] = {
    "local": "medbench.executors.local:LocalExecutor",
    "ray": "medbench.executors.ray:RayExecutor",
}
