"""The GPU check a maintainer runs on a GPU machine (`scripts/gpu_check.sh`): each shipped real
model found in the local Hugging Face cache answers sample images at batch 1 and at the
automatic batch size; it prints load time, images/s, peak memory and how many answers differ.

Run as `python -m medbench.checks.gpu [--model M ...] [--device cpu --dtype float32]`; the CPU
options exist so that the tests can run the same code on a tiny model. `--device-map auto`
loads each model spread over every visible GPU by accelerate (the models' `device_map`), for a
maintainer checking a model too big for one GPU; peak memory is then summed over the GPUs.
Where vLLM is installed (on a GPU), each model also answers the same requests through the
`vllm` backend: its load time, images/s and how many answers differ from the hf backend's.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.checks.calibrate import gpu_name, measure_speed
from medbench.checks.vllm_check import check_vllm, vllm_available
from medbench.data import hf_cache_dir, load_samples
from medbench.errors import MedbenchError
from medbench.run import default_cache_path, resolve_identity
from medbench.run.backends import BackendContext, Request
from medbench.run.cost import Calibration, Speed, checkpoint_folder, write_calibration
from medbench.spec import ImageRef, ModelSpec, render
from medbench.spec.loading import SpecSet, load_specs

FAMILY = "closed_diagnosis"
DEFAULT_BUDGET_S = 540.0
"""No model is started after this many seconds, so the check ends within 10 minutes."""


@dataclass(frozen=True)
class Result:
    """What one model did in the check."""

    model: str
    load_s: float
    batch1_per_s: float
    auto_batch: int
    auto_per_s: float
    peak_mib: float | None
    differ: int
    answers: int
    placement: str | None = None
    """With a device map: the strategy and the devices the model was spread over."""
    speed: Speed | None = None
    """With `--calibration`: the measured prefill and decode speeds."""
    texts: tuple[str | None, ...] = ()
    """The answers at the automatic batch size (compared with vLLM's, when installed)."""

    def line(self) -> str:
        peak = f"{self.peak_mib:.0f} MiB" if self.peak_mib is not None else "n/a (not CUDA)"
        placed = f" ({self.placement})" if self.placement is not None else ""
        return (
            f"{self.model}{placed}: load {self.load_s:.1f} s; "
            f"batch 1: {self.batch1_per_s:.2f} images/s; "
            f"auto batch {self.auto_batch}: {self.auto_per_s:.2f} images/s; peak memory {peak}; "
            f"{self.differ} of {self.answers} answers differ between batch 1 and batch "
            f"{self.auto_batch}"
        )


def in_hf_cache(spec: ModelSpec, cache: Path) -> bool:
    """Whether a hub model's files are in the local Hugging Face cache (a snapshot with a
    config), so that the check loads it without downloading."""
    if spec.repo is None:
        return False
    snapshots = cache / f"models--{spec.repo.replace('/', '--')}" / "snapshots"
    return any(snapshots.glob("*/config.json"))


def choose_models(specs: SpecSet, asked: Sequence[str], cache: Path) -> tuple[list[str], list[str]]:
    """The models to check and a line per shipped real model skipped (with why)."""
    if asked:
        return list(asked), []
    chosen: list[str] = []
    skipped: list[str] = []
    for model_id, spec in sorted(specs.models.items()):
        if spec.backend != "hf" or spec.test_model or spec.text_only:
            continue
        if spec.checkpoint_format != "hf":
            skipped.append(f"skip {model_id}: its checkpoint must be converted first")
        elif spec.repo is not None and not in_hf_cache(spec, cache):
            skipped.append(f"skip {model_id}: {spec.repo} is not in the local HF cache ({cache})")
        elif spec.path is not None:
            skipped.append(
                f"skip {model_id}: a local checkpoint (`path:`); pass --model to check it"
            )
        else:
            chosen.append(model_id)
    return chosen, skipped


def sample_requests(specs: SpecSet, images: int) -> list[Request]:
    """`images` sample images spread over the fixed-label tasks, each asked by two variants of
    the closed family: the reference and one with a system prompt."""
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
    requests = []
    for task_id, sample in picked:
        for variant in variants:
            image = ImageRef(str(sample.path), sample.sha256)
            messages = render(family, variant, specs.tasks[task_id], (image,)).messages
            key = f"{task_id}/{sample.id}/{variant.id}"
            requests.append(Request(key, messages))
    return requests


def check_model(
    specs: SpecSet,
    model_id: str,
    requests: list[Request],
    device: str,
    dtype: str,
    state: Path,
    device_map: str | None = None,
    calibrate: bool = False,
) -> Result:
    """Load one model, answer the requests at batch 1 and then at the automatic size."""
    from medbench.run.backends.hf import HFBackend
    from medbench.run.executors import ModelWork, prepare_checkpoint

    update: dict[str, Any] = {"dtype": dtype}
    if device_map is not None:
        update["device_map"] = device_map
    spec = specs.models[model_id].model_copy(update=update)
    identity = resolve_identity(spec, specs.root, state / "models", specs=specs)
    prepare_checkpoint(ModelWork(spec, identity, requests))
    # the checkpoint folder, or the commit sha the identity resolved: loaded exactly
    context = identity.context(BackendContext(device=device, state_dir=state))
    started = time.perf_counter()
    backend = HFBackend(spec, context)
    load_s = time.perf_counter() - started
    placement = None
    if device_map is not None:
        devices = sorted({str(p.device) for p in backend._loaded.model.parameters()})
        placement = f"device_map {device_map} over {', '.join(devices)}"
    try:
        backend.set_batch_size(1)
        backend.generate(requests[:1])  # warm-up: kernels and caches, not timed
        reset_peak(device)
        one, one_s = timed(backend, requests)
        backend.set_batch_size(None)
        auto, auto_s = timed(backend, requests)
        size = backend.sizer.size if backend.sizer.settled else backend.sizer.largest_fit
        peak = peak_mib(device)
        speed = None
        if calibrate:
            folder = identity.checkpoint_dir or checkpoint_folder(
                None, spec.repo, identity.revision
            )
            speed = measure_speed(backend, spec, folder, requests)
    finally:
        backend.close()
    differ = sum(a != b for a, b in zip(one, auto, strict=True))
    n = len(requests)
    return Result(
        model_id,
        load_s,
        n / one_s,
        size,
        n / auto_s,
        peak,
        differ,
        n,
        placement,
        speed,
        tuple(auto),
    )


def timed(backend: Any, requests: list[Request]) -> tuple[list[str | None], float]:
    started = time.perf_counter()
    outputs = backend.generate(requests)
    failed = [o.error for o in outputs if o.error is not None]
    if failed:
        raise MedbenchError(f"{len(failed)} of {len(outputs)} requests failed: {failed[0]}")
    return [o.text for o in outputs], max(time.perf_counter() - started, 1e-9)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Check each model; 0 if every checked model answered, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m medbench.checks.gpu", description=__doc__)
    parser.add_argument("--specs", type=Path, default=Path("specs"))
    parser.add_argument("--model", action="append", default=[], help="Check only this model.")
    parser.add_argument("--images", type=int, default=16, help="Sample images (x 2 variants).")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument(
        "--device-map",
        choices=["auto", "balanced", "balanced_low_0", "sequential"],
        help="Spread each model over every visible GPU (accelerate), as a spec's `device_map`.",
    )
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S)
    parser.add_argument(
        "--calibration",
        type=Path,
        help="Also measure prefill and decode tokens/s and write them to this file "
        "(for `medbench plan --cost --calibration FILE`).",
    )
    args = parser.parse_args(argv)
    specs = load_specs(args.specs)
    chosen, skipped = choose_models(specs, args.model, hf_cache_dir())
    for line in skipped:
        print(line, flush=True)
    requests = sample_requests(specs, args.images)
    state = default_cache_path().parent
    started = time.perf_counter()
    checked, failed = 0, 0
    speeds: dict[str, Speed] = {}
    for model_id in chosen:
        if time.perf_counter() - started > args.budget_s:
            print(f"skip {model_id}: the time budget of {args.budget_s:g} s is spent", flush=True)
            skipped.append(model_id)
            continue
        try:
            result = check_model(
                specs,
                model_id,
                requests,
                args.device,
                args.dtype,
                state,
                args.device_map,
                calibrate=args.calibration is not None,
            )
        except Exception as e:  # one model failing never stops the check
            failed += 1
            print(f"{model_id}: FAILED: {type(e).__name__}: {e}", flush=True)
            continue
        checked += 1
        print(result.line(), flush=True)
        if vllm_available() and args.device != "cpu":
            try:
                texts = list(result.texts)
                print(check_vllm(specs, model_id, requests, texts, args.dtype, state), flush=True)
            except Exception as e:  # the hf check stands; vLLM's failure is reported
                print(f"{model_id} (vllm): FAILED: {type(e).__name__}: {e}", flush=True)
        if result.speed is not None:
            speeds[model_id] = result.speed
            print(
                f"{model_id}: prefill {result.speed.prefill_tokens_per_s:,.0f} tokens/s, "
                f"decode {result.speed.decode_tokens_per_s:,.0f} tokens/s "
                f"(batch {result.speed.batch_size})",
                flush=True,
            )
    if args.calibration is not None and speeds:
        write_calibration(args.calibration, Calibration(gpu_name(args.device), speeds))
        print(f"calibration written to {args.calibration}", flush=True)
    print(f"{checked} models checked, {failed} failed, {len(skipped)} skipped.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
