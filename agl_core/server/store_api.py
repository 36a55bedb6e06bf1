"""The LightningStore over HTTP: ``POST /api/store/{method}`` with the method's keyword arguments.

One route per `store_method` of `LightningStore` (`store_routes`); any other method name is a 404.

Arguments arrive as JSON; those whose annotation (on `LightningStore`) holds a pydantic model
(spans, resources, runs) are validated back into it. Results go out as JSON
(``{"result": ...}``); errors as ``{"error": <exception type>, "message": ...}`` with 400 for
bad arguments, 404 for an unknown method, 409 for a `StoreError` (503 for `StoreUnavailable`: disk full,
database unreachable; retry later) and 413 beyond a size limit
(`agl_core.server.limits`). Every argument is checked against its annotation before the store
sees it; integers must fit 64 bits and pages (``limit``, ``offset``) cannot be negative; one
``wait_for_rollouts`` call waits at most `MAX_WAIT_S` (`HttpStore` long-polls in shorter waits).
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any, Iterator

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agl_core.server.limits import LimitError, check_attributes, check_span_count, parse_json, read_body
from agl_core.store.base import LightningStore, StoreError, StoreUnavailable, store_methods
from agl_core.types import Span

#: Longest wait of one ``wait_for_rollouts`` request (seconds).
MAX_WAIT_S = 60.0
# Arguments the store checks itself, so every backend refuses them in the same words.
_CHECKED_BY_THE_STORE = frozenset({"reward"})
_INT64 = 2**63


def _holds_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in typing.get_args(annotation))


@functools.cache
def argument_adapters(method: str) -> dict[str, tuple[TypeAdapter, bool]]:
    """A validator for each argument of ``method``, and whether it builds pydantic models."""
    hints = typing.get_type_hints(getattr(LightningStore, method))
    return {name: (TypeAdapter(hint), _holds_model(hint)) for name, hint in hints.items() if name != "return"}


@functools.cache
def _parameters(method: str) -> frozenset[str]:
    """The keyword arguments ``method`` takes."""
    return frozenset(inspect.signature(getattr(LightningStore, method)).parameters) - {"self"}


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        problems = [f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()[:3]]
        text = "; ".join(problems)
    else:
        text = str(exc)
    return " ".join(text.split())[:1000]  # one line, whatever the exception said


def _error(status: int, exc: BaseException) -> JSONResponse:
    return JSONResponse({"error": type(exc).__name__, "message": _message(exc)}, status_code=status)


def _check_bounds(method: str, kwargs: dict[str, Any]) -> None:
    for name, value in kwargs.items():
        if isinstance(value, int) and not -_INT64 <= value < _INT64:
            raise ValueError(f"{name} does not fit 64 bits")
        if name in ("limit", "offset") and isinstance(value, int) and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if method == "wait_for_rollouts":
        timeout, poll_s = kwargs.get("timeout"), kwargs.get("poll_s", 0.05)
        if timeout is None or not 0 <= timeout <= MAX_WAIT_S:
            raise ValueError(f"timeout must be between 0 and {MAX_WAIT_S} seconds per request, got {timeout}")
        if not 0.001 <= poll_s <= MAX_WAIT_S:
            raise ValueError(f"poll_s must be between 0.001 and {MAX_WAIT_S} seconds, got {poll_s}")


def call_store(store: LightningStore, method: str, kwargs: dict[str, Any]) -> Any:
    """Run one store method with JSON arguments; returns the JSON-ready result.

    Arguments that hold models are validated into them; the others are only checked (strictly:
    no ``"5"`` for an int) and passed on as they came.
    """
    adapters = argument_adapters(method)
    args = {}
    for name, value in kwargs.items():
        adapter, builds_models = adapters.get(name, (None, False))
        if adapter is None or name in _CHECKED_BY_THE_STORE:
            args[name] = value
        else:
            try:
                validated = adapter.validate_python(value, strict=not builds_models)
                if isinstance(validated, Iterator):  # an Iterable[...] validates its items as they are read
                    validated = list(validated)
            except ValidationError as exc:
                raise ValueError(f"argument {name!r}: {_message(exc)}") from None
            args[name] = validated if builds_models else value
    _check_bounds(method, args)
    if method == "add_spans":
        check_span_count(len(args.get("spans") or ()))
        check_attributes(typing.cast(list[Span], args.get("spans") or []))
    return to_jsonable_python(getattr(store, method)(**args))


def _endpoint(method: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return await _serve(request, method)

    return endpoint


async def _unknown_method(request: Request) -> Response:
    method = request.path_params["method"]
    return _error(404, LookupError(f"unknown store method {method!r}; known: {', '.join(store_methods())}"))


def store_routes() -> list[Route]:
    """``POST /api/store/<method>`` for each store method, then a JSON 404 for any other name."""
    routes = [Route(f"/api/store/{method}", _endpoint(method), methods=["POST"]) for method in store_methods()]
    return [*routes, Route("/api/store/{method}", _unknown_method, methods=["POST"])]


async def _serve(request: Request, method: str) -> Response:
    store: LightningStore = request.app.state.store
    try:
        body = await read_body(request)
        kwargs = parse_json(body) if body else {}
    except LimitError as exc:
        return _error(exc.status, exc)
    except ValueError as exc:
        return _error(400, ValueError(f"request body is not JSON: {exc}"))
    if not isinstance(kwargs, dict):
        return _error(400, TypeError("request body must be a JSON object of keyword arguments"))
    unknown = set(kwargs) - _parameters(method)
    if unknown:
        return _error(400, TypeError(f"{method}() got unexpected arguments: {', '.join(sorted(unknown))}"))
    try:
        result = await run_in_threadpool(call_store, store, method, kwargs)
    except StoreUnavailable as exc:
        return _error(503, exc)
    except StoreError as exc:
        return _error(409, exc)
    except LimitError as exc:
        return _error(exc.status, exc)
    except (ValueError, TypeError, ValidationError) as exc:
        return _error(400, exc)
    return JSONResponse({"result": result})
