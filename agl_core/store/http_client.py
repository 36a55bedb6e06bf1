"""`HttpStore`: the `LightningStore` client of a store server (``http(s)://host:port``).

Each store method is one ``POST /api/store/{method}`` on a persistent keep-alive connection;
results are validated back into the pydantic types the method is annotated with. A 4xx answer
becomes `StoreError` (``ValueError`` / ``TypeError`` for bad arguments) carrying the server's
message; an unreachable or failing server becomes `StoreError` too, naming the URL. A server
that needs a token gets ``AGL_STORE_TOKEN`` as ``Authorization: Bearer``.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
import typing
from typing import Any, Callable, Sequence

import httpx
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from agl_core.store.base import STORE_METHODS, LightningStore, StoreError
from agl_core.types import Rollout

#: The store server's token (``agent-lightning collector --token``), sent by every client.
TOKEN_ENV = "AGL_STORE_TOKEN"
#: Longest single server-side wait of `HttpStore.wait_for_rollouts`; it repeats until its timeout.
LONG_POLL_S = 10.0

_ARGUMENT_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "ValidationError": ValueError,
    "TypeError": TypeError,
}


@functools.cache
def _result_adapter(method: str) -> TypeAdapter:
    return TypeAdapter(typing.get_type_hints(getattr(LightningStore, method))["return"])


class HttpStore(LightningStore):
    """See the module docstring. ``timeout`` bounds every request (seconds)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout
        headers = {"content-type": "application/json"}
        if token := os.environ.get(TOKEN_ENV):
            headers["authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=f"{self.url}/api/store/", timeout=timeout, headers=headers)

    def _call(self, method: str, arguments: dict[str, Any], timeout: float | None = None) -> Any:
        body = json.dumps(to_jsonable_python(arguments))
        try:
            response = self._client.post(method, content=body, timeout=timeout or self._timeout)
        except httpx.HTTPError as exc:
            raise StoreError(f"store server {self.url} unreachable ({method}): {exc}") from exc
        if response.status_code >= 400:
            try:
                error = response.json()
                detail = error.get("error")  # the store API's error name, or an OpenAI-style error object
                kind = detail if isinstance(detail, str) else ""
                message = error.get("message") or (detail.get("message") if isinstance(detail, dict) else None) or response.text
            except (ValueError, AttributeError):
                kind, message = "", response.text
            if 400 <= response.status_code < 500 and kind in _ARGUMENT_ERRORS:
                raise _ARGUMENT_ERRORS[kind](message)
            raise StoreError(f"store server {self.url} answered {response.status_code} to {method}: {message}")
        return _result_adapter(method).validate_python(response.json()["result"])

    def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None, poll_s: float = 0.05
    ) -> list[Rollout]:
        """Long-polls the server in waits of at most `LONG_POLL_S` until done or ``timeout``."""
        wanted = list(rollout_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = LONG_POLL_S if deadline is None else max(0.0, min(LONG_POLL_S, deadline - time.monotonic()))
            done = self._call(
                "wait_for_rollouts",
                {"rollout_ids": wanted, "timeout": left, "poll_s": poll_s},
                timeout=left + self._timeout,
            )
            if len(done) == len(set(wanted)) or (deadline is not None and time.monotonic() >= deadline):
                return done

    def close(self) -> None:
        self._client.close()


def _forwarder(method: str) -> Callable[..., Any]:
    base = getattr(LightningStore, method)
    signature = inspect.signature(base)
    var_keyword = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    def forward(self: HttpStore, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        del arguments["self"]
        if var_keyword is not None:
            arguments.update(arguments.pop(var_keyword, {}))
        return self._call(method, arguments)

    return functools.wraps(base)(forward)


for _method in STORE_METHODS:
    if _method not in vars(HttpStore):
        setattr(HttpStore, _method, _forwarder(_method))
