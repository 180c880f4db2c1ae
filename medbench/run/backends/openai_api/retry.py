"""Which endpoint failures are retried, and how long to wait: Retry-After, else full jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from medbench.run.backends.openai_api.transport import RequestRefused
from medbench.run.backends.openai_api.wire import MalformedResponse, shorten

DEFAULT_BACKOFF_S = 1.0
"""Base delay of the exponential backoff (`BackendContext.extra["openai_backoff_s"]`)."""
MAX_BACKOFF_S = 30.0
"""Longest wait between two attempts when the server does not say how long to wait."""
MAX_RETRY_AFTER_S = 120.0
"""Longest Retry-After medbench honours; a server asking for more is not retried."""
MALFORMED_ATTEMPTS = 2
"""A malformed answer is retried once: a cut-off body is transient, a wrong endpoint is not."""
RETRIED_STATUS = frozenset({408, 429})
"""4xx statuses that are retried (with every 5xx): request timeout and rate limiting."""


@dataclass(frozen=True)
class Failure:
    """Why one attempt failed, and whether another attempt may succeed."""

    reason: str
    """Short and stable (`HTTP 500`, `timeout`): failures are counted by it."""
    detail: str
    retryable: bool
    retry_after: float | None = None
    """Seconds the server asked to wait before the next attempt."""
    max_attempts: int | None = None
    """A tighter bound than the spec's for this kind of failure."""


def classify(error: Exception, timeout_s: float) -> Failure:
    """The Failure of an exception raised by the openai client or by parsing its answer."""
    import openai

    if isinstance(error, MalformedResponse):
        return Failure("malformed response", str(error), True, max_attempts=MALFORMED_ATTEMPTS)
    if isinstance(error, openai.APITimeoutError):
        return Failure("timeout", f"no answer within {timeout_s:g} s", True)
    refused = error.__cause__ if isinstance(error, openai.APIConnectionError) else error
    if isinstance(refused, RequestRefused):
        return Failure(refused.reason, refused.detail, False)
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        return Failure("connection error", shorten(str(cause) or type(cause).__name__), True)
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        detail = server_message(error.body, error.message)
        if status not in RETRIED_STATUS and status < 500:
            return Failure(f"HTTP {status}", detail, False)
        wait = retry_after(error.response.headers)
        if wait is not None and wait > MAX_RETRY_AFTER_S:
            detail = (
                f"the server asks to wait {wait:g} s, more than the {MAX_RETRY_AFTER_S:g} s "
                f"medbench waits: {detail}"
            )
            return Failure(f"HTTP {status}", detail, False)
        return Failure(f"HTTP {status}", detail, True, retry_after=wait)
    return Failure("unexpected error", f"{type(error).__name__}: {shorten(str(error))}", False)


def server_message(body: object, fallback: str) -> str:
    """The human part of an error body: OpenAI's `message`, FastAPI's `detail`, or the text."""
    if isinstance(body, Mapping):
        for field in ("message", "detail", "error"):
            value = body.get(field)
            if value:
                return shorten(value if isinstance(value, str) else str(value))
    if isinstance(body, str) and body.strip():
        return shorten(body)
    return shorten(fallback)


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    lowered = {str(name).lower(): str(value) for name, value in headers.items()}
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(
    attempt: int, base_s: float, wait: float | None, rng: random.Random | None = None
) -> float:
    """Seconds before attempt `attempt + 1`: the server's wait plus up to one base delay (to
    spread clients that were told the same), else full jitter over an exponential bound."""
    draw = (rng or random).uniform
    if wait is not None:
        return wait + draw(0.0, base_s)
    return draw(0.0, min(MAX_BACKOFF_S, base_s * 2 ** (attempt - 1)))
