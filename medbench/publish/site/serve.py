"""`medbench site serve`: a local HTTP server on the built folder."""

from __future__ import annotations

import contextlib
import errno
import http.server
from functools import partial
from pathlib import Path

from medbench.errors import MedbenchError


class _Handler(http.server.SimpleHTTPRequestHandler):
    quiet = False

    def log_message(self, format: str, *args: object) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def make_server(
    out: Path, host: str = "127.0.0.1", port: int = 8000, *, quiet: bool = False
) -> http.server.ThreadingHTTPServer:
    """An HTTP server of a built site (port 0: any free port); call `serve_forever()` on it."""
    if not (out / "index.html").is_file():
        raise MedbenchError(f"{out}: no index.html; build the site first: `medbench site build`.")
    handler = type("Handler", (_Handler,), {"quiet": quiet})
    try:
        return http.server.ThreadingHTTPServer((host, port), partial(handler, directory=str(out)))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise MedbenchError(
                f"{host}:{port} is already in use (another `medbench site serve`?). "
                f"Stop it, or pass another port: --port {port + 1}."
            ) from e
        raise MedbenchError(f"cannot listen on {host}:{port}: {e.strerror}.") from e


def serve(out: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve a built site with Python's `http.server` until interrupted."""
    with make_server(out, host, port) as server:
        print(f"Serving {out} at http://{host}:{server.server_address[1]}/ (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
