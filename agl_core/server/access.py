"""Who may reach the servers we start (dashboard, collector, ``serve``): a loopback bind is open;
any other bind needs a shared token, and then every request must present it (``Authorization: Bearer``).

`TokenGate` holds the rules every server applies alike (SECURITY.md): tokens are compared in
constant time and never logged; a token in a URL's query string is refused (URLs end up in logs,
browser history and ``Referer`` headers), even the right one; a client (by address) with more than
`MAX_FAILURES` wrong tokens within `FAILURE_WINDOW_S` seconds is answered 429 until the window has
passed, whatever it presents meanwhile. A refusal never says whether a token was missing or wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from collections import OrderedDict, deque
from typing import Mapping
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: Wrong tokens a client may present within `FAILURE_WINDOW_S` before it is answered 429.
MAX_FAILURES = 20
FAILURE_WINDOW_S = 60.0
# Query parameters that look like credentials: a request carrying one is refused.
_URL_CREDENTIALS = frozenset({"token", "access_token", "api_key", "apikey", "key", "auth"})
_MAX_CLIENTS = 10_000  # clients whose failures are remembered; the oldest are forgotten first


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
    """Constant time, in the length too: the digests are compared, not the strings."""
    if not candidate:
        return False
    digest = hashlib.sha256
    return hmac.compare_digest(digest(candidate.encode()).digest(), digest(token.encode()).digest())


def bearer(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (`headers` keyed in lower case)."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def scope_headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def scope_refusal(gate: "TokenGate", scope: Scope, presented: bool) -> int | None:
    """`TokenGate.refusal` for an ASGI request."""
    return gate.refusal((scope.get("client") or ("?", 0))[0], presented, scope.get("query_string", b""))


class TokenGate:
    """One server's token and the failed attempts of its clients; see the module docstring."""

    def __init__(self, token: str, *, max_failures: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S) -> None:
        self._token = token
        self.max_failures, self.window_s = max_failures, window_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def matches(self, candidate: str | None) -> bool:
        return token_matches(candidate, self._token)

    def refusal(self, client: str, presented: bool, query: bytes = b"") -> int | None:
        """None when a request from `client` (its address) `presented` the token (`matches`) and
        may pass; else the status to answer: 400 for a credential in the `query` string, 429 for a
        client over its failures, 401."""
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        if any(name.lower() in _URL_CREDENTIALS for name, _ in pairs):
            return 400
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            while failures and failures[0] <= now - self.window_s:
                failures.popleft()
            if failures is not None and len(failures) >= self.max_failures:
                return 429
        if presented:
            return None
        with self._lock:
            self._failures.setdefault(client, deque()).append(now)
            self._failures.move_to_end(client)
            while len(self._failures) > _MAX_CLIENTS:
                self._failures.popitem(last=False)
        return 401


REFUSALS = {
    400: "credentials in the URL are refused: send them as an Authorization: Bearer header",
    401: "unauthorized",
    429: "too many failed attempts from this address: try again later",
}


def refusal_headers(status: int, gate: TokenGate) -> dict[str, str]:
    if status == 429:
        return {"Retry-After": str(int(gate.window_s))}
    return {"WWW-Authenticate": "Bearer"} if status == 401 else {}


class BearerTokenMiddleware:
    """Refuses (`TokenGate`) every HTTP request and WebSocket but ``GET /health`` that lacks
    ``Authorization: Bearer <token>``; a 401 says `hint` (the same words for a missing or a wrong token)."""

    def __init__(self, app: ASGIApp, token: str, hint: str) -> None:
        self.app, self.gate, self.hint = app, TokenGate(token), hint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or (scope["type"] == "http" and scope["path"] == "/health"):
            await self.app(scope, receive, send)
            return
        status = scope_refusal(self.gate, scope, self.gate.matches(bearer(scope_headers(scope))))
        if status is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            message = f"unauthorized: {self.hint}" if status == 401 else REFUSALS[status]
            body = {"error": {"message": message, "type": "unauthorized" if status == 401 else "refused"}}
            await JSONResponse(body, status_code=status, headers=refusal_headers(status, self.gate))(scope, receive, send)
