"""The GPU check's calibration: a loaded model's prefill and decode speeds, in tokens per second
of the whole batch, for `medbench plan --cost --calibration`."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from medbench.run.backends import Request
from medbench.run.cost import Speed, TextCounter, image_rule
from medbench.spec import ModelSpec


def prompt_tokens(spec: ModelSpec, folder: Any, requests: list[Request]) -> int:
    """The prompt tokens of `requests` by the cost's own counting (text and image tokens)."""
    from PIL import Image

    rule = None if spec.text_only else image_rule(spec.family, folder)
    text = TextCounter(folder)
    total = 0
    for request in requests:
        messages = request.messages
        total += text.count((messages.system or "") + messages.text)
        for image in messages.images:
            with Image.open(image.path) as opened:
                total += rule.tokens(*opened.size) if rule is not None else 0
    return total


def measure_speed(backend: Any, spec: ModelSpec, folder: Any, requests: list[Request]) -> Speed:
    """Time `requests` at the backend's batch size with one new token (prefill) and with their
    own budgets (prefill and decode): the difference is the decode."""
    started = time.perf_counter()
    backend.generate([replace(r, max_new_tokens=1) for r in requests])
    prefill_s = max(time.perf_counter() - started, 1e-9)
    started = time.perf_counter()
    outputs = backend.generate(requests)
    total_s = time.perf_counter() - started
    tokenizer = backend._loaded.tokenizer
    decoded = sum(len(tokenizer.encode(o.text or "", add_special_tokens=False)) for o in outputs)
    decode_s = max(total_s - prefill_s, 1e-9)
    sizer = backend.sizer
    batch = sizer.size if sizer.settled else sizer.largest_fit
    return Speed(
        prefill_tokens_per_s=prompt_tokens(spec, folder, requests) / prefill_s,
        decode_tokens_per_s=max(decoded, 1) / decode_s,
        batch_size=int(batch or 1),
    )


def gpu_name(device: str) -> str:
    """The name of the GPU the check ran on (`cpu` on the CPU)."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return "cpu"
    return str(torch.cuda.get_device_name(0))
