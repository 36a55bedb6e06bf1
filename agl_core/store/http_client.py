"""`HttpStore`: the `LightningStore` client of a store server (``http(s)://host:port``).

Each store method is one ``POST /api/store/{method}`` on a persistent keep-alive connection;
results are validated back into the pydantic types the method is annotated with. The class
forwards every `store_method` of `LightningStore` (``name = remote(LightningStore.name)``; a test
checks none is missing) except those the interface composes from others (`enqueue_rollout`,
`heartbeat`); `enqueue_rollouts` checks its items here first, as every backend does. A 4xx answer
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
from typing import Any, Callable, Concatenate, ParamSpec, Sequence, TypeVar

import httpx
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from agl_core.store import rules
from agl_core.store.base import LightningStore, StoreError, StoreUnavailable
from agl_core.types import Rollout, RolloutRequest

#: The store server's token (``agent-lightning collector --token``), sent by every client.
TOKEN_ENV = "AGL_STORE_TOKEN"
#: Longest single server-side wait of `HttpStore.wait_for_rollouts`; it repeats until its timeout.
LONG_POLL_S = 10.0

P = ParamSpec("P")
R = TypeVar("R")

_ARGUMENT_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "ValidationError": ValueError,
    "TypeError": TypeError,
}


@functools.cache
def _result_adapter(method: str) -> TypeAdapter:
    return TypeAdapter(typing.get_type_hints(getattr(LightningStore, method))["return"])


def remote(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate["HttpStore", P], R]:
    """`method` of `LightningStore` as one call to the store server, with the same signature."""
    name = method.__name__
    signature = inspect.signature(method)

    @functools.wraps(method)
    def forward(self: HttpStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        arguments = signature.bind(self, *args, **kwargs).arguments
        del arguments["self"]
        result: R = self._call(name, arguments)
        return result

    return forward


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
        except httpx.ConnectError as exc:  # never reached the server: nothing was done, retrying is safe
            raise StoreUnavailable(f"store server {self.url} unreachable ({method}): {exc}") from exc
        except httpx.HTTPError as exc:  # the call may have been applied
            raise StoreError(f"store server {self.url} failed to answer ({method}): {exc}") from exc
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
            refusal = StoreUnavailable if kind == StoreUnavailable.__name__ else StoreError
            raise refusal(f"store server {self.url} answered {response.status_code} to {method}: {message}")
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

    def enqueue_rollouts(self, items: Sequence[RolloutRequest]) -> list[Rollout]:
        result: list[Rollout] = self._call("enqueue_rollouts", {"items": rules.rollout_requests(items)})
        return result

    def close(self) -> None:
        self._client.close()

    start_rollout = remote(LightningStore.start_rollout)
    dequeue_rollout = remote(LightningStore.dequeue_rollout)
    update_attempt = remote(LightningStore.update_attempt)
    sweep = remote(LightningStore.sweep)
    cancel_rollout = remote(LightningStore.cancel_rollout)
    get_rollout = remote(LightningStore.get_rollout)
    query_rollouts = remote(LightningStore.query_rollouts)
    count_rollouts = remote(LightningStore.count_rollouts)
    query_attempts = remote(LightningStore.query_attempts)
    add_resources = remote(LightningStore.add_resources)
    annotate_resources = remote(LightningStore.annotate_resources)
    get_latest_resources = remote(LightningStore.get_latest_resources)
    get_resources = remote(LightningStore.get_resources)
    query_resources = remote(LightningStore.query_resources)
    add_spans = remote(LightningStore.add_spans)
    query_spans = remote(LightningStore.query_spans)
    count_spans = remote(LightningStore.count_spans)
    upsert_run = remote(LightningStore.upsert_run)
    get_run = remote(LightningStore.get_run)
    query_runs = remote(LightningStore.query_runs)
    add_metrics = remote(LightningStore.add_metrics)
    query_metrics = remote(LightningStore.query_metrics)
