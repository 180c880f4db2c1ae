"""One model's part of the GPU check, run in a child process under the model's time limit: it
loads the model in its spec's own dtype, answers the sample requests at batch 1 and at the
automatic batch size, scores one likelihood batch, writes one description at the description
family's budget (optionally measures its speeds, and compares vLLM), sending each measurement
to the parent as soon as it is made."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.checks.calibrate import measure_speed
from medbench.checks.deadline import Send
from medbench.checks.gpu_report import (
    Answered,
    Begun,
    Calibrated,
    Described,
    Loaded,
    Note,
    Peak,
    Scored,
)
from medbench.checks.vllm_check import check_vllm, vllm_available
from medbench.data import load_samples
from medbench.errors import MedbenchError
from medbench.run import resolve_identity
from medbench.run.backends import BackendContext, Request
from medbench.run.cost import checkpoint_folder
from medbench.spec import ImageRef, ModelSpec, for_model, render, token_budget
from medbench.spec.loading import SpecSet, load_specs

FAMILY = "closed_diagnosis"
DESCRIBE = "describe_findings"


@dataclass(frozen=True)
class ModelCheck:
    """What the child needs to check one model (sent to it pickled)."""

    specs: Path
    model: str
    images: int
    device: str
    state: Path
    device_map: str | None = None
    calibrate: bool = False
    vllm: bool = False
    """Also answer the requests through the vLLM backend (where it is installed)."""


def sample_requests(specs: SpecSet, images: int, model: ModelSpec | None = None) -> list[Request]:
    """`images` sample images spread over the fixed-label tasks, each asked by two variants of
    the closed family (the reference and one with a system prompt), as a run asks `model`: its
    default system text, the family's token budget, the offered options (for likelihoods)."""
    family = specs.families[FAMILY]
    reference = next(v for v in family.variants if v.id == family.reference)
    other = next((v for v in family.variants if v.system and v is not reference), None)
    variants = [reference, other or next(v for v in family.variants if v is not reference)]
    per_task = {  # the closed family asks fixed labels: closed-VQA tasks are not its to ask
        t: load_samples(task, "sample", specs.root)
        for t, task in sorted(specs.tasks.items())
        if not task.per_sample
    }
    picked: list[tuple[str, Any]] = []
    depth = 0
    while len(picked) < images and any(depth < len(s) for s in per_task.values()):
        for task_id, samples in per_task.items():
            if depth < len(samples) and len(picked) < images:
                picked.append((task_id, samples[depth]))
        depth += 1
    system = model.default_system if model is not None else None
    budget = token_budget(model, family) if model is not None else None
    requests = []
    for task_id, sample in picked:
        image = ImageRef(str(sample.path), sample.sha256)
        for variant in variants:
            rendered = render(family, variant, specs.tasks[task_id], (image,))
            key = f"{task_id}/{sample.id}/{variant.id}"
            messages = for_model(rendered.messages, system)
            requests.append(Request(key, messages, rendered.options, max_new_tokens=budget))
    return requests


def describe_request(specs: SpecSet, model: ModelSpec, image: Request) -> Request:
    """The description family's reference prompt about the first request's image, at the
    family's budget for `model` (a description runs to paragraphs)."""
    family = specs.families[DESCRIBE]
    variant = next(v for v in family.variants if v.id == family.reference)
    task = specs.tasks[image.key.split("/", 1)[0]]
    rendered = render(family, variant, task, image.messages.images)
    budget = token_budget(model, family)
    messages = for_model(rendered.messages, model.default_system)
    return Request(f"{image.key}/{DESCRIBE}", messages, max_new_tokens=budget)


def check_model(check: ModelCheck, send: Send) -> None:
    """Load the model and run every step, sending each measurement as it is made."""
    from medbench.run.backends.hf import HFBackend
    from medbench.run.executors import ModelWork, prepare_checkpoint

    specs = load_specs(check.specs)
    spec = specs.models[check.model]  # its own dtype: what a run loads
    if check.device_map is not None:
        spec = spec.model_copy(update={"device_map": check.device_map})
    requests = sample_requests(specs, check.images, spec)
    identity = resolve_identity(spec, specs.root, check.state / "models", specs=specs)
    prepare_checkpoint(ModelWork(spec, identity, requests))
    # the checkpoint folder, or the commit sha the identity resolved: loaded exactly
    context = identity.context(BackendContext(device=check.device, state_dir=check.state))
    send(Begun("load"))
    started = time.perf_counter()
    backend = HFBackend(spec, context)
    load_s = time.perf_counter() - started
    try:
        send(Loaded(load_s, str(backend._loaded.dtype).removeprefix("torch."), placed(backend)))
        send(Begun("batch 1"))
        backend.set_batch_size(1)
        backend.generate(requests[:1])  # warm-up: kernels and caches, not timed
        reset_peak(check.device)
        send(answer(backend, requests, auto=False))
        send(Peak(peak_mib(check.device)))
        send(Begun("auto batch"))
        backend.set_batch_size(None)
        texts = answer(backend, requests, auto=True)
        send(texts)
        send(Peak(peak_mib(check.device)))
        if check.calibrate:  # at the automatic size, as a run goes
            send(Begun("calibration"))
            folder = identity.checkpoint_dir or checkpoint_folder(
                None, spec.repo, identity.revision
            )
            send(Calibrated(measure_speed(backend, spec, folder, requests)))
        send(Begun("likelihood"))
        send(score_batch(backend, requests))
        send(Peak(peak_mib(check.device)))
        send(Begun("description"))
        send(describe(backend, describe_request(specs, spec, requests[0])))
        send(Peak(peak_mib(check.device)))
    finally:
        backend.close()
    if check.vllm and vllm_available():
        send(Begun("vllm"))
        send(Note(check_vllm(specs, check.model, requests, list(texts.texts), check.state)))


def placed(backend: Any) -> str | None:
    """With a device map: the strategy and the devices the model was spread over."""
    device_map = backend.spec.device_map
    if device_map is None:
        return None
    devices = sorted({str(p.device) for p in backend._loaded.model.parameters()})
    return f"device_map {device_map} over {', '.join(devices)}"


def answer(backend: Any, requests: list[Request], *, auto: bool) -> Answered:
    """The requests answered at the backend's batch size (timed); a failed request fails all."""
    started = time.perf_counter()
    outputs = backend.generate(requests)
    seconds = max(time.perf_counter() - started, 1e-9)
    failed = [o.error for o in outputs if o.error is not None]
    if failed:
        raise MedbenchError(f"{len(failed)} of {len(outputs)} requests failed: {failed[0]}")
    sizer = backend.sizer
    size = (sizer.size if sizer.settled else sizer.largest_fit) if auto else 1
    return Answered(int(size or 1), auto, len(requests) / seconds, tuple(o.text for o in outputs))


def score_batch(backend: Any, requests: list[Request]) -> Scored:
    """The options of one batch of requests (as many as the settled batch size) scored."""
    from medbench.run.backends.hf import OptionScorer

    scorer = OptionScorer(backend)
    batch = requests[: max(1, scorer.rows)]
    started = time.perf_counter()
    scores = scorer.score(batch)
    seconds = max(time.perf_counter() - started, 1e-9)
    failed = [s.error for s in scores if s.error is not None]
    if failed:
        raise MedbenchError(f"{len(failed)} of {len(scores)} likelihoods failed: {failed[0]}")
    return Scored(len(batch), scorer.forward_passes, len(batch) / seconds)


def describe(backend: Any, request: Request) -> Described:
    """One description generated alone at its family's budget (timed, its tokens counted)."""
    backend.set_batch_size(1)
    started = time.perf_counter()
    (output,) = backend.generate([request])
    seconds = time.perf_counter() - started
    if output.error is not None:
        raise MedbenchError(f"the description failed: {output.error}")
    tokenizer = backend._loaded.tokenizer
    tokens = len(tokenizer.encode(output.text or "", add_special_tokens=False))
    budget = request.max_new_tokens or backend.spec.generation.max_new_tokens
    return Described(tokens, budget, seconds, output.finish_reason)


def reset_peak(device: str) -> None:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(index)


def peak_mib(device: str) -> float | None:
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return None
    # every GPU: a model spread by a device map uses several
    total = sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count()))
    return float(total) / 2**20
