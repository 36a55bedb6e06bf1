"""The LightningStore over HTTP: ``POST /api/store/{method}`` with the method's keyword arguments.

One route per `store_method` of `LightningStore` (`store_routes`); any other method name is a 404.

Arguments arrive as JSON; those whose annotation (on `LightningStore`) holds a pydantic model
(spans, resources, runs) are validated back into it. Results go out as JSON
(``{"result": ...}``); errors as ``{"error": <exception type>, "message": ...}`` with 400 for
bad arguments, 404 for an unknown method and 409 for a `StoreError`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agl_core.store.base import LightningStore, StoreError, store_methods


def _holds_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in typing.get_args(annotation))


@functools.cache
def argument_adapters(method: str) -> dict[str, TypeAdapter]:
    """Validators for the arguments of ``method`` that carry pydantic models."""
    hints = typing.get_type_hints(getattr(LightningStore, method))
    return {name: TypeAdapter(hint) for name, hint in hints.items() if name != "return" and _holds_model(hint)}


@functools.cache
def _parameters(method: str) -> frozenset[str]:
    """The keyword arguments ``method`` takes."""
    return frozenset(inspect.signature(getattr(LightningStore, method)).parameters) - {"self"}


def _error(status: int, exc: BaseException) -> JSONResponse:
    return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=status)


def call_store(store: LightningStore, method: str, kwargs: dict[str, Any]) -> Any:
    """Run one store method with JSON arguments; returns the JSON-ready result."""
    adapters = argument_adapters(method)
    args = {k: (adapters[k].validate_python(v) if k in adapters else v) for k, v in kwargs.items()}
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
        body = await request.body()
        kwargs = (await request.json()) if body else {}
    except ValueError as exc:
        return _error(400, ValueError(f"request body is not JSON: {exc}"))
    if not isinstance(kwargs, dict):
        return _error(400, TypeError("request body must be a JSON object of keyword arguments"))
    unknown = set(kwargs) - _parameters(method)
    if unknown:
        return _error(400, TypeError(f"{method}() got unexpected arguments: {', '.join(sorted(unknown))}"))
    try:
        result = await run_in_threadpool(call_store, store, method, kwargs)
    except StoreError as exc:
        return _error(409, exc)
    except (ValueError, TypeError, ValidationError) as exc:
        return _error(400, exc)
    return JSONResponse({"result": result})
