"""Where the openai backend sends an API key, and what of it reaches the cache or the screen."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext
from medbench.run.backends.openai_api import OpenAIBackend
from medbench.run.backends.openai_api.keys import allowed_hosts, redact
from medbench.spec.model import ModelSpec
from tests.openai_fakes import MODEL, FakeServer, error, fake_server

FAST = BackendContext(extra={"openai_backoff_s": "0.01"})
KEY = "sk-proj-Abc123SECRETvalue"


def spec(url: str) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "model",
            "id": "fake-api",
            "title": "Fake API",
            "backend": "openai",
            "family": "fake",
            "openai": {
                "base_url": url,
                "model": MODEL,
                "api_key_env": "MEDBENCH_TEST_API_KEY",
                "timeout_s": 2,
                "max_retries": 0,
            },
        }
    )


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    monkeypatch.setenv("MEDBENCH_TEST_API_KEY", KEY)
    monkeypatch.delenv("MEDBENCH_ALLOWED_HOSTS", raising=False)
    with fake_server() as fake:
        yield fake


def test_openai_key_is_not_sent_to_a_host_the_user_did_not_allow(server: FakeServer) -> None:
    message = (
        "model fake-api: refusing to send the key in MEDBENCH_TEST_API_KEY to "
        "'attacker.example', which is not an allowed host (127.0.0.1, ::1, api.mistral.ai, "
        "api.openai.com, api.together.xyz, generativelanguage.googleapis.com, localhost, "
        "openrouter.ai). If you trust it, add it to MEDBENCH_ALLOWED_HOSTS (comma-separated)."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        OpenAIBackend(spec("https://attacker.example/v1"), FAST)


def test_openai_allowed_hosts_variable_replaces_the_default(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDBENCH_ALLOWED_HOSTS", "api.openai.com")
    message = (
        "model fake-api: refusing to send the key in MEDBENCH_TEST_API_KEY to '127.0.0.1', "
        "which is not an allowed host (api.openai.com). If you trust it, add it to "
        "MEDBENCH_ALLOWED_HOSTS (comma-separated)."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        OpenAIBackend(spec(server.url), FAST)
    assert (server.model_requests, server.received) == (0, [])
    monkeypatch.setenv("MEDBENCH_ALLOWED_HOSTS", " Example.org , [::1] ")
    assert allowed_hosts() == frozenset({"example.org", "::1"})


def test_openai_key_goes_over_https_only_except_to_loopback(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDBENCH_ALLOWED_HOSTS", "api.example.org")
    message = (
        "model fake-api: refusing to send the key in MEDBENCH_TEST_API_KEY to "
        "http://api.example.org/v1 over http: keys go over https (or to loopback) only."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        OpenAIBackend(spec("http://api.example.org/v1"), FAST)


def test_openai_error_echoing_the_key_is_redacted_before_it_is_stored(
    server: FakeServer,
) -> None:
    from medbench.run.backends.base import Request
    from medbench.spec.prompts import Messages

    server.add(error(400, f"Invalid request: header 'Authorization: Bearer {KEY}' rejected"))
    backend = OpenAIBackend(spec(server.url), FAST)
    try:
        [output] = backend.generate([Request("k", Messages(None, "hello"))])
    finally:
        backend.close()
    assert server.authorizations == [f"Bearer {KEY}"]
    assert output.error == (
        "openai HTTP 400: Invalid request: header 'Authorization: Bearer [redacted]' rejected"
    )


def test_openai_refused_key_message_is_redacted(server: FakeServer) -> None:
    server.models = error(401, f"Incorrect API key provided: {KEY}.")
    message = (
        f"model fake-api: the endpoint {server.url} refused the key in MEDBENCH_TEST_API_KEY "
        "(HTTP 401: Incorrect API key provided: [redacted].). Check the key and its permissions."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        OpenAIBackend(spec(server.url), FAST)


def test_redact_removes_keys_and_bearer_tokens() -> None:
    text = "key abcd1234 then Bearer eyJhbGciOi.x-y_z and sk-ant-0123456789 end"
    assert redact(text, ["abcd1234"]) == (
        "key [redacted] then Bearer [redacted] and sk-[redacted] end"
    )
