"""What every executor shares: the work of one model, the batch sink, the executor protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from medbench.errors import MedbenchError
from medbench.run.backends import BACKENDS
from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.identity import ModelIdentity
from medbench.spec import ModelSpec

DEFAULT_BATCH = 8
"""Batch size of a backend that states no `preferred_batch`."""

Sink = Callable[[Sequence[Request], Sequence[Output]], None]
"""Receives each finished batch; the caller stores it before the next batch starts."""


@dataclass(frozen=True)
class ModelWork:
    """The cache misses of one model."""

    spec: ModelSpec
    identity: ModelIdentity
    requests: list[Request]
    batches: tuple[int, ...] = ()
    """Lengths of the consecutive runs of `requests` that form one batch each (the runner's
    plan-wide batches, see `run.cut_batches`); empty: cut at the batch size."""


def batch_ranges(n_requests: int, batches: Sequence[int], size: int) -> list[range]:
    """The request index ranges answered together: `batches` when given, else runs of `size`."""
    if not batches:
        return [range(s, min(s + size, n_requests)) for s in range(0, n_requests, size)]
    if sum(batches) != n_requests or min(batches) < 1:
        raise ValueError(f"batches {list(batches)} do not cover {n_requests} requests")
    starts = [0]
    for length in batches:
        starts.append(starts[-1] + length)
    return [range(a, b) for a, b in zip(starts, starts[1:], strict=False)]


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
    "local": "medbench.run.executors.local:LocalExecutor",
    "ray": "medbench.run.executors.ray:RayExecutor",
}


def preferred_batch(spec: ModelSpec) -> int:
    """The backend class's preferred batch, read without loading a model."""
    import importlib

    module_name, class_name = BACKENDS[spec.backend].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return int(getattr(backend_class, "preferred_batch", DEFAULT_BATCH))


def automatic_batch(spec: ModelSpec) -> bool:
    """Whether the backend class finds its own batch size when none is given."""
    import importlib

    module_name, class_name = BACKENDS[spec.backend].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return bool(getattr(backend_class, "automatic_batch", False))
