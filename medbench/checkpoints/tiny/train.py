"""Fine-tune tiny demonstration models on the sample images: plain PyTorch, CPU, one thread, seeded.

A trained tiny model learns to answer each sample image, asked in the wordings its spec names,
with the label's name (or `yes` / `no`): teacher-forced cross-entropy on the answer tokens only.
It fits the wordings it saw and drifts on the others, which is what the quickstart shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.errors import BackendError
from medbench.run import Example, step
from medbench.spec import TinySpec

SPLIT_COST = 256
"""The padded tokens one more forward pass is worth, when a batch is split by length."""
_IGNORE = -100


@dataclass(frozen=True)
class TrainingLog:
    """How a training went: the loss at every step, and the time it took (not written down)."""

    losses: tuple[float, ...]
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The deterministic part, for `medbench_tiny.json`: steps and the loss curve."""
        tenth = max(1, len(self.losses) // 10)
        curve = [
            round(sum(part) / len(part), 4)
            for part in (self.losses[i : i + tenth] for i in range(0, len(self.losses), tenth))
        ]
        return {
            "steps": len(self.losses),
            "loss_first": round(self.losses[0], 4) if self.losses else None,
            "loss_last": round(self.losses[-1], 4) if self.losses else None,
            "loss_curve": curve,
        }


@contextmanager
def _deterministic_cpu() -> Iterator[None]:
    """One thread and deterministic kernels while training; the previous settings afterwards."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def train_tiny_model(
    start_dir: Path, out_dir: Path, spec: TinySpec, examples: Sequence[Example]
) -> TrainingLog:
    """Fine-tune the model in `start_dir` on `examples`; save it and its processor to `out_dir`."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    with _deterministic_cpu():
        torch.manual_seed(spec.seed)
        processor = AutoProcessor.from_pretrained(start_dir)  # type: ignore[no-untyped-call]
        model: Any = AutoModelForImageTextToText.from_pretrained(start_dir, dtype=torch.float32)
        encoded, pixels = _encode(processor, examples)
        started = time.perf_counter()
        losses = _fit(model, encoded, pixels, spec, processor.tokenizer.pad_token_id)
        seconds = time.perf_counter() - started
        model.eval()
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
    return TrainingLog(tuple(losses), seconds)


@dataclass(frozen=True)
class _Encoded:
    """A tokenized example: token tensors (labels -100 outside the answer) and its image's index."""

    tokens: dict[str, Any]
    image: int


def _encode(processor: Any, examples: Sequence[Example]) -> tuple[list[_Encoded], Any]:
    """Tokenize each distinct prompt once and preprocess each distinct image once."""
    import torch

    from medbench.data import ImageError, load_image
    from medbench.run.backends.hf import conversation, supports_system_role

    def render_text(turns: list[dict[str, Any]], prompt: bool = True) -> str:
        return str(
            processor.apply_chat_template(turns, add_generation_prompt=prompt, tokenize=False)
        )

    system_role = supports_system_role(render_text)
    image_index: dict[str, int] = {}
    images: list[Any] = []
    prompts: dict[tuple[str | None, str, str, str], dict[str, Any]] = {}
    encoded: list[_Encoded] = []
    for example in examples:
        messages = example.messages
        if len(messages.images) != 1:
            raise BackendError("a training example must hold exactly one image")
        path = messages.images[0].path
        if path not in image_index:
            try:
                image = load_image(path)
            except ImageError:
                continue  # an image that cannot be decoded is left out of the training
            image_index[path] = len(images)
            images.append(image)
        key = (messages.system, messages.text, messages.image_position, example.target)
        if key not in prompts:
            turns = conversation(
                messages.system,
                messages.text,
                [images[image_index[path]]],
                system_role=system_role,
                image_after=messages.image_after,
            )
            prompts[key] = _answer_tokens(
                processor, turns, images[image_index[path]], example.target, render_text
            )
        encoded.append(_Encoded(prompts[key], image_index[path]))
    pixels = torch.cat(
        [
            processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
            for image in images
        ]
    )
    return encoded, pixels


def _answer_tokens(
    processor: Any,
    turns: list[dict[str, Any]],
    image: Any,
    target: str,
    render_text: Callable[..., str],
) -> dict[str, Any]:
    """The tokens of prompt + answer, labelled on the answer (and its end-of-turn) only."""
    answer = {"role": "assistant", "content": [{"type": "text", "text": target}]}
    prompt, full = render_text(turns), render_text([*turns, answer], False)
    if not full.startswith(prompt) or len(full) == len(prompt):
        raise BackendError("the chat template does not extend the prompt with the answer")
    short = processor(text=[prompt], images=[[image]], return_tensors="pt")
    tokens = processor(text=[full], images=[[image]], return_tensors="pt")
    n = short["input_ids"].shape[1]
    if not bool((tokens["input_ids"][0, :n] == short["input_ids"][0]).all()):
        raise BackendError(f"the answer {target!r} changes how the prompt is tokenized")
    row = {k: v[0] for k, v in tokens.items() if k != "pixel_values" and not v.is_floating_point()}
    labels = row["input_ids"].clone()
    labels[:n] = _IGNORE
    return {**row, "labels": labels}


_PAD_VALUES = {"input_ids": None, "attention_mask": 0, "labels": _IGNORE}


def _collate(items: Sequence[_Encoded], pixels: Any, pad_id: int) -> dict[str, Any]:
    """Right-pad a batch (positions then count from 0, as in generation) and add its images."""
    import torch
    from torch.nn.functional import pad

    length = max(item.tokens["input_ids"].shape[0] for item in items)
    batch: dict[str, Any] = {}
    for name in items[0].tokens:
        fill = _PAD_VALUES.get(name, 0)
        batch[name] = torch.stack(
            [
                pad(
                    item.tokens[name],
                    (0, length - item.tokens[name].shape[0]),
                    value=pad_id if fill is None else fill,
                )
                for item in items
            ]
        )
    batch["pixel_values"] = pixels[[item.image for item in items]]
    return batch


def _batches(count: int, size: int, generator: Any) -> Iterator[list[int]]:
    """Endless seeded batches: the examples in a shuffled order, epoch after epoch."""
    import torch

    drawn: list[int] = []
    while True:
        while len(drawn) < size:
            drawn += torch.randperm(count, generator=generator).tolist()
        batch, drawn = drawn[:size], drawn[size:]
        yield batch


def _split_by_length(batch: list[int], lengths: Sequence[int]) -> list[list[int]]:
    """The batch sorted by length, cut in two where that pads least (a few long prompts apart).

    The parts share one gradient step, so the split changes the cost, not what is learned.
    """
    ordered = sorted(batch, key=lambda i: (lengths[i], i))
    size, longest = len(ordered), lengths[ordered[-1]]

    def cost(cut: int) -> int:
        parts = cut * lengths[ordered[cut - 1]] + (size - cut) * longest
        return parts + (SPLIT_COST if cut < size else 0)

    cut = min(range(1, size + 1), key=cost)
    return [part for part in (ordered[:cut], ordered[cut:]) if part]


def _fit(
    model: Any, encoded: Sequence[_Encoded], pixels: Any, spec: TinySpec, pad_id: int
) -> list[float]:
    """AdamW with linear warm-up and decay, seeded batches, loss on the answer tokens only."""
    import torch
    from torch.nn.functional import cross_entropy

    generator = torch.Generator().manual_seed(spec.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr)
    warmup = max(1, spec.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: min(1.0, (i + 1) / warmup) * (1.0 - i / max(1, spec.steps))
    )
    model.train()
    lengths = [item.tokens["input_ids"].shape[0] for item in encoded]
    answered = [int((item.tokens["labels"][1:] != _IGNORE).sum()) for item in encoded]
    batches = _batches(len(encoded), spec.batch_size, generator)
    losses: list[float] = []
    with step("fine-tuning", total=spec.steps) as shown:
        for _ in range(spec.steps):
            chosen = next(batches)
            total = sum(answered[i] for i in chosen)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for part in _split_by_length(chosen, lengths):
                batch = _collate([encoded[i] for i in part], pixels, pad_id)
                labels = batch.pop("labels")
                logits = model(**batch).logits
                # Summed, then divided by the whole batch's answer tokens: the batch's mean.
                loss: Any = cross_entropy(
                    logits[:, :-1].reshape(-1, logits.shape[-1]),
                    labels[:, 1:].reshape(-1),
                    ignore_index=_IGNORE,
                    reduction="sum",
                ) / max(1, total)
                loss.backward()
                step_loss += float(loss.item())
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(step_loss)
            shown.advance(details=f"loss {step_loss:.3f}")
    return losses
