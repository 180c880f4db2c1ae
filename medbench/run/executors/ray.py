"""The Ray executor: each model's cache misses as a Ray Dataset, answered by a pool of actors."""

from __future__ import annotations

import logging
import os
import pickle
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any

from medbench.errors import BackendError
from medbench.run.backends import load_backend
from medbench.run.backends.base import Backend, BackendContext, Output, Request
from medbench.run.executors.base import (
    MODEL_FAILED,
    ModelWork,
    Sink,
    batch_ranges,
    model_failure,
    preferred_batch,
)
from medbench.run.executors.local import fail_remaining, prepare_checkpoint
from medbench.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

INSTALL_HINT = "The ray executor needs Ray: pip install 'medbench[ray]'"
DEFAULT_CPU_ACTORS = 2
MAX_STARTS = 3
"""Starts of a batch (the first and two retries after its worker died) before it fails."""
WORKER_DIED = "ray: the worker answering this batch died {n} times"
LOST = "ray: the batch was lost (see the Ray Data log of this session)"


@dataclass(frozen=True)
class Placement:
    """How many actors answer a model, what each reserves, and the device its backend uses."""

    actors: int
    gpus: int
    """GPUs per actor: 1 on a cluster with GPUs, else 0 (CPU actors)."""
    device: str


def plan_placement(resources: dict[str, float], context: BackendContext) -> Placement:
    """One actor per GPU when the cluster has GPUs, else CPU actors (asking Ray for a GPU it
    lacks would wait forever, so the request must fit what `ray.cluster_resources()` reports)."""
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
    asked = _actor_count(context.extra.get("ray_actors"))
    if context.device.startswith("cuda") and gpus == 0:
        raise BackendError(
            f"device {context.device!r} was asked for, but the Ray cluster has no GPU "
            f"({cpus} CPUs). Use --device auto or cpu, or add GPU nodes."
        )
    if gpus > 0 and context.device != "cpu":
        actors = asked or gpus
        if actors > gpus:
            raise BackendError(
                f"ray_actors={actors}, but the Ray cluster has {gpus} GPUs (one actor per GPU)."
            )
        # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU: inside it, that GPU is `cuda`.
        return Placement(actors, 1, "auto" if context.device == "auto" else "cuda")
    actors = asked or min(DEFAULT_CPU_ACTORS, max(cpus, 1))
    if actors > cpus:
        raise BackendError(
            f"ray_actors={actors}, but the Ray cluster has {cpus} CPUs (one CPU per actor)."
        )
    return Placement(actors, 0, "cpu")


def _actor_count(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise BackendError(f"ray_actors: expected a positive integer, got {value!r}")
    return int(value)


class AttemptLedger:
    """Counts how often each batch was started: Ray retries a batch whose actor died without
    limit, so the actor itself gives up on a batch that keeps killing its worker."""

    def __init__(self) -> None:
        self._starts: Counter[int] = Counter()

    def start(self, batch: int) -> int:
        """Record one more start of `batch`; return how many it has had, this one included."""
        self._starts[batch] += 1
        return self._starts[batch]


class ModelActor:
    """Ray Data callable class: loads the model once per actor and answers batches of rows."""

    def __init__(
        self, spec: ModelSpec, context: BackendContext, threads: int | None, ledger: Any
    ) -> None:
        self.backend: Backend = load_backend(spec, context)
        self.ledger = ledger
        torch = sys.modules.get("torch")
        if threads is not None and torch is not None:
            # Actors share the node's cores: one thread per reserved CPU, not one per core.
            torch.set_num_threads(threads)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd
        import ray

        requests: list[Request] = [pickle.loads(blob) for blob in batch["request"]]
        starts = ray.get(self.ledger.start.remote(int(batch["index"].iloc[0])))
        if starts > MAX_STARTS:
            outputs = [Output(None, error=WORKER_DIED.format(n=MAX_STARTS))] * len(requests)
        else:
            try:
                outputs = self.backend.generate(requests)
            except Exception as e:  # a failed batch becomes per-job errors; the run goes on
                outputs = [Output(None, error=f"{type(e).__name__}: {e}")] * len(requests)
        return pd.DataFrame(
            {
                "index": batch["index"].to_numpy(),
                "text": [o.text for o in outputs],
                "error": [o.error for o in outputs],
                "seconds": [o.seconds for o in outputs],
                "image_processor": [o.image_processor for o in outputs],
            }
        )

    def __del__(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()


def import_ray(local: bool) -> ModuleType:
    """Import Ray, or say how to install it; a local Ray listens on 127.0.0.1 only."""
    if local:
        # Read once, when Ray is first imported: a local node then binds the loopback address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise BackendError(INSTALL_HINT) from e
    return ray


def _blocks(requests: Sequence[Request], batches: Sequence[int], size: int) -> list[pd.DataFrame]:
    """One block per batch (the runner's, else runs of `size`), so that a lost block loses
    exactly one batch. Ray Data may bundle a short block with the next one into a batch."""
    import pandas as pd

    # Pickled only in transit between the processes of one run; nothing is written to disk.
    return [
        pd.DataFrame(
            {
                "index": chunk,
                "request": [pickle.dumps(r) for r in requests[chunk.start : chunk.stop]],
            }
        )
        for chunk in batch_ranges(len(requests), batches, size)
    ]


def _outputs(frame: pd.DataFrame) -> Iterator[tuple[int, Output]]:
    processors = frame["image_processor"] if "image_processor" in frame else [None] * len(frame)
    for index, text, error, seconds, processor in zip(
        frame["index"], frame["text"], frame["error"], frame["seconds"], processors, strict=True
    ):
        # Columns come back through Arrow: a missing value may be None or NaN.
        yield (
            int(index),
            Output(
                text=text if isinstance(text, str) else None,
                error=error if isinstance(error, str) else None,
                seconds=float(seconds),
                image_processor=processor if isinstance(processor, str) else None,
            ),
        )


@contextmanager
def _quiet_data(ray: ModuleType) -> Iterator[None]:
    """Ray Data settings for a run: the run draws its own progress bar; a block that fails for
    a reason the actor could not catch is dropped (its jobs are recorded as errors) rather than
    ending the run; Ray Data's console output is silenced (its log file keeps everything, and
    errors reach the user as job errors or as a BackendError)."""
    data_context = ray.data.DataContext.get_current()
    names = ("enable_progress_bars", "print_on_execution_start", "max_errored_blocks")
    saved = {name: getattr(data_context, name) for name in names}
    # The session log file's handler is a plain Handler; only the console one streams.
    console = [
        h for h in logging.getLogger("ray.data").handlers if isinstance(h, logging.StreamHandler)
    ]
    levels = [h.level for h in console]
    data_context.enable_progress_bars = False
    data_context.print_on_execution_start = False
    data_context.max_errored_blocks = -1
    for handler in console:
        handler.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(data_context, name, value)
        for handler, level in zip(console, levels, strict=True):
            handler.setLevel(level)


class RayExecutor:
    """Ray Data execution: models one after another, each answered by a pool of actors; the
    driver alone writes the cache, batch by batch, as answers stream back."""

    def execute(
        self,
        work: Sequence[ModelWork],
        context: BackendContext,
        sink: Sink,
        should_stop: Callable[[], bool],
    ) -> None:
        address = context.extra.get("ray_address") or os.environ.get("RAY_ADDRESS")
        ray = import_ray(local=not address)
        started = not ray.is_initialized()
        if started:
            connect(ray, address, context)
        try:
            placement = plan_placement(ray.cluster_resources(), context)
            with _quiet_data(ray):
                for item in work:
                    if should_stop():
                        return
                    # Built here, before dispatch: actors only load it (from a shared disk).
                    try:
                        prepare_checkpoint(item)
                    except Exception as e:  # this model is out; the others still run
                        fail_remaining(item, set(), model_failure(e), sink)
                        continue
                    run_model(ray, item, context, placement, sink, should_stop)
        finally:
            if started:
                ray.shutdown()


def connect(ray: ModuleType, address: str | None, context: BackendContext) -> None:
    """Join the cluster at `address`, or start a local Ray with a CPU for every actor."""
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        return
    asked = _actor_count(context.extra.get("ray_actors")) or DEFAULT_CPU_ACTORS
    ray.init(
        num_cpus=max(os.cpu_count() or 1, asked),
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )


def run_model(
    ray: ModuleType,
    item: ModelWork,
    context: BackendContext,
    placement: Placement,
    sink: Sink,
    should_stop: Callable[[], bool],
) -> None:
    """Answer one model's requests on a pool of actors, handing each batch to `sink`."""
    size = context.batch_size or preferred_batch(item.spec)
    blocks = _blocks(item.requests, item.batches, size)
    actor_context = replace(item.identity.context(context), device=placement.device)
    ledger = ray.remote(num_cpus=0)(AttemptLedger).remote()
    dataset = ray.data.from_pandas(blocks).map_batches(
        ModelActor,
        fn_constructor_kwargs={
            "spec": item.spec,
            "context": actor_context,
            "threads": None if placement.gpus else 1,
            "ledger": ledger,
        },
        batch_size=size,
        batch_format="pandas",
        # More actors than batches would only load the model for nothing.
        compute=ray.data.ActorPoolStrategy(size=min(placement.actors, len(blocks))),
        num_gpus=placement.gpus or None,
        num_cpus=None if placement.gpus else 1,
    )
    pending = set(range(len(item.requests)))
    reason = LOST
    batches = iter(dataset.iter_batches(batch_size=None, batch_format="pandas"))
    try:
        for frame in batches:
            answered = list(_outputs(frame))
            if answered:
                sink([item.requests[i] for i, _ in answered], [o for _, o in answered])
                pending.difference_update(i for i, _ in answered)
            if should_stop():
                return
    except ray.exceptions.RayActorError as e:
        if not e.actor_init_failed:
            raise
        # As in-process, a model that cannot load fails its jobs and the run goes on; the
        # message's last line is the constructor's exception (the traceback is in the Ray log).
        cause = str(e).strip().splitlines()[-1]
        reason = f"{MODEL_FAILED}: model {item.spec.id}: its Ray actor could not start: {cause}"
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        ray.kill(ledger)
    lost = sorted(pending)
    for start in range(0, len(lost), size):
        chunk = lost[start : start + size]
        sink([item.requests[i] for i in chunk], [Output(None, error=reason)] * len(chunk))
