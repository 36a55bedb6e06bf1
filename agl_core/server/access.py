"""Who may reach the servers we start (dashboard, collector, ``serve``): a loopback bind is open;
any other bind needs a shared token, and then every request must present it (``Authorization: Bearer``)."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


class AccessError(RuntimeError):
    """A server would be reachable from other machines without a token."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, token: str | None, *, service: str, token_env: str, flag: str = "--token") -> None:
    """Refuse a non-loopback bind of `service` without a token."""
    if not is_loopback(host) and not token:
        raise AccessError(
            f"refusing to serve {service} on {host}: it would be open to other machines. "
            f"Pass {flag} or set {token_env}, or bind 127.0.0.1."
        )


def token_matches(candidate: str | None, token: str) -> bool:
    return candidate is not None and candidate != "" and hmac.compare_digest(candidate.encode(), token.encode())


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (`headers` keyed in lower case)."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


class BearerTokenMiddleware:
    """Answers 401 (a JSON body saying `hint`) to every HTTP request but ``/health`` that lacks
    ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str, hint: str) -> None:
        self.app, self.token, self.hint = app, token, hint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/health":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if not token_matches(bearer(headers), self.token):
                response = JSONResponse({"error": {"message": f"unauthorized: {self.hint}", "type": "unauthorized"}}, status_code=401)
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
