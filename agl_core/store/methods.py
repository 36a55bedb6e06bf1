"""How store methods are declared once and derived: the `store_method` marker and `async_twin`.

`LightningStore` marks each method of the store API with `store_method`; the HTTP server routes
and the HTTP client (`HttpStore`) enumerate the marked methods (`marked_methods`), and each
``a<method>`` twin is written in the class as ``a<method> = async_twin(<method>)``. Both helpers
keep the method's signature in its type (``ParamSpec``), so type checkers see every twin.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Concatenate, Coroutine, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__agl_store_method__"


def store_method(method: F) -> F:
    """Mark `method` as part of the store API (served over HTTP, forwarded by `HttpStore`)."""
    setattr(method, _MARK, True)
    return method


def marked_methods(cls: type) -> tuple[str, ...]:
    """The names of `cls`'s `store_method`\\ s, in declaration order (base classes first)."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        names.update((name, None) for name, value in vars(klass).items() if getattr(value, _MARK, False))
    return tuple(names)


def async_twin(method: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, R]]:
    """``a<method>``: runs the instance's `method` (a subclass's override included) in a worker thread."""
    name = method.__name__

    async def twin(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(getattr(self, name), *args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a{name}"
    twin.__doc__ = f"Async twin of `{name}`: the same call, run in a worker thread."
    return twin
