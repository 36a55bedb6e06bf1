"""Dashboard access (see `agl_core.server.access`): any bind beyond loopback needs a token on every
request, static files included.

A browser cannot add an ``Authorization`` header to a page load, and a token in the URL is refused
(it would land in logs and history). So a page load without the token is answered 401 with the
login form (``login.html``, also at ``GET /login``); the form posts the token to ``POST /login``,
which sets an HttpOnly, SameSite=Strict session cookie (an HMAC of the token, not the token itself)
and sends the browser to the dashboard. Scripts use ``Authorization: Bearer …``.
"""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs

from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agl_core.server.access import REFUSALS, TokenGate, bearer, refusal_headers, scope_headers, scope_refusal

TOKEN_ENV = "AGL_DASHBOARD_TOKEN"
COOKIE_NAME = "agl_dashboard_session"
LOGIN_PAGE = Path(__file__).parent / "static" / "login.html"
_MAX_FORM_BYTES = 4096


class TokenMiddleware:
    """Rejects every request that presents neither the token (bearer header) nor the session cookie."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.gate = TokenGate(token)
        self.session = hmac.new(token.encode(), b"agl-dashboard-session", hashlib.sha256).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # the dashboard serves no websockets
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["path"] == "/login":
            response = await self._login(scope, receive)
            await response(scope, receive, send)
            return
        headers = scope_headers(scope)
        status = scope_refusal(self.gate, scope, self.gate.matches(bearer(headers)) or self._has_session(headers))
        if status is None:
            await self.app(scope, receive, send)
        else:
            await self._refuse(scope, status)(scope, receive, send)

    def _has_session(self, headers: dict[str, str]) -> bool:
        try:
            cookie = SimpleCookie(headers.get("cookie", "")).get(COOKIE_NAME)
        except CookieError:
            return False
        return cookie is not None and hmac.compare_digest(cookie.value.encode("utf-8", "replace"), self.session.encode())

    async def _login(self, scope: Scope, receive: Receive) -> Response:
        if scope["method"] != "POST":
            return _login_page(200)
        body, more = b"", True
        while more and len(body) <= _MAX_FORM_BYTES:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        token = parse_qs(body[:_MAX_FORM_BYTES].decode("latin-1")).get("token", [None])[0]
        status = scope_refusal(self.gate, scope, self.gate.matches(token))
        if status is not None:
            return _login_page(status, REFUSALS[status])
        response = RedirectResponse("./", status_code=303)
        response.set_cookie(COOKIE_NAME, self.session, httponly=True, samesite="strict", path="/")
        return response

    def _refuse(self, scope: Scope, status: int) -> Response:
        if scope["path"].startswith("/api/") or status != 401:
            message = "unauthorized: a dashboard token is required" if status == 401 else REFUSALS[status]
            return JSONResponse({"error": message}, status_code=status, headers=refusal_headers(status, self.gate))
        return _login_page(401)


def _login_page(status: int, message: str = "") -> Response:
    page = LOGIN_PAGE.read_text().replace("<!--message-->", message)  # `message` is one of ours, not input
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})
