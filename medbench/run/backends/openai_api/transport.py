"""The HTTP transport of the openai backend: one deadline per request, a size cap on answers,
and no request to another host than the endpoint's (redirects included).

The openai client's timeout bounds each read, not a request: a server that drips a byte
every few seconds holds a request for as long as it likes, and one that answers 1 GiB has
it read into memory. Here every socket operation of a request gets at most the time left
until the request's deadline (headers included), the body is counted as it arrives, and a
redirect (with the image body and, for the same host, the key) may only go back to the
endpoint's own scheme, host and port.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore2 as httpcore
import httpx2 as httpx

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""Largest answer body medbench reads (a chat completion is a few kilobytes)."""


class RequestRefused(Exception):
    """An exchange medbench stops: a redirect to another host, or an answer over the cap."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Deadline(threading.local):
    at: float | None = None

    def left(self, timeout: float | None) -> float | None:
        if self.at is None:
            return timeout
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout("the request ran past its deadline")
        return remaining if timeout is None else min(timeout, remaining)


_DEADLINE = _Deadline()


class _Stream(httpcore.NetworkStream):
    """A socket whose every operation ends by the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _DEADLINE.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _DEADLINE.left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _DEADLINE.left(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _DEADLINE.left(timeout)
        return _Stream(self._inner.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        left = _DEADLINE.left(timeout)
        return _Stream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _CappedBody(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, limit: int, request: httpx.Request) -> None:
        self._inner, self._limit, self._request = inner, limit, request

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                raise RequestRefused(
                    "answer too large", f"the answer is over {self._limit // 1024} KiB"
                )
            yield chunk

    def close(self) -> None:
        _DEADLINE.at = None
        self._inner.close()


class BoundedTransport(httpx.BaseTransport):
    """HTTP to one origin only, each request within `deadline_s`, answers within `max_bytes`."""

    def __init__(self, base_url: str, deadline_s: float, max_bytes: int | None = None) -> None:
        self._origin = httpx.URL(base_url)
        self._deadline_s = deadline_s
        self._max_bytes = MAX_RESPONSE_BYTES if max_bytes is None else max_bytes
        self._inner = httpx.HTTPTransport()
        pool = getattr(self._inner, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is not None:  # every socket operation then ends by the deadline
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url, origin = request.url, self._origin
        if (url.scheme, url.host, url.port) != (origin.scheme, origin.host, origin.port):
            raise RequestRefused(
                "redirect refused",
                f"refusing to send the request to {url.scheme}://{url.host}"
                f"{f':{url.port}' if url.port else ''}, which is not the endpoint's host",
            )
        request.headers["Accept-Encoding"] = "identity"  # so that the cap counts what is kept
        _DEADLINE.at = time.monotonic() + self._deadline_s
        response = self._inner.handle_request(request)
        encoding = response.headers.get("Content-Encoding", "identity").lower()
        if encoding != "identity":
            response.close()
            raise RequestRefused(
                "answer too large", f"the answer is compressed ({encoding}), which was not asked"
            )
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedBody(response.stream, self._max_bytes, request),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()
