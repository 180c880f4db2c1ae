"""A local OpenAI-compatible server that misbehaves on purpose, for the openai backend's tests.

`FakeServer` listens on 127.0.0.1 on a free port. Each chat-completion request takes the next
`Reply` of its script, or asks `responder` (by default: answer `echo: <user text>`). A reply can
set the status, headers, body and a delay, drop the connection, or kill the whole server.
Everything is bounded: delays end when the server stops, and sockets time out.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fake-model"
SNAPSHOT = "fake-model-2026-01-01"
SOCKET_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Reply:
    """What the server does with one request."""

    status: int = 200
    body: Any = None
    """A dict or list (sent as JSON), a str (sent as is), or None (an empty body)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (ends early when the server stops)."""
    drop: bool = False
    """Close the connection without answering."""
    kill: bool = False
    """Stop the whole server: this and every later request get no answer."""


def completion(text: str, model: str = SNAPSHOT, **reply: Any) -> Reply:
    """A successful chat completion answering `text`."""
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
            }
        ],
    }
    return Reply(200, body, **reply)


def error(status: int, message: str, **reply: Any) -> Reply:
    """An OpenAI-style error body."""
    return Reply(status, {"error": {"message": message, "type": "fake", "code": None}}, **reply)


def user_text(request: dict[str, Any]) -> str:
    """The text of the last user turn of a chat-completion request."""
    content = request["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(part["text"] for part in content if part["type"] == "text")


def echo(request: dict[str, Any]) -> Reply:
    return completion(f"echo: {user_text(request)}")


class FakeServer:
    """A scripted chat-completions server; `received` holds the JSON of every chat request."""

    def __init__(
        self,
        *script: Reply,
        responder: Callable[[dict[str, Any]], Reply] = echo,
        port: int = 0,
    ) -> None:
        self.script: deque[Reply] = deque(script)
        self.responder = responder
        self.models: Reply = Reply(200, {"object": "list", "data": [{"id": MODEL}]})
        self.received: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        """The Authorization header of each chat request, in the order of `received`."""
        self.arrivals: list[float] = []
        """`time.monotonic()` of each chat request, in the order of `received`."""
        self.model_requests = 0
        self.active = 0
        self.peak = 0
        self.stopped = threading.Event()
        self._stopper: threading.Thread | None = None
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def add(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def next_reply(self, request: dict[str, Any], authorization: str | None = None) -> Reply:
        with self._lock:
            self.received.append(request)
            self.authorizations.append(authorization)
            self.arrivals.append(time.monotonic())
            scripted = self.script.popleft() if self.script else None
        return scripted if scripted is not None else self.responder(request)

    def enter(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def stop(self) -> None:
        """Stop listening (new connections are refused) and end every pending delay."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        # shutdown() waits for serve_forever to return: never call it from a handler thread.
        self._stopper = threading.Thread(target=self._shutdown, daemon=True)
        self._stopper.start()

    def _shutdown(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def join(self, timeout: float = 5.0) -> None:
        """Wait until the port is free again (after `stop`)."""
        if self._stopper is not None:
            self._stopper.join(timeout)
        self._thread.join(timeout)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest would show every request

    def do_GET(self) -> None:
        fake = self.server.fake
        if self.path.rstrip("/") != "/v1/models":
            self._send(Reply(404, {"error": {"message": f"no route {self.path}"}}))
            return
        with fake._lock:
            fake.model_requests += 1
        self._send(fake.models)

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(Reply(404, {"error": {"message": f"no route {self.path}"}}))
            return
        if fake.stopped.is_set():
            return  # a dead server answers nothing
        fake.enter()
        try:
            reply = fake.next_reply(json.loads(raw), self.headers.get("Authorization"))
            if reply.kill:
                fake.stop()
                return
            if reply.delay and fake.stopped.wait(reply.delay):
                return  # the server died while this request waited: no answer
            if reply.drop or fake.stopped.is_set():
                return
            self._send(reply)
        finally:
            fake.leave()

    def _send(self, reply: Reply) -> None:
        if isinstance(reply.body, (dict, list)):
            payload, kind = json.dumps(reply.body).encode(), "application/json"
        elif isinstance(reply.body, str):
            payload, kind = reply.body.encode(), "application/json"
        else:
            payload, kind = b"", "text/plain"
        self.send_response(reply.status)
        headers = {"Content-Type": kind, "Content-Length": str(len(payload)), **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def fake_server(*script: Reply, **options: Any) -> Iterator[FakeServer]:
    """A FakeServer for the duration of a block, always stopped afterwards."""
    server = FakeServer(*script, **options)
    try:
        yield server
    finally:
        server.stop()
        server.join()
