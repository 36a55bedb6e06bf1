"""Who may reach the servers we start (dashboard, collector): a loopback bind is open; any other
bind needs a shared token, and then every request must present it (``Authorization: Bearer``)."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Mapping


class AccessError(RuntimeError):
    """A server would be reachable from other machines without a token."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, token: str | None, *, service: str, token_env: str) -> None:
    """Refuse a non-loopback bind of `service` without a token."""
    if not is_loopback(host) and not token:
        raise AccessError(
            f"refusing to serve {service} on {host}: it would be open to other machines. "
            f"Pass --token or set {token_env}, or bind 127.0.0.1."
        )


def token_matches(candidate: str | None, token: str) -> bool:
    return bool(candidate) and hmac.compare_digest(candidate.encode(), token.encode())


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (`headers` keyed in lower case)."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None
