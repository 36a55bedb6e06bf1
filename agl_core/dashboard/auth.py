"""Dashboard access (see `agl_core.server.access`): any bind beyond loopback needs a token on every request.

A browser cannot add an ``Authorization`` header to a page load, so the first page may carry
``?token=…``; the middleware then sets an HttpOnly cookie that later requests (API calls, assets)
send back. Scripts use ``Authorization: Bearer …``.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agl_core.server.access import bearer, token_matches

TOKEN_ENV = "AGL_DASHBOARD_TOKEN"
COOKIE_NAME = "agl_dashboard_token"


class TokenMiddleware:
    """Rejects every request that does not present the token (header, cookie or query)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token

    def _matches(self, candidate: str | None) -> bool:
        return token_matches(candidate, self.token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # the dashboard serves no websockets
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        cookie = SimpleCookie(headers.get("cookie", "")).get(COOKIE_NAME)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]

        if self._matches(bearer(headers)) or self._matches(cookie.value if cookie else None):
            await self.app(scope, receive, send)
        elif self._matches(query):
            await self.app(scope, receive, self._setting_cookie(send))
        else:
            await self._refuse(scope, receive, send)

    def _setting_cookie(self, send: Send) -> Send:
        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE_NAME}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        return send_with_cookie

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith("/api/"):
            response: Response = JSONResponse({"error": "unauthorized: a dashboard token is required"}, status_code=401)
        else:
            response = PlainTextResponse(
                "Agent Lightning dashboard: a token is required. Open this page with ?token=<token>.",
                status_code=401,
            )
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)
