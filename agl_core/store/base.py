"""`LightningStore`: one interface for rollouts, attempts, resources, spans, runs and metrics.

``LightningStore(url)`` picks the backend by URL scheme: ``sqlite:///path`` (default
``$AGL_HOME/store.db``), ``memory://``, ``postgresql://…`` and ``http(s)://host:port`` (a client
of ``agent-lightning collector``). Plugins may add schemes through ``agl_store_backends``.
Every method has an async twin named ``a<method>`` that runs it off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable, Sequence

from agl_core.paths import default_store_url
from agl_core.store.registry import backend_for_url
from agl_core.types import (
    Attempt,
    AttemptedRollout,
    MetricRecord,
    Resource,
    ResourcesUpdate,
    Rollout,
    Run,
    Span,
)

DEFAULT_HEARTBEAT_TIMEOUT_S = 60.0


class StoreError(RuntimeError):
    """A store operation that cannot be done (unknown rollout, attempt not running, …)."""


class LightningStore:
    """Base class and URL dispatcher; see the module docstring."""

    url: str

    def __new__(cls, url: str | None = None, **kwargs: Any) -> "LightningStore":
        if cls is not LightningStore:
            return super().__new__(cls)
        backend = backend_for_url(url or default_store_url())
        return super().__new__(backend)

    # --- rollouts ----------------------------------------------------------------------------
    def enqueue_rollout(
        self,
        input: Any,
        mode: str = "train",
        *,
        task_id: str | None = None,
        resources_id: str | None = None,
        run_id: str | None = None,
        max_attempts: int = 1,
        timeout_s: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Rollout:
        return self.enqueue_rollouts(
            [
                dict(
                    input=input,
                    mode=mode,
                    task_id=task_id,
                    resources_id=resources_id,
                    run_id=run_id,
                    max_attempts=max_attempts,
                    timeout_s=timeout_s,
                    metadata=metadata,
                )
            ]
        )[0]

    def enqueue_rollouts(self, items: Sequence[dict[str, Any]]) -> list[Rollout]:
        """Enqueue many rollouts in one transaction; each item holds `enqueue_rollout`'s arguments."""
        raise NotImplementedError

    def start_rollout(
        self, input: Any, mode: str = "train", *, worker_id: str | None = None, **kwargs: Any
    ) -> AttemptedRollout:
        """Create a rollout already running, for agents traced outside a runner."""
        raise NotImplementedError

    def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        """Atomically claim the oldest queued rollout and open a new attempt on it."""
        raise NotImplementedError

    def update_attempt(
        self,
        rollout_id: str,
        attempt_id: str,
        status: str | None = None,
        *,
        reward: float | None = None,
        error: str | None = None,
    ) -> Attempt:
        """Record an attempt's outcome; a failed attempt requeues its rollout until `max_attempts`."""
        raise NotImplementedError

    def heartbeat(self, rollout_id: str, attempt_id: str) -> None:
        raise NotImplementedError

    def sweep(self) -> int:
        """Time out attempts whose heartbeat stopped or whose time ran out; returns how many."""
        raise NotImplementedError

    def cancel_rollout(self, rollout_id: str) -> Rollout:
        raise NotImplementedError

    def get_rollout(self, rollout_id: str) -> Rollout | None:
        raise NotImplementedError

    def query_rollouts(
        self,
        status: str | Iterable[str] | None = None,
        mode: str | None = None,
        *,
        run_id: str | None = None,
        rollout_ids: Sequence[str] | None = None,
        agent: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[Rollout]:
        """`agent` keeps rollouts whose ``metadata["agent"]`` equals it."""
        raise NotImplementedError

    def count_rollouts(
        self,
        status: str | Iterable[str] | None = None,
        mode: str | None = None,
        *,
        run_id: str | None = None,
        agent: str | None = None,
    ) -> int:
        raise NotImplementedError

    def query_attempts(self, rollout_id: str) -> list[Attempt]:
        raise NotImplementedError

    def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None, poll_s: float = 0.05
    ) -> list[Rollout]:
        """Block until the rollouts are terminal (or `timeout`); returns those that finished."""
        raise NotImplementedError

    # --- resources ---------------------------------------------------------------------------
    def add_resources(
        self, resources: dict[str, Resource], metadata: dict[str, Any] | None = None
    ) -> ResourcesUpdate:
        raise NotImplementedError

    def annotate_resources(self, resources_id: str, metadata: dict[str, Any]) -> ResourcesUpdate:
        """Merge `metadata` into a version's metadata (a score found later, say); the resources
        themselves never change. Raises ``ValueError`` for an unknown version."""
        raise NotImplementedError

    def get_latest_resources(self) -> ResourcesUpdate | None:
        raise NotImplementedError

    def get_resources(self, resources_id: str) -> ResourcesUpdate | None:
        raise NotImplementedError

    def query_resources(self, limit: int | None = None, offset: int = 0) -> list[ResourcesUpdate]:
        raise NotImplementedError

    # --- spans -------------------------------------------------------------------------------
    def add_spans(self, spans: Sequence[Span]) -> int:
        raise NotImplementedError

    def query_spans(
        self,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
        *,
        trace_id: str | None = None,
        unassigned: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Span]:
        raise NotImplementedError

    def count_spans(self, rollout_id: str | None = None) -> int:
        raise NotImplementedError

    # --- runs and metrics ----------------------------------------------------------------------
    def upsert_run(self, run: Run) -> Run:
        raise NotImplementedError

    def get_run(self, run_id: str) -> Run | None:
        raise NotImplementedError

    def query_runs(self, limit: int | None = None, offset: int = 0) -> list[Run]:
        raise NotImplementedError

    def add_metrics(self, run_id: str, step: int, metrics: dict[str, float | None]) -> MetricRecord:
        raise NotImplementedError

    def query_metrics(self, run_id: str) -> list[MetricRecord]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "LightningStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


#: Public methods that get an async twin (``a`` + name) and that the store server exposes.
STORE_METHODS: tuple[str, ...] = (
    "enqueue_rollout",
    "enqueue_rollouts",
    "start_rollout",
    "dequeue_rollout",
    "update_attempt",
    "heartbeat",
    "sweep",
    "cancel_rollout",
    "get_rollout",
    "query_rollouts",
    "count_rollouts",
    "query_attempts",
    "wait_for_rollouts",
    "add_resources",
    "annotate_resources",
    "get_latest_resources",
    "get_resources",
    "query_resources",
    "add_spans",
    "query_spans",
    "count_spans",
    "upsert_run",
    "get_run",
    "query_runs",
    "add_metrics",
    "query_metrics",
)


def _async_twin(name: str):
    async def twin(self: LightningStore, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self, name), *args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a{name}"
    twin.__doc__ = f"Async twin of :meth:`LightningStore.{name}`."
    return twin


for _name in STORE_METHODS:
    setattr(LightningStore, f"a{_name}", _async_twin(_name))
