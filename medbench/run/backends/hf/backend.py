"""HFBackend: batched, left-padded generation with images decoded ahead of the model."""

from __future__ import annotations

import copy
import gc
import hashlib
import itertools
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import perf_counter
from typing import Any

# This package is the backend that needs torch; load_backend imports it only when it is used.
import torch  # noqa: TID253
from PIL import Image

from medbench.data import ImageError, load_image
from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.backends.hf.chat import (
    Conversation,
    hoisted_image_token,
    image_processor_name,
    inlined,
    model_conversation,
    system_role,
)
from medbench.run.backends.hf.finish import batch_config, cut_rows, stop_ids
from medbench.run.backends.hf.loading import Loaded, load
from medbench.run.backends.hf.prefix import (
    NoCache,
    Prefill,
    Sharing,
    generate_shared,
    image_count,
    plan_sharing,
    real_tokens,
    whole_images,
)
from medbench.run.backends.padding import square_padding
from medbench.run.batching import MAX_AUTO_BATCH, BatchMemory, BatchSizer
from medbench.spec import GenerationSpec, Messages, ModelSpec

Inputs = dict[str, torch.Tensor]


@dataclass
class _Row:
    """A request whose images decoded: its position in the call and its conversation."""

    index: int
    conversation: Conversation
    max_new_tokens: int | None = None
    """The request's own token budget (None: the model's)."""
    images: list[Image.Image] = field(default_factory=list)
    """Images the conversation writes into its text as image tokens (after the text, for a
    template that puts image parts first): given to the processor beside the rendered text."""


@dataclass
class _Batch:
    """A chunk of requests prepared off the main thread: encoded rows and per-request failures."""

    rows: list[_Row]
    inputs: Inputs | None
    """None when the rows could not be encoded together (they are then encoded one by one)."""
    failures: dict[int, str] = field(default_factory=dict)


class HFBackend:
    """A transformers model answering requests in batches; outputs do not depend on batch size."""

    automatic_batch = True
    """Without a batch size the backend finds one itself (the runner then plans no batches)."""

    def __init__(self, spec: ModelSpec, context: BackendContext) -> None:
        self.spec = spec
        self._loaded = load(spec, context)
        self._memory = BatchMemory(context.state_dir) if context.state_dir is not None else None
        self._memory_key = (memory_model_key(spec), device_key(self._loaded))
        self._remembered: int | None = None
        if context.batch_size is not None:
            self._sizer = BatchSizer.fixed(context.batch_size)
        else:
            if self._memory is not None:
                self._remembered = self._memory.get(*self._memory_key)
            self._sizer = BatchSizer.automatic(self._remembered)
            if self._remembered is not None:
                self._say(f"auto batch size {self._remembered} (remembered in {self._memory_path})")
        self._text_only = spec.text_only
        self._generation = generation_config(
            self._loaded.model, spec.generation, self._loaded.tokenizer
        )
        self._system_role = system_role(spec, self._render)
        self._image_token = (
            None if spec.text_only else hoisted_image_token(self._render, self._loaded.processor)
        )
        # Recorded with every answer about images: torchvision and PIL resize differently.
        self.image_processor = image_processor_name(self._loaded.processor)
        self._padding = square_padding(spec, self._loaded.processor)
        self._prefetch = max(1, context.decode_threads)
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=self._prefetch, thread_name_prefix="medbench-decode"
        )
        # Tokenizers keep their padding settings as mutable state: one encode or decode at a time.
        self._processor_lock = threading.Lock()
        self.share_prefix = True
        """Compute the prefix that a batch's rows share (their image, the tokens before it)
        once, and generate each row from it (see `medbench.run.backends.hf.prefix`)."""
        self.prefill = Prefill()
        self._said: set[str] = set()

    @property
    def batch_size(self) -> int:
        """The size the next batch is cut at (it changes while an automatic size is found)."""
        return self._sizer.size

    def set_batch_size(self, size: int | None) -> None:
        """Cut the next batches at `size`, or find the size automatically (None: from 1, or
        from the size remembered for this model and device)."""
        self._sizer = BatchSizer.fixed(size) if size else BatchSizer.automatic(self._remembered)

    @property
    def sizer(self) -> BatchSizer:
        """How the batch size was found: the largest batch that fit, the one that did not."""
        return self._sizer

    @property
    def system_role(self) -> bool:
        """Whether system prompts go in a system turn (else they are folded or dropped)."""
        return self._system_role

    def prompt(self, messages: Messages) -> str:
        """The text the chat template makes of `messages`, images left as their placeholders."""
        return self._render(self._conversation(messages, [None] * len(messages.images)))

    def _padded(self, messages: Messages, images: list[Image.Image]) -> list[Image.Image]:
        """The decoded images of `messages` padded as the spec's `image_preprocess` says."""
        padding = self._padding
        if padding is None:
            return images
        return [padding.apply(ref.path, i) for ref, i in zip(messages.images, images, strict=True)]

    def _images_by(self, request: Request) -> str | None:
        return self.image_processor if request.messages.images else None

    def _conversation(
        self, messages: Messages, images: Sequence[Image.Image | None]
    ) -> Conversation:
        return model_conversation(self.spec, self._system_role, messages, images, self._image_token)

    def _row(
        self,
        index: int,
        messages: Messages,
        images: Sequence[Image.Image],
        max_new_tokens: int | None = None,
    ) -> _Row:
        """A request's row: its conversation, and the images its text holds as tokens."""
        own = list(images) if inlined(messages, images, self._image_token) else []
        return _Row(index, self._conversation(messages, images), max_new_tokens, own)

    def generate(self, requests: Sequence[Request]) -> list[Output]:
        """Answer each request in order; while one batch generates, the next ones are decoded."""
        if self._pool is None:
            raise RuntimeError("HFBackend.generate called after close()")
        outputs: dict[int, Output] = {}
        for indices, answers in self.stream(requests):
            outputs.update(zip(indices, answers, strict=True))
        return [outputs[i] for i in range(len(requests))]

    def stream(
        self, requests: Sequence[Request], sizes: Sequence[int] | None = None
    ) -> Iterator[tuple[list[int], list[Output]]]:
        """Yield each batch's (request indices, outputs) as soon as it is generated, so that
        the caller can store it while the next batches are decoded in the background.

        `sizes`: the lengths of the consecutive batches to generate (the runner's, at a fixed
        batch size); None: runs of the backend's batch size, found automatically if unset, cut
        between two images where one lies within it (an image's prompts share a prefix)."""
        if self._pool is None:
            raise RuntimeError("HFBackend.stream called after close()")
        pool = self._pool
        if sizes is not None and sum(sizes) != len(requests):
            raise ValueError(f"batch sizes {list(sizes)} do not cover {len(requests)} requests")
        planned = iter(itertools.accumulate(sizes)) if sizes is not None else None
        cursor = 0
        pending: deque[Future[_Batch]] = deque()

        def submit_next() -> None:
            # Cut when submitted: as the runner planned them, else at the current size (an
            # automatic size grows, or shrinks, as batches finish).
            nonlocal cursor
            if cursor < len(requests):
                stop = (
                    next(planned)
                    if planned is not None
                    else whole_images(requests, cursor, cursor + self._sizer.size)
                )
                chunk = range(cursor, stop)
                cursor = chunk.stop
                pending.append(pool.submit(self._prepare, requests, chunk))

        try:
            for _ in range(self._prefetch):
                submit_next()
            while pending:
                start = perf_counter()
                batch = pending.popleft().result()
                submit_next()
                answers = self._answer(batch)
                share = (perf_counter() - start) / max(1, len(batch.rows))
                outputs = {
                    i: replace(o, seconds=share, image_processor=self._images_by(requests[i]))
                    for i, o in answers.items()
                }
                outputs.update(
                    {i: Output(text=None, error=reason) for i, reason in batch.failures.items()}
                )
                indices = sorted(outputs)
                yield indices, [outputs[i] for i in indices]
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        """Stop the decode threads and free the model; the backend cannot be used afterwards."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._report_batch_size()
        if hasattr(self, "_loaded"):
            device = self._loaded.device
            del self._loaded
            if device.type == "cuda":
                gc.collect()
                torch.cuda.empty_cache()

    @property
    def _memory_path(self) -> Path | None:
        return self._memory.path if self._memory is not None else None

    def _say(self, message: str) -> None:
        print(f"{self.spec.id} on {self._memory_key[1]}: {message}", file=sys.stderr)

    def _report_batch_size(self) -> None:
        """Say what automatic batching found, and remember it once it is known."""
        sizer = self._sizer
        if not sizer.auto or sizer.largest_fit == 0:
            return
        if not sizer.settled:
            self._say(
                f"auto batch size: batches of up to {sizer.largest_fit} fit; too few requests "
                "to find the limit, nothing remembered"
            )
            return
        if sizer.size == self._remembered:
            return
        where = ""
        if self._memory is not None:
            self._memory.put(*self._memory_key, sizer.size)
            where = f", remembered in {self._memory.path}"
        limit = (
            f"out of memory at {sizer.out_of_memory_at}"
            if sizer.out_of_memory_at is not None
            else f"the most medbench tries is {MAX_AUTO_BATCH}"
        )
        self._say(f"auto batch size {sizer.size} ({limit}{where})")

    def _render(self, turns: Conversation) -> str:
        rendered = self._loaded.processor.apply_chat_template(
            turns, add_generation_prompt=True, tokenize=False
        )
        return str(rendered)

    def _prepare(self, requests: Sequence[Request], chunk: range) -> _Batch:
        """Decode the images of a chunk and encode it (runs in a decode thread)."""
        rows: list[_Row] = []
        failures: dict[int, str] = {}
        for index in chunk:
            messages = requests[index].messages
            if messages.images and self._text_only:
                failures[index] = f"model {self.spec.id} is text-only and cannot read images"
                continue
            try:
                images = [load_image(image.path) for image in messages.images]
            except ImageError as e:
                failures[index] = f"image {e}"
                continue
            images = self._padded(messages, images)
            budget = requests[index].max_new_tokens
            rows.append(self._row(index, messages, images, budget))
        try:
            inputs = self._encode(rows) if rows else None
        except Exception:  # one bad row spoils the batch; _answer encodes rows alone to find it
            inputs = None
        return _Batch(rows, inputs, failures)

    def _encode(self, rows: Sequence[_Row]) -> Inputs:
        conversations = [row.conversation for row in rows]
        with self._processor_lock:
            if any(row.images for row in rows):
                encoded = self._encode_inlined(rows)
            elif self._text_only:
                encoded = self._loaded.processor.apply_chat_template(
                    conversations,
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=True,
                    return_tensors="pt",
                    padding=True,
                )
            else:
                encoded = self._loaded.processor.apply_chat_template(
                    conversations,
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=True,
                    return_tensors="pt",
                    processor_kwargs={"padding": True},
                )
        inputs: Inputs = dict(encoded)
        if self._text_only:
            inputs.pop("token_type_ids", None)
        return inputs

    def _encode_inlined(self, rows: Sequence[_Row]) -> Any:
        """Rows some of whose images are tokens in their text, encoded as `apply_chat_template`
        encodes a batch: the rendered texts and each row's images through the processor, its
        special tokens added unless the template wrote BOS itself."""
        texts = [self._render(row.conversation) for row in rows]
        images = [row.images or _image_parts(row.conversation) for row in rows]
        bos = self._loaded.tokenizer.bos_token
        return self._loaded.processor(
            text=texts,
            images=images if any(images) else None,
            padding=True,
            return_tensors="pt",
            add_special_tokens=not (bos and texts[0].startswith(bos)),
        )

    def _answer(self, batch: _Batch) -> dict[int, Output]:
        if batch.inputs is not None:
            return self._generate_splitting(batch.rows, batch.inputs)
        answers: dict[int, Output] = {}
        for row in batch.rows:
            try:
                inputs = self._encode([row])
            except Exception as e:  # the processor rejects this request alone: record why
                answers[row.index] = Output(
                    text=None, error=f"preprocessing failed: {type(e).__name__}: {e}"
                )
                continue
            answers.update(self._generate_splitting([row], inputs))
        return answers

    def _generate_splitting(self, rows: Sequence[_Row], inputs: Inputs) -> dict[int, Output]:
        """Generate for the rows; on CUDA out-of-memory, halve the batch and retry, down to one.

        The retry happens after the `except` block: inside it, the exception's traceback still
        holds the frames of the failed call, and with them its tensors on the GPU.
        """
        failure: str | None = None
        budgets = [row.max_new_tokens or self._generation.max_new_tokens for row in rows]
        images = [image_count(row.conversation) + len(row.images) for row in rows]
        try:
            texts, reasons = self._generate(inputs, budgets, images)
        except torch.OutOfMemoryError as e:
            failure = str(e)
        del inputs
        if failure is None:
            self._sizer.fitted(len(rows))
            precision = str(self._loaded.dtype).removeprefix("torch.")
            return {
                row.index: Output(
                    text=text, batch_size=len(rows), precision=precision, finish_reason=reason
                )
                for row, text, reason in zip(rows, texts, reasons, strict=True)
            }
        self._release_memory()
        self._sizer.out_of_memory(len(rows))
        if len(rows) == 1:
            return {
                rows[0].index: Output(text=None, error=f"out of memory at batch size 1: {failure}")
            }
        half = len(rows) // 2
        answers: dict[int, Output] = {}
        for part in (rows[:half], rows[half:]):
            answers.update(self._generate_splitting(part, self._encode(part)))
        return answers

    def _generate(
        self, inputs: Inputs, budgets: list[int], images: list[int]
    ) -> tuple[list[str], list[str]]:
        """Each row's answer, cut at its own budget, and why it ended (`stop` or `length`);
        from the prefixes the rows share where they can (`images`: each row's image count)."""
        loaded = self._loaded
        config = batch_config(self._generation, budgets)
        sharing = self._sharing(inputs, images, config.max_new_tokens)
        if self._generation.do_sample:
            torch.manual_seed(self.spec.generation.seed or 0)
        prompts = real_tokens(inputs)
        generated: torch.Tensor | None = None
        if sharing is not None:
            try:
                generated, width = generate_shared(
                    loaded.model, sharing, config, self._pad_id, self.to_device
                )
            except NoCache:
                self._say_once("the model returned no KV cache: prompts are computed in full")
            else:
                self.prefill.computed += sharing.prefill_tokens
                self.prefill.shared_batches += 1
        if generated is None:
            on_device = self.to_device(inputs)
            with torch.inference_mode():
                generated = loaded.model.generate(**on_device, generation_config=config)
            width = on_device["input_ids"].shape[1]
            self.prefill.computed += prompts
        self.prefill.prompts += prompts
        new_tokens = generated[:, width:].cpu().tolist()
        rows, reasons = cut_rows(new_tokens, budgets, stop_ids(config))
        with self._processor_lock:
            texts = loaded.tokenizer.batch_decode(rows, skip_special_tokens=True)
        return [str(text).strip() for text in texts], reasons

    def _sharing(self, inputs: Inputs, images: list[int], budget: int) -> Sharing | None:
        """How the batch's rows share prefixes; None (full prompts) where nothing is shared,
        and where something could be but cannot, said once per reason."""
        if not self.share_prefix or not any(images) or len(images) < 2:
            return None
        planned = plan_sharing(self._loaded.model, inputs, images, budget)
        if isinstance(planned, str):
            self._say_once(
                f"a batch shares no prefix ({planned}): its prompts are computed in full"
            )
            return None
        return planned

    def to_device(self, inputs: Inputs) -> Inputs:
        """`inputs` on the model's device, floating-point ones in its dtype."""
        loaded = self._loaded
        return {
            name: value.to(loaded.device, loaded.dtype)
            if value.is_floating_point()
            else value.to(loaded.device)
            for name, value in inputs.items()
        }

    @property
    def _pad_id(self) -> int:
        return int(self._loaded.tokenizer.pad_token_id or 0)

    def _say_once(self, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            self._say(message)

    def _release_memory(self) -> None:
        if self._loaded.device.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()


def generation_config(model: Any, spec: GenerationSpec, tokenizer: Any) -> Any:
    """The model's own generation config with the spec's decoding parameters laid over it."""
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens = spec.max_new_tokens
    config.do_sample = spec.do_sample
    if spec.do_sample:
        if spec.temperature is not None:
            config.temperature = spec.temperature
        if spec.top_p is not None:
            config.top_p = spec.top_p
    else:
        # Sampling settings from the checkpoint would only draw warnings under greedy decoding.
        config.temperature = None
        config.top_p = None
        config.top_k = None
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    return config


def memory_model_key(spec: ModelSpec) -> str:
    """The model part of a remembered batch size: its id and a hash of its spec (weights,
    dtype and decoding all change how much memory a batch takes)."""
    digest = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:12]
    return f"{spec.id}@{digest}"


def device_key(loaded: Loaded) -> str:
    """The device part of a remembered batch size: which GPU (and its memory) and the dtype."""
    dtype = str(loaded.dtype).removeprefix("torch.")
    device = loaded.device
    if device.type != "cuda":
        return f"{device.type} {dtype}"
    index = device.index if device.index is not None else torch.cuda.current_device()
    properties = torch.cuda.get_device_properties(index)
    return f"cuda:{index} {properties.name} {properties.total_memory // 2**20} MiB {dtype}"


def _image_parts(turns: Conversation) -> list[Image.Image]:
    """The decoded images of a conversation's image parts, in order."""
    return [
        part["image"]
        for turn in turns
        if isinstance(turn["content"], list)
        for part in turn["content"]
        if part.get("type") == "image" and part.get("image") is not None
    ]
