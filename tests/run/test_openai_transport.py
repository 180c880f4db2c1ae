"""The openai backend's transport: a deadline per request, a size cap, no cross-host redirect."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from medbench.run.backends.base import BackendContext, Request
from medbench.run.backends.openai_api import OpenAIBackend
from medbench.spec.model import ModelSpec
from medbench.spec.prompts import Messages
from tests.openai_fakes import MODEL, FakeServer, Reply, completion, fake_server

FAST = BackendContext(extra={"openai_backoff_s": "0.01"})
OK = (
    b'{"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": '
    b'[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "x"}}]}'
)
Handler = Callable[[socket.socket, threading.Event], None]


def spec(url: str, timeout_s: float = 1.0) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "model",
            "id": "fake-api",
            "title": "Fake API",
            "backend": "openai",
            "family": "fake",
            "openai": {"base_url": url, "model": MODEL, "timeout_s": timeout_s, "max_retries": 0},
        }
    )


@contextmanager
def raw_server(chat: Handler) -> Iterator[str]:
    """A loopback HTTP server: `GET /v1/models` answers at once, each chat request goes to
    `chat` (bounded: every handler ends when the server stops)."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and not stop.is_set():
                head += conn.recv(65536) or b"\r\n\r\n"
            if head.startswith(b"GET"):
                body = b'{"object": "list", "data": []}'
                # closed after the answer, and said so: a client that kept the connection for
                # the chat request would race the close and read a reset instead of a timeout
                reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                conn.sendall(reply % (len(body), body))
                return
            lines = head.split(b"\r\n\r\n", 1)[0].lower().split(b"\r\n")
            found = [
                line.split(b":", 1)[1] for line in lines if line.startswith(b"content-length:")
            ]
            length = int(found[0]) if found else 0
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length and not stop.is_set():
                body += conn.recv(65536)
            chat(conn, stop)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def drip(data: bytes, every_s: float) -> Handler:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        for byte in data:
            if stop.wait(every_s):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return

    return handler


def ask(url: str, timeout_s: float = 1.0) -> tuple[str | None, float]:
    backend = OpenAIBackend(spec(url, timeout_s), FAST)
    try:
        start = time.monotonic()
        [output] = backend.generate([Request("k", Messages(None, "hello"))])
        return output.error, time.monotonic() - start
    finally:
        backend.close()


def test_openai_a_body_dripping_a_byte_at_a_time_ends_at_the_deadline() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    with raw_server(drip(head % len(OK) + OK, 0.2)) as url:
        error, seconds = ask(url)
    assert error == "openai timeout: no answer within 1 s"
    assert seconds < 2.5


def test_openai_headers_dripping_a_byte_at_a_time_end_at_the_deadline() -> None:
    with raw_server(drip(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200, 0.2)) as url:
        error, seconds = ask(url)
    assert error == "openai timeout: no answer within 1 s"
    assert seconds < 2.5


def test_openai_an_answer_over_the_size_cap_is_refused_unread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import medbench.run.backends.openai_api.transport as transport

    monkeypatch.setattr(transport, "MAX_RESPONSE_BYTES", 1024 * 1024)
    size = 64 * 1024 * 1024

    def huge(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"a" * 65536
        for _ in range(size // len(block)):
            if stop.is_set():
                return
            try:
                conn.sendall(block)
            except OSError:
                return

    with raw_server(huge) as url:
        error, _ = ask(url, timeout_s=10)
    assert error == "openai answer too large: the answer is over 1024 KiB"


def test_openai_a_redirect_to_another_host_is_not_followed() -> None:
    with fake_server() as other:
        location = other.url.replace("127.0.0.1", "localhost") + "/chat/completions"
        with fake_server(Reply(307, None, {"Location": location})) as server:
            error, _ = ask(server.url)
        assert other.received == []
    host = location.split("/v1")[0]
    assert error == (
        f"openai redirect refused: refusing to send the request to {host}, which is not the "
        "endpoint's host"
    )


def test_openai_a_redirect_on_the_same_host_is_followed(server_pair: FakeServer) -> None:
    server_pair.add(Reply(307, None, {"Location": server_pair.url + "/chat/completions"}))
    server_pair.add(completion("after the redirect"))
    backend = OpenAIBackend(spec(server_pair.url), FAST)
    try:
        [output] = backend.generate([Request("k", Messages(None, "hello"))])
    finally:
        backend.close()
    assert (output.text, output.error) == ("after the redirect", None)


@pytest.fixture
def server_pair() -> Iterator[FakeServer]:
    with fake_server() as fake:
        yield fake
