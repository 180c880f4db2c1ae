"""What a transformers model receives: its own chat template applied, as the backend applies it.

Only the processor (or tokenizer) is loaded, from the checkpoint folder or the local Hugging
Face cache, never downloaded: a user checks a real model's prompts before spending GPU hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext
from medbench.run.backends.hf.chat import (
    Conversation,
    hoisted_image_token,
    model_conversation,
    system_role,
)
from medbench.run.backends.hf.loading import check_format, checkpoint_source
from medbench.spec import Messages, ModelSpec


@dataclass
class Template:
    """A model's chat template with what decides the text its inputs are made of."""

    spec: ModelSpec
    processor: Any
    """The processor of a vision-language model, or the tokenizer of a text-only model."""
    system_role: bool
    adds_bos: bool
    """Whether tokenizing adds the BOS token the rendered text lacks (llava-hf, Mistral)."""
    image_token: str | None = None
    """The image token, where the template writes image parts before the text whatever their
    order (`hoisted_image_token`): an image after the text is written as it."""

    def received(self, messages: Messages) -> str:
        """The text the model's input ids spell, images as their unexpanded placeholders.

        A processor adds the tokenizer's special tokens unless the rendered text already starts
        with BOS; a tokenizer's own chat-template tokenizing never adds them.
        """
        turns = model_conversation(
            self.spec, self.system_role, messages, [None] * len(messages.images), self.image_token
        )
        text = _render(self.processor, turns)
        bos = getattr(self._tokenizer, "bos_token", None)
        if self.adds_bos and bos and not text.startswith(bos):
            text = bos + text
        return text

    @property
    def _tokenizer(self) -> Any:
        return self.processor if self.spec.text_only else self.processor.tokenizer


def _render(processor: Any, turns: Conversation) -> str:
    return str(processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=False))


def _adds_bos(tokenizer: Any, text_only: bool) -> bool:
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if text_only or bos_id is None:
        return False
    ids = list(tokenizer("a").input_ids)
    return bool(ids) and ids[0] == bos_id


def load_template(spec: ModelSpec, context: BackendContext) -> Template:
    """The processor (or tokenizer) of `spec`, from local files only."""
    from transformers import AutoProcessor, AutoTokenizer

    if spec.checkpoint_format == "llava_original":
        check_format(spec, "")
    source, revision = checkpoint_source(spec, context)
    check_format(spec, source)
    options: dict[str, Any] = {
        "revision": revision,
        "trust_remote_code": spec.trust_remote_code,
        "local_files_only": True,
    }
    if revision is not None:
        from medbench.data import hf_cache_dir

        options["cache_dir"] = str(hf_cache_dir())
    try:
        loader: Any = AutoTokenizer if spec.text_only else AutoProcessor
        processor = loader.from_pretrained(source, **options)
    except Exception as e:  # from_pretrained fails in many ways; say where it looked
        where = f"{source}@{revision}" if revision else source
        raise BackendError(
            f"model {spec.id}: cannot load the processor of {where} from local files "
            f"({type(e).__name__}: {e}). Download it first (`hf download {source}"
            f"{f' --revision {revision}' if revision else ''}`)."
        ) from e
    if getattr(processor, "chat_template", None) is None:
        raise BackendError(f"model {spec.id}: {source} has no chat template; medbench needs one")
    tokenizer = processor if spec.text_only else processor.tokenizer

    def render(turns: Conversation) -> str:
        return _render(processor, turns)

    role = system_role(spec, render)
    token = None if spec.text_only else hoisted_image_token(render, processor)
    return Template(spec, processor, role, _adds_bos(tokenizer, spec.text_only), token)
