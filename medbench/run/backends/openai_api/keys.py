"""Where an API key may go: only to hosts the user allowed, and never into a stored message.

A spec names the variable that holds the key (`openai.api_key_env`, one of a short allow-list
checked at load time) and the endpoint (`openai.base_url`). Specs come from strangers' pull
requests, so the key is only sent to a host on `MEDBENCH_ALLOWED_HOSTS` (default: the
well-known API hosts and loopback), over https unless the host is loopback; and every error
text that may echo the request is redacted before it is stored or printed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from medbench.errors import BackendError

ALLOWED_HOSTS_ENV = "MEDBENCH_ALLOWED_HOSTS"
DEFAULT_ALLOWED_HOSTS = (
    "api.openai.com",
    "generativelanguage.googleapis.com",
    "openrouter.ai",
    "api.together.xyz",
    "api.mistral.ai",
    "localhost",
    "127.0.0.1",
    "::1",
)
"""Hosts an API key may be sent to when `MEDBENCH_ALLOWED_HOSTS` is not set."""
REDACTED = "[redacted]"
_TOKENS = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+|\b(sk-)[A-Za-z0-9_\-]{6,}")


def allowed_hosts() -> frozenset[str]:
    """The hosts a key may go to: `MEDBENCH_ALLOWED_HOSTS` (comma-separated), else the default."""
    raw = os.environ.get(ALLOWED_HOSTS_ENV)
    names = raw.split(",") if raw is not None else DEFAULT_ALLOWED_HOSTS
    return frozenset(n.strip().lower().strip("[]") for n in names if n.strip())


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_key_destination(model_id: str, base_url: str, variable: str) -> None:
    """Refuse (BackendError) to send the key in `variable` to `base_url` unless allowed."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    allowed = allowed_hosts()
    if host not in allowed:
        shown = ", ".join(sorted(allowed)) or "none"
        raise BackendError(
            f"model {model_id}: refusing to send the key in {variable} to {host or base_url!r}, "
            f"which is not an allowed host ({shown}). If you trust it, add it to "
            f"{ALLOWED_HOSTS_ENV} (comma-separated)."
        )
    if parts.scheme != "https" and not _loopback(host):
        raise BackendError(
            f"model {model_id}: refusing to send the key in {variable} to {base_url} over "
            f"{parts.scheme or 'no scheme'}: keys go over https (or to loopback) only."
        )


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secrets, Bearer tokens or `sk-...` keys."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return _TOKENS.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, text)
