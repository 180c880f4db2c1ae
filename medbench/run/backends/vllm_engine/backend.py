"""VLLMBackend: medbench renders each prompt itself and vLLM generates.

The prompt text is the model's own chat template applied by its transformers processor, with
medbench's settings (where the system text goes, where the image goes, LLaVA's square
padding), exactly as the hf backend renders it; the decoded image goes beside it as
multi-modal data, and vLLM's processor turns it into the image tokens. Prefix caching is on, so
the wordings of one image share the image's prefill. Sampling follows the spec: greedy unless
`do_sample`, `max_tokens` from the request's budget (its family's) or the spec's.

Answers can differ from the hf backend's (other kernels, other batching, bf16 accumulation), so
the engine and its version are part of every key (`medbench.run.identity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from medbench.data import ImageError, load_image
from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.backends.hf.chat import (
    hoisted_image_token,
    model_conversation,
    system_role,
)
from medbench.run.backends.hf.loading import checkpoint_source
from medbench.run.backends.padding import square_padding
from medbench.spec import GenerationSpec, ModelSpec

PREFERRED_BATCH = 256
"""vLLM schedules its own batches: the runner hands it this many requests at a time."""


def sampling_options(generation: GenerationSpec, max_tokens: int) -> dict[str, Any]:
    """vLLM `SamplingParams` keyword arguments for a spec's decoding parameters."""
    if not generation.do_sample:
        return {"temperature": 0.0, "max_tokens": max_tokens}
    options: dict[str, Any] = {
        "temperature": generation.temperature or 1.0,
        "max_tokens": max_tokens,
    }
    if generation.top_p is not None:
        options["top_p"] = generation.top_p
    if generation.seed is not None:
        options["seed"] = generation.seed
    return options


class VLLMBackend:
    """A vLLM engine answering requests; the prompt text and images are medbench's."""

    preferred_batch = PREFERRED_BATCH

    def __init__(self, spec: ModelSpec, context: BackendContext) -> None:
        try:
            import vllm
        except ImportError as e:
            raise BackendError(
                f"model {spec.id}: `backend: vllm` needs vLLM on a GPU machine: "
                "pip install -e '.[vllm]'"
            ) from e
        from transformers import AutoProcessor

        self.spec = spec
        self._vllm = vllm
        source, revision = checkpoint_source(spec, context)
        self._processor = AutoProcessor.from_pretrained(source, revision=revision)  # type: ignore[no-untyped-call]
        self._system_role = system_role(spec, self._render)
        self._image_token = hoisted_image_token(self._render, self._processor)
        self._padding = square_padding(spec, self._processor)
        dtype = "auto" if spec.dtype == "auto" else spec.dtype
        self._llm = vllm.LLM(
            model=source,
            revision=revision,
            dtype=dtype,
            enable_prefix_caching=True,
            seed=spec.generation.seed or 0,
            limit_mm_per_prompt={"image": 1},
        )

    def _render(self, turns: list[dict[str, Any]]) -> str:
        text = self._processor.apply_chat_template(
            turns, add_generation_prompt=True, tokenize=False
        )
        return str(text)

    def prompt(self, request: Request, images: Sequence[Image.Image]) -> dict[str, Any]:
        """The vLLM prompt of a request: the rendered text, and its images as multi-modal data."""
        messages = request.messages
        placeholders = [None] * len(images)
        turns = model_conversation(
            self.spec, self._system_role, messages, placeholders, self._image_token
        )
        prompt: dict[str, Any] = {"prompt": self._render(turns)}
        if images:
            prompt["multi_modal_data"] = {"image": images[0] if len(images) == 1 else list(images)}
        return prompt

    def _images(self, request: Request) -> list[Image.Image]:
        refs = request.messages.images
        images = [load_image(image.path) for image in refs]
        if self._padding is not None:
            images = [self._padding.apply(r.path, i) for r, i in zip(refs, images, strict=True)]
        return images

    def generate(self, requests: Sequence[Request]) -> list[Output]:
        outputs: list[Output | None] = [None] * len(requests)
        prompts, params, where = [], [], []
        for index, request in enumerate(requests):
            try:
                images = self._images(request)
            except ImageError as e:
                outputs[index] = Output(text=None, error=f"image {e}")
                continue
            budget = request.max_new_tokens or self.spec.generation.max_new_tokens
            prompts.append(self.prompt(request, images))
            params.append(
                self._vllm.SamplingParams(**sampling_options(self.spec.generation, budget))
            )
            where.append(index)
        if prompts:
            answers = self._llm.generate(prompts, sampling_params=params, use_tqdm=False)
            precision = None if self.spec.dtype == "auto" else self.spec.dtype
            for index, answer in zip(where, answers, strict=True):
                text = str(answer.outputs[0].text).strip()
                outputs[index] = Output(text=text, batch_size=len(prompts), precision=precision)
        return [o if o is not None else Output(text=None, error="no answer") for o in outputs]

    def close(self) -> None:
        self._llm = None
