"""The dashboard's JSON API (``/api/…``): every list is paged on the server (``limit``/``offset``)
and answers ``{"items": […], "total": N, "limit": L, "offset": O}``.

Handlers only use the public `LightningStore` methods, so any backend (SQLite, PostgreSQL, a
remote store server) can be watched. Store calls are blocking; each handler runs in a thread.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from agl_core.dashboard import views
from agl_core.store import LightningStore
from agl_core.training.run_mirror import RunMirror, StorageError
from agl_core.training.runs import run_id_of, stored_runs
from agl_core.types import MetricRecord, Run

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_SPAN_LIMIT = 2000
ROLLOUT_STATUSES = ("queuing", "running", "succeeded", "failed", "cancelled", "requeuing")
#: How long the runs read from ``AGL_STORAGE``'s object storage are reused before it is read again.
STORAGE_TTL_S = 15.0
log = logging.getLogger("agentlightning")


def _int_param(request: Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise HTTPException(400, f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _page(request: Request, max_limit: int = MAX_LIMIT, default: int = DEFAULT_LIMIT) -> tuple[int, int]:
    limit = _int_param(request, "limit", default, lo=1, hi=max_limit)
    offset = _int_param(request, "offset", 0, lo=0, hi=2**31)
    return limit, offset


def _str_param(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def _paged(items: list[Any], total: int, limit: int, offset: int, **extra: Any) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset, **extra}


class DashboardApi:
    """Route handlers bound to one store."""

    def __init__(self, store: LightningStore):
        self.store = store
        self.storage = RunMirror.from_env()  # AGL_STORAGE=s3://…: the runs there are listed too
        self._stored: dict[str, tuple[Run, list[MetricRecord]]] = {}
        self._stored_at = -STORAGE_TTL_S

    def routes(self) -> list[Route]:
        def get(path: str, compute: Callable[[Request], Any]) -> Route:
            async def endpoint(request: Request) -> JSONResponse:
                return JSONResponse(await run_in_threadpool(compute, request))

            return Route(path, endpoint, methods=["GET"])

        return [
            get("/api/summary", self.summary),
            get("/api/runs", self.runs),
            get("/api/runs/{run_id}", self.run),
            get("/api/runs/{run_id}/metrics", self.metrics),
            get("/api/rollouts", self.rollouts),
            get("/api/rollouts/{rollout_id}", self.rollout),
            get("/api/rollouts/{rollout_id}/spans", self.spans),
            get("/api/resources", self.resources),
        ]

    # --- overview ----------------------------------------------------------------------------------
    def summary(self, request: Request) -> dict[str, Any]:
        latest = self.store.get_latest_resources()
        return {
            "store": self.store.url,
            "runs": len(self.store.query_runs()) + len(self._elsewhere()),
            "rollouts": {status: self.store.count_rollouts(status) for status in ROLLOUT_STATUSES},
            "spans": self.store.count_spans(),
            "resources_versions": latest.version if latest else 0,
        }

    # --- runs ------------------------------------------------------------------------------------------
    def runs(self, request: Request) -> dict[str, Any]:
        """The store's runs, newest first, then those only in object storage."""
        limit, offset = _page(request)
        # Runs are few (one per training job), so listing them all to page here is cheap.
        runs = self.store.query_runs() + [run for run, _ in self._elsewhere().values()]
        items = [views.run_summary(run, self._metrics(run)) for run in runs[offset : offset + limit]]
        return _paged(items, len(runs), limit, offset)

    def _elsewhere(self) -> dict[str, tuple[Run, list[MetricRecord]]]:
        """Runs in ``AGL_STORAGE``'s object storage that the store does not hold, by id, with their
        metrics (`stored_runs`); storage is read at most every `STORAGE_TTL_S`."""
        if self.storage is None:
            return {}
        if time.monotonic() - self._stored_at > STORAGE_TTL_S:
            self._stored_at = time.monotonic()
            try:
                self._stored = {run.run_id: (run, records) for run, records in stored_runs(self.storage)}
            except StorageError as exc:  # the store's runs are still listed; the last read of storage stays
                log.warning("dashboard: %s", exc)
        return {run_id: pair for run_id, pair in self._stored.items() if self.store.get_run(run_id) is None}

    def _metrics(self, run: Run) -> list[MetricRecord]:
        stored = self._elsewhere().get(run.run_id)
        return stored[1] if stored else self.store.query_metrics(run.run_id)

    def _get_run(self, request: Request):
        """The run a path names: its id, or its folder's name under ``$AGL_HOME/runs`` (`find_run`)
        or in object storage (read there, never fetched)."""
        name = request.path_params["run_id"]
        if not name or name.startswith(("~", ".")) or any(c in name for c in "/\\\0"):
            raise HTTPException(404, f"no run {name[:200]!r}")  # a name, never a path on this machine
        self._elsewhere()  # storage read afresh when due
        for stored, _ in self._stored.values():  # matched here, so that `find_run` never fetches a run for a page
            if name in (stored.run_id, (stored.output_dir or "").rsplit("/", 1)[-1]):
                return self.store.get_run(stored.run_id) or stored
        try:
            run = self.store.get_run(run_id_of(name, self.store))
        except (OSError, ValueError):  # no such run, or a folder whose run.json is unreadable
            run = None
        if run is None:
            raise HTTPException(404, f"no run {name[:200]!r}")
        return run

    def run(self, request: Request) -> dict[str, Any]:
        run = self._get_run(request)
        summary = views.run_summary(run, self._metrics(run))
        return {**summary, "config": run.config, "rollouts": self.store.count_rollouts(run_id=run.run_id)}

    def metrics(self, request: Request) -> dict[str, Any]:
        """Metric series; ``since_step`` returns only steps >= it, so live polling stays small.

        The client replaces its points from ``since_step`` on: a step may gain keys (train first,
        held-out later) after it was first read.
        """
        run = self._get_run(request)
        since = _int_param(request, "since_step", 0, lo=-(2**31), hi=2**31)
        records = [r for r in self._metrics(run) if r.step >= since]
        return {
            "run_id": run.run_id,
            "status": run.status,
            "since_step": since,
            "last_step": max((r.step for r in records), default=None),
            "series": views.metric_series(records),
        }

    # --- rollouts --------------------------------------------------------------------------------------
    def rollouts(self, request: Request) -> dict[str, Any]:
        limit, offset = _page(request)
        status = _str_param(request, "status")
        if status is not None and status not in ROLLOUT_STATUSES:
            raise HTTPException(400, f"unknown status {status!r}; one of {', '.join(ROLLOUT_STATUSES)}")
        filters = dict(
            mode=_str_param(request, "mode"), run_id=_str_param(request, "run_id"), agent=_str_param(request, "agent")
        )
        rollouts = self.store.query_rollouts(status, limit=limit, offset=offset, newest_first=True, **filters)
        items = []
        for rollout in rollouts:
            attempts = self.store.query_attempts(rollout.rollout_id) if rollout.num_attempts else []
            items.append(views.rollout_row(rollout, attempts[-1] if attempts else None))
        return _paged(items, self.store.count_rollouts(status, **filters), limit, offset)

    def rollout(self, request: Request) -> dict[str, Any]:
        rollout_id = request.path_params["rollout_id"]
        rollout = self.store.get_rollout(rollout_id)
        if rollout is None:
            raise HTTPException(404, f"no rollout {rollout_id!r}")
        attempts = self.store.query_attempts(rollout_id)
        resources = self.store.get_resources(rollout.resources_id) if rollout.resources_id else None
        return {
            **views.rollout_row(rollout, attempts[-1] if attempts else None),
            "input": views.preview(rollout.input, 4000),
            "metadata": rollout.metadata,
            "attempts": [
                {**a.model_dump(mode="json"), "duration_s": views.attempt_duration(a)} for a in attempts
            ],
            "resources_version": resources.version if resources else None,
            "span_count": self.store.count_spans(rollout_id),
        }

    def spans(self, request: Request) -> dict[str, Any]:
        """A rollout's spans in the order they were stored; the page builds the tree.

        A page holds one row per LLM request (`views.trace_view`), so it may hold fewer items than
        `limit` while `total` counts stored spans.
        """
        rollout_id = request.path_params["rollout_id"]
        limit, offset = _page(request, MAX_SPAN_LIMIT, default=500)
        spans = self.store.query_spans(rollout_id, limit=limit, offset=offset)
        return _paged(views.trace_view(spans), self.store.count_spans(rollout_id), limit, offset)

    # --- resources -------------------------------------------------------------------------------------
    def resources(self, request: Request) -> dict[str, Any]:
        limit, offset = _page(request)
        updates = self.store.query_resources(limit=limit, offset=offset)
        latest = self.store.get_latest_resources()
        # Versions are numbered 1, 2, … without gaps, so the latest version is the count.
        return _paged([views.resources_view(u) for u in updates], latest.version if latest else 0, limit, offset)
