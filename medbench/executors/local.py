"""The default executor: each model loaded once, in this process, fed batch by batch."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

from medbench.backends import load_backend
from medbench.backends.base import BackendContext
from medbench.executors import ModelWork, Sink

DEFAULT_BATCH = 8


def prepare_checkpoint(work: ModelWork) -> None:
    """Build a tiny model on first use (the backend then loads it from checkpoint_dir)."""
    spec, folder = work.spec, work.identity.checkpoint_dir
    if spec.tiny is not None and folder is not None:
        from medbench.tiny import MARKER, ensure_tiny_model

        if not (folder / MARKER).is_file():
            what = "fine-tuning it on the sample" if spec.tiny.train else "random weights"
            print(f"Building tiny model {spec.id} ({what}), once.", file=sys.stderr)
        ensure_tiny_model(spec.tiny, folder, training=work.identity.training)


class LocalExecutor:
    """In-process execution: models one after another, batches in order."""

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
            prepare_checkpoint(item)
            backend = load_backend(
                item.spec, replace(context, checkpoint_dir=item.identity.checkpoint_dir)
            )
            try:
                stream = getattr(backend, "stream", None)
                if stream is not None:
                    # The backend batches and decodes ahead itself; store each batch on arrival.
                    for indices, outputs in stream(item.requests):
                        sink([item.requests[i] for i in indices], outputs)
                        if should_stop():
                            return
                    continue
                preferred = int(getattr(backend, "preferred_batch", DEFAULT_BATCH))
                size = context.batch_size or preferred
                for start in range(0, len(item.requests), size):
                    batch = item.requests[start : start + size]
                    sink(batch, backend.generate(batch))
                    if should_stop():
                        return
            finally:
                backend.close()
