"""The chat-completions wire format: request bodies with images as data URLs, answers parsed."""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from PIL import Image

from medbench.data import load_image
from medbench.run.backends.padding import Padding
from medbench.spec import GenerationSpec, Messages

SystemPrompt = Literal["template", "fold_into_user", "none"]

PASS_THROUGH_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
"""Formats every OpenAI-compatible server decodes: their original bytes are sent as they are."""
PASS_THROUGH_MODES = frozenset({"L", "RGB"})
"""Modes a server decodes to the same RGB pixels as `load_image` (no alpha, 16-bit or CMYK)."""
_EXIF_ORIENTATION = 0x0112
COMPLETION_TOKENS_HOSTS = frozenset({"api.openai.com"})
"""Hosts that refuse `max_tokens` for reasoning models and take `max_completion_tokens`."""
MAX_DETAIL = 300
MAX_LOGPROB_TOKENS = 100
"""Most alternatives of the first token read from an answer (medbench asks for 20)."""
MAX_TOKEN_CHARS = 200


class MalformedResponse(Exception):
    """A 2xx answer that is not a chat completion: invalid JSON, no choices, no message."""


@dataclass(frozen=True)
class Completion:
    """The parts of a chat completion medbench keeps."""

    text: str
    model: str | None
    """The model name the server reports (often a dated snapshot of the requested name)."""
    finish_reason: str | None = None
    """Why generation stopped: `stop`, `length` (the token limit), `content_filter`, ..."""
    top_logprobs: tuple[tuple[str, float], ...] | None = None
    """The first answer token and its alternatives with their log-probabilities, when the
    answer carries `logprobs` (None: it carries none, or none that can be read)."""


def image_data_url(path: str | Path, padding: Padding | None = None) -> str:
    """A `data:` URL of an image that `load_image` decodes (ImageError otherwise).

    JPEG, PNG and WebP files in grey or RGB without an EXIF rotation go as their original bytes;
    any other file, and any image `padding` pads to a square, goes as a lossless PNG of what
    `load_image` makes of it, so that the server sees the same upright RGB pixels as the other
    backends.
    """
    image = load_image(path)
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as raw:
        kind, mode = raw.format, raw.mode
        orientation = raw.getexif().get(_EXIF_ORIENTATION, 1)
    if padding is not None:
        padded = padding.apply(path, image)
        kind, image = (None, padded) if padded is not image else (kind, image)
    if kind in PASS_THROUGH_FORMATS and mode in PASS_THROUGH_MODES and orientation == 1:
        mime = Image.MIME[kind]
    else:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data, mime = buffer.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def chat_messages(
    messages: Messages,
    system_prompt: SystemPrompt = "template",
    padding: Padding | None = None,
) -> list[dict[str, Any]]:
    """A system turn when there is a system prompt, then one user turn: the images and the text
    in the order the messages place them (images first by default), as the hf backend asks.

    `system_prompt` is the model spec's setting: `template` sends a system turn (the server's
    chat template places it), `fold_into_user` puts the system text and a blank line before the
    user text, `none` drops it. `padding`: the model's square padding of the image bytes. A
    request without images sends its text as a plain string, which text-only servers accept.
    """
    system, text = messages.system, messages.text
    if system_prompt == "none":
        system = None
    elif system and system_prompt == "fold_into_user":
        system, text = None, f"{system}\n\n{text}"
    turns: list[dict[str, Any]] = []
    if system:
        turns.append({"role": "system", "content": system})
    if not messages.images:
        turns.append({"role": "user", "content": text})
        return turns
    images = [
        {"type": "image_url", "image_url": {"url": image_data_url(image.path, padding)}}
        for image in messages.images
    ]
    words = {"type": "text", "text": text}
    content = [words, *images] if messages.image_after else [*images, words]
    turns.append({"role": "user", "content": content})
    return turns


def generation_fields(generation: GenerationSpec, base_url: str) -> dict[str, Any]:
    """Decoding parameters as request fields: greedy decoding is temperature 0."""
    host = urlsplit(base_url).hostname or ""
    limit = "max_completion_tokens" if host in COMPLETION_TOKENS_HOSTS else "max_tokens"
    fields: dict[str, Any] = {limit: generation.max_new_tokens}
    if generation.do_sample:
        if generation.temperature is not None:
            fields["temperature"] = generation.temperature
        if generation.top_p is not None:
            fields["top_p"] = generation.top_p
    else:
        fields["temperature"] = 0.0
    if generation.seed is not None:
        fields["seed"] = generation.seed
    return fields


def parse_completion(body: str) -> Completion:
    """The first choice's text and the reported model of a chat-completion body.

    A refusal field stands in for missing content (it is the model's answer); a message with
    neither is an empty answer. Anything else that is not a chat completion is malformed.
    """
    try:
        data = json.loads(body)
    except ValueError as e:
        raise MalformedResponse(f"invalid JSON ({e}): {shorten(body)}") from e
    if not isinstance(data, dict):
        raise MalformedResponse(f"not a JSON object: {shorten(body)}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        error = data.get("error")
        detail = f"the server reported {error!r}" if error else shorten(body)
        raise MalformedResponse(f"no choices: {detail}")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise MalformedResponse(f"no message in the first choice: {shorten(body)}")
    content = message.get("content")
    if content is None:
        content = message.get("refusal") or ""
    if not isinstance(content, str):
        raise MalformedResponse(f"the message content is not text: {shorten(str(content))}")
    model = data.get("model")
    finish = choices[0].get("finish_reason")
    return Completion(
        content.strip(),
        model if isinstance(model, str) and model else None,
        finish if isinstance(finish, str) and finish else None,
        first_token_logprobs(choices[0].get("logprobs")),
    )


def first_token_logprobs(logprobs: Any) -> tuple[tuple[str, float], ...] | None:
    """(token, log-probability) of the first answer token and its `top_logprobs`, read from a
    choice's `logprobs` field; None when there is none. Entries that are not a bounded string
    with a finite log-probability of at most 0 are left out, and a token given twice keeps its
    first log-probability: these come from a stranger's server."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    first = content[0]
    alternatives = first.get("top_logprobs")
    entries = [first] + (alternatives if isinstance(alternatives, list) else [])
    found: dict[str, float] = {}
    for entry in entries[: MAX_LOGPROB_TOKENS + 1]:
        if not isinstance(entry, dict):
            continue
        token, value = entry.get("token"), entry.get("logprob")
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token in found:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value) and value <= 0:
            found[token] = float(value)
    return tuple(found.items()) or None


def shorten(text: str, limit: int = MAX_DETAIL) -> str:
    """One line of at most `limit` characters, for error messages."""
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[: limit - 3]}..."
