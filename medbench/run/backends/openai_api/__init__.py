"""The `openai` backend: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM,
`transformers serve`, Ollama), with images sent as `data:` URLs."""

from medbench.run.backends.openai_api.backend import OpenAIBackend, failure_text
from medbench.run.backends.openai_api.retry import (
    DEFAULT_BACKOFF_S,
    MALFORMED_ATTEMPTS,
    MAX_BACKOFF_S,
    MAX_RETRY_AFTER_S,
    backoff_delay,
    retry_after,
)
from medbench.run.backends.openai_api.unapplied import unapplied_settings
from medbench.run.backends.openai_api.wire import chat_messages, image_data_url, parse_completion

__all__ = [
    "DEFAULT_BACKOFF_S",
    "MALFORMED_ATTEMPTS",
    "MAX_BACKOFF_S",
    "MAX_RETRY_AFTER_S",
    "OpenAIBackend",
    "backoff_delay",
    "chat_messages",
    "failure_text",
    "image_data_url",
    "parse_completion",
    "retry_after",
    "unapplied_settings",
]
