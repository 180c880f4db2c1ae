"""The default executor: each model loaded once, in this process, fed batch by batch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from medbench.errors import CacheError
from medbench.run.backends import load_backend
from medbench.run.backends.base import Backend, BackendContext, Output
from medbench.run.executors.base import DEFAULT_BATCH, ModelWork, Sink, batch_ranges, model_failure

BUILDERS: dict[str, str] = {"tiny": "medbench.checkpoints.tiny:build_on_first_use"}
"""Model sources whose checkpoint is made on first use: name -> `module:function`, imported
lazily by name as backends are (`medbench.run.backends.BACKENDS`), so that the run stage never
depends on the code that builds or trains a checkpoint."""


def prepare_checkpoint(work: ModelWork) -> None:
    """Build a tiny model on first use (the backend then loads it from checkpoint_dir)."""
    spec, folder = work.spec, work.identity.checkpoint_dir
    if spec.tiny is not None and folder is not None:
        module_name, _, function = BUILDERS["tiny"].partition(":")
        build = getattr(importlib.import_module(module_name), function)
        build(spec.id, spec.tiny, folder, work.identity.training)


class LocalExecutor:
    """In-process execution: models one after another, batches in order.

    A model that cannot be built or loaded, or whose backend raises part-way, fails its
    remaining jobs with the reason (`model failed: ...`); the next model runs all the same.
    """

    def execute(
        self,
        work: Sequence[ModelWork],
        context: BackendContext,
        sink: Sink,
        should_stop: Callable[[], bool],
    ) -> None:
        for item in work:
            if should_stop():
                return
            run_model(item, context, sink, should_stop)


def run_model(
    item: ModelWork, context: BackendContext, sink: Sink, should_stop: Callable[[], bool]
) -> None:
    """Answer one model's requests; if it fails, record why for those it has not answered."""
    answered: set[int] = set()

    def store(indices: Sequence[int], outputs: Sequence[Output]) -> None:
        sink([item.requests[i] for i in indices], outputs)
        answered.update(indices)

    try:
        prepare_checkpoint(item)
        backend = load_backend(item.spec, item.identity.context(context))
    except Exception as e:  # this model is out; the others still run
        fail_remaining(item, answered, model_failure(e), sink)
        return
    try:
        _answer_all(backend, item, context, store, should_stop)
    except CacheError:  # the store failed, not the model: nothing more can be recorded
        raise
    except Exception as e:
        fail_remaining(item, answered, model_failure(e), sink)
    finally:
        backend.close()


def _answer_all(
    backend: Backend,
    item: ModelWork,
    context: BackendContext,
    store: Callable[[Sequence[int], Sequence[Output]], None],
    should_stop: Callable[[], bool],
) -> None:
    stream = getattr(backend, "stream", None)
    if stream is not None:
        # The backend decodes ahead itself, batch by batch as the runner cut them (when it
        # did); store each batch on arrival.
        for indices, outputs in stream(item.requests, item.batches or None):
            store(indices, outputs)
            if should_stop():
                return
        return
    preferred = int(getattr(backend, "preferred_batch", DEFAULT_BATCH))
    size = context.batch_size or preferred
    for indices in batch_ranges(len(item.requests), item.batches, size):
        store(indices, backend.generate([item.requests[i] for i in indices]))
        if should_stop():
            return


def fail_remaining(item: ModelWork, answered: set[int], reason: str, sink: Sink) -> None:
    """Record `reason` for every request of `item` that has no answer yet."""
    left = [r for i, r in enumerate(item.requests) if i not in answered]
    if left:
        sink(left, [Output(text=None, error=reason)] * len(left))
