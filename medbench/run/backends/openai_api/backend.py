"""OpenAIBackend: concurrent chat-completion requests with bounded retries, checked up front."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from time import perf_counter
from typing import TYPE_CHECKING, Any

from medbench.data import ImageError
from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.backends.openai_api.keys import check_key_destination, redact
from medbench.run.backends.openai_api.retry import (
    DEFAULT_BACKOFF_S,
    Failure,
    backoff_delay,
    classify,
    server_message,
)
from medbench.run.backends.openai_api.wire import (
    Completion,
    chat_messages,
    generation_fields,
    parse_completion,
    shorten,
)
from medbench.run.backends.padding import client_padding
from medbench.spec import Messages, ModelSpec, OpenAISpec

if TYPE_CHECKING:
    import openai

NO_KEY = "not-needed"
"""The key sent to endpoints that need none (the client insists on one)."""
PREFLIGHT_TIMEOUT_S = 30.0
PROBE_TEXT = "Reply with OK."
TOP_LOGPROBS = 20
"""Alternatives asked for the first answer token when scoring options (OpenAI's maximum)."""


class OpenAIBackend:
    """A model behind an OpenAI-compatible chat-completions endpoint.

    Building it checks the key and the endpoint once (BackendError before any job runs).
    Requests run on `max_concurrency` threads; retryable failures (429, 5xx, timeouts,
    connection errors) are retried up to `max_retries` times with backoff, then recorded.
    """

    def __init__(self, spec: ModelSpec, context: BackendContext) -> None:
        if spec.openai is None:
            raise BackendError(f"model {spec.id}: backend `openai` needs an `openai:` block")
        self.spec = spec
        self.endpoint: OpenAISpec = spec.openai
        self.served_model: str | None = None
        """The model name the server reports in its answers, once one has arrived (or after
        `probe()`). Hosted APIs name a dated snapshot here, local servers their checkpoint."""
        self._backoff_s = backoff_base(spec, context)
        self._padding = client_padding(spec)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._out_of_quota: str | None = None
        """Set by the first `insufficient_quota` refusal: the reason every later request fails."""
        self._secrets: tuple[str, ...] = ()
        self._client = self._make_client()
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=self.endpoint.max_concurrency, thread_name_prefix="medbench-openai"
        )
        try:
            self.preflight()
        except BaseException:
            self.close()
            raise

    @property
    def snapshot(self) -> str | None:
        """The served model name when it names another model than the requested one, else None.

        Servers differ in how they echo the requested name: `transformers serve` answered
        `NAME@main` up to 5.2x and `NAME` since; both name the requested checkpoint at its
        default revision, so neither is a new snapshot.
        """
        served = self.served_model
        if served is None or served in (self.endpoint.model, f"{self.endpoint.model}@main"):
            return None
        return served

    def preflight(self) -> None:
        """Check the key variable and `GET {base_url}/models`: one clear BackendError if the
        key is missing, the endpoint cannot be reached, or it refuses the key."""
        import openai

        url = self.endpoint.base_url.rstrip("/")
        timeout = min(self.endpoint.timeout_s, PREFLIGHT_TIMEOUT_S)
        try:
            raw = self._client.with_options(timeout=timeout).models.with_raw_response.list()
            body = raw.text
        except openai.APIStatusError as e:
            if e.status_code in (401, 403):
                raise BackendError(self._refused(e.status_code, e)) from e
            return  # the endpoint answers; a missing /models or a busy server is no reason to stop
        except openai.APIConnectionError as e:
            failure = classify(e, timeout)
            raise BackendError(
                f"model {self.spec.id}: cannot reach the endpoint {url} ({failure.detail}). "
                "Check that the server is running and that `openai.base_url` is right "
                "(it usually ends in /v1)."
            ) from e
        try:
            json.loads(body)
        except ValueError as e:
            raise BackendError(
                f"model {self.spec.id}: {url}/models did not answer with JSON "
                f"({shorten(body, 80)}). Check `openai.base_url` (it usually ends in /v1)."
            ) from e

    def probe(self) -> str | None:
        """Ask for one token to learn the served model name (set in `served_model`)."""
        output = self._answer(Messages(None, PROBE_TEXT), max_tokens=1, probe=True)
        if output.error is not None:
            raise BackendError(f"model {self.spec.id}: the probe request failed: {output.error}")
        return self.served_model

    def generate(self, requests: Sequence[Request]) -> list[Output]:
        """Answer each request, in order (they run concurrently)."""
        outputs: dict[int, Output] = {}
        for indices, answers in self.stream(requests):
            outputs.update(zip(indices, answers, strict=True))
        return [outputs[i] for i in range(len(requests))]

    def stream(
        self, requests: Sequence[Request], sizes: Sequence[int] | None = None
    ) -> Generator[tuple[list[int], list[Output]], None, None]:
        """Yield (request indices, outputs) as requests finish, in order of completion.

        At most twice `max_concurrency` requests are queued at a time, so that closing the
        stream early abandons only those in flight. `sizes` (the runner's planned batches)
        does not apply: each request is answered alone, so no answer depends on batch-mates.
        """
        del sizes
        if self._pool is None:
            raise RuntimeError("OpenAIBackend.stream called after close()")
        pool = self._pool
        queue = iter(range(len(requests)))
        running: dict[Future[Output], int] = {}

        def fill() -> None:
            while len(running) < 2 * self.endpoint.max_concurrency:
                index = next(queue, None)
                if index is None:
                    return
                running[pool.submit(self._answer_request, requests[index])] = index

        try:
            fill()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                outputs = {running.pop(future): future.result() for future in done}
                fill()
                indices = sorted(outputs)
                yield indices, [outputs[i] for i in indices]
        finally:
            for future in running:
                future.cancel()

    def close(self) -> None:
        """Stop retrying, wait for the requests in flight (each bounded by the timeout), and
        close the connections; the backend cannot be used afterwards."""
        self._stopping.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._client.close()

    def _make_client(self) -> openai.OpenAI:
        import openai

        key = NO_KEY
        if self.endpoint.api_key_env is not None:
            key = os.environ.get(self.endpoint.api_key_env, "")
            if not key:
                raise BackendError(
                    f"model {self.spec.id}: the environment variable {self.endpoint.api_key_env} "
                    "is not set. Set it to your API key (never put keys in specs)."
                )
            check_key_destination(self.spec.id, self.endpoint.base_url, self.endpoint.api_key_env)
            self._secrets = (key,)
        from medbench.run.backends.openai_api.transport import BoundedTransport

        transport = BoundedTransport(self.endpoint.base_url, self.endpoint.timeout_s)
        return openai.OpenAI(
            base_url=self.endpoint.base_url,
            api_key=key,
            timeout=self.endpoint.timeout_s,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(transport=transport),
        )

    def _refused(self, status: int, error: openai.APIStatusError) -> str:
        url = self.endpoint.base_url.rstrip("/")
        message = redact(server_message(error.body, error.message), self._secrets)
        variable = self.endpoint.api_key_env
        if variable is None:
            return (
                f"model {self.spec.id}: the endpoint {url} refused access (HTTP {status}: "
                f"{message}). If it needs a key, set `openai.api_key_env` to the name of the "
                "environment variable that holds it."
            )
        return (
            f"model {self.spec.id}: the endpoint {url} refused the key in {variable} "
            f"(HTTP {status}: {message}). Check the key and its permissions."
        )

    def _answer_request(self, request: Request, extra: dict[str, Any] | None = None) -> Output:
        if request.messages.images and self.spec.text_only:
            return Output(
                text=None, error=f"model {self.spec.id} is text-only and cannot read images"
            )
        return self._answer(request.messages, max_tokens=request.max_new_tokens, extra=extra)

    def first_token_logprobs(self, requests: Sequence[Request]) -> list[Output]:
        """Ask for one answer token with its `top_logprobs` per request, in order (they run
        concurrently); each Output's `logprobs` holds them, None where the endpoint sent none."""
        if self._pool is None:
            raise RuntimeError("OpenAIBackend.first_token_logprobs called after close()")
        extra = {"logprobs": True, "top_logprobs": TOP_LOGPROBS}
        futures = [
            self._pool.submit(self._answer_request, request, extra=extra) for request in requests
        ]
        return [future.result() for future in futures]

    def _answer(
        self,
        messages: Messages,
        *,
        max_tokens: int | None = None,
        probe: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Output:
        """One request with its retries; never raises (a failure is an Output with `error`).
        `extra`: more body fields (asking for logprobs: one token, its length cut expected)."""
        start = perf_counter()
        if self._out_of_quota is not None:  # every later request would be refused the same way
            return Output(text=None, error=self._out_of_quota)
        try:
            body = self._body(messages, 1 if extra else max_tokens) | (extra or {})
        except ImageError as e:
            return Output(text=None, error=f"image {e}", seconds=perf_counter() - start)
        attempt = 0
        while True:
            attempt += 1
            try:
                raw = self._client.chat.completions.with_raw_response.create(**body)
                completion = parse_completion(raw.text)
            except Exception as e:  # every failure becomes a recorded reason, never a crash
                failure = classify(e, self.endpoint.timeout_s)
                if quota_exhausted(e):
                    failure = Failure("insufficient quota", failure.detail, retryable=False)
                    self._out_of_quota = redact(failure_text(failure, attempt), self._secrets)
            else:
                self._saw_model(completion.model)
                problem = None if probe else self._unusable(completion, one_token=bool(extra))
                if problem is not None:
                    return Output(text=None, error=problem, seconds=perf_counter() - start)
                return Output(
                    text=completion.text,
                    seconds=perf_counter() - start,
                    logprobs=completion.top_logprobs if extra else None,
                    finish_reason=completion.finish_reason,
                )
            if self._give_up(failure, attempt) or self._stopping.wait(
                backoff_delay(attempt, self._backoff_s, failure.retry_after)
            ):
                text = redact(failure_text(failure, attempt), self._secrets)
                return Output(text=None, error=text, seconds=perf_counter() - start)

    def _unusable(self, completion: Completion, *, one_token: bool = False) -> str | None:
        """Why an answer must not be stored as the model's answer (a failed job, tried again
        by the next run), or None. Not retried now: the same request would end the same way.
        `one_token`: a single token was asked for, so a length cut is what was asked."""
        pinned, served = self.endpoint.snapshot, completion.model
        # `transformers serve` names a checkpoint NAME or NAME@main: the same model.
        if pinned is not None and served is not None and served not in (pinned, f"{pinned}@main"):
            return (
                f"openai snapshot mismatch: the endpoint answered as {served!r}, but "
                f"the spec pins `openai.snapshot: {pinned}`; the answer would be filed under "
                "the wrong model. Pin the new snapshot (a new model) or request the dated name."
            )
        reason = completion.finish_reason
        if reason == "content_filter":
            return (
                "openai finish_reason content_filter: the provider's content filter withheld "
                "the answer"
            )
        if reason == "length" and not completion.text and not one_token:
            limit = self.endpoint.max_completion_tokens or self.spec.generation.max_new_tokens
            return (
                f"openai finish_reason length: the answer is empty, the limit of {limit} tokens "
                "ran out first (a reasoning model spends it on hidden reasoning: raise "
                "`openai.max_completion_tokens` or lower `openai.reasoning_effort`)"
            )
        return None

    def _give_up(self, failure: Failure, attempt: int) -> bool:
        bound = self.endpoint.max_retries + 1
        if failure.max_attempts is not None:
            bound = min(bound, failure.max_attempts)
        return not failure.retryable or attempt >= bound or self._stopping.is_set()

    def _body(self, messages: Messages, max_tokens: int | None) -> dict[str, Any]:
        generation = self.spec.generation
        if max_tokens is not None:
            generation = generation.model_copy(update={"max_new_tokens": max_tokens})
        fields = generation_fields(generation, self.endpoint.base_url)
        if self.endpoint.max_completion_tokens is not None and max_tokens is None:
            fields.pop("max_tokens", None)
            fields["max_completion_tokens"] = self.endpoint.max_completion_tokens
        if self.endpoint.reasoning_effort is not None:
            fields["reasoning_effort"] = self.endpoint.reasoning_effort
        turns = chat_messages(messages, self.spec.system_prompt, self._padding)
        return {"model": self.endpoint.model, "messages": turns, **fields}

    def _saw_model(self, model: str | None) -> None:
        if model is not None:
            with self._lock:
                if self.served_model is None:
                    self.served_model = model


def failure_text(failure: Failure, attempts: int) -> str:
    """`openai <reason>[ after N attempts]: <detail>`; the part before the colon is what
    run summaries count, so it names the kind of failure, never a message."""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return f"openai {failure.reason}{tries}: {failure.detail}"


def quota_exhausted(error: Exception) -> bool:
    """A 429 that is not a rate limit: the account has no credit left (`insufficient_quota`).
    Waiting does not help, so it is not retried like one."""
    import openai

    if not isinstance(error, openai.APIStatusError) or error.status_code != 429:
        return False
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    fields = [error.code, error.type]
    if isinstance(body, dict):
        fields += [body.get("code"), body.get("type")]
    return "insufficient_quota" in fields


def backoff_base(spec: ModelSpec, context: BackendContext) -> float:
    """The base backoff delay: `context.extra["openai_backoff_s"]`, else one second."""
    value = context.extra.get("openai_backoff_s")
    if value is None:
        return DEFAULT_BACKOFF_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0.0 <= seconds <= 60.0:
        raise BackendError(
            f"model {spec.id}: openai_backoff_s must be a number of seconds from 0 to 60, "
            f"got {value!r}."
        )
    return seconds
