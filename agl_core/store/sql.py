"""SQL backend of `LightningStore` through SQLAlchemy Core: SQLite (file or memory) and PostgreSQL.

SQLite runs in WAL mode and opens every transaction with ``BEGIN IMMEDIATE`` so that several
processes can share one file: a claim (dequeue) is atomic and a writer waits instead of failing.
PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from agl_core.store import rules
from agl_core.store import tables as t
from agl_core.store.base import DEFAULT_HEARTBEAT_TIMEOUT_S, LightningStore, StoreError
from agl_core.tracing import semconv
from agl_core.types import (
    TERMINAL_ROLLOUT_STATUSES,
    Attempt,
    AttemptedRollout,
    MetricRecord,
    Resource,
    ResourcesUpdate,
    Rollout,
    RolloutRequest,
    Run,
    Span,
    new_id,
)

_ROLLOUT_COLUMNS = [c.name for c in t.rollouts.columns]

# The statements of the rollout cycle, built once: building a SQLAlchemy expression costs several
# times more than running it on SQLite. Bind parameters are prefixed ``b_`` so they never clash
# with the column names that ``insert``/``update`` reserve.
_b = sa.bindparam
_CLAIM = (
    sa.select(t.rollouts)
    .where(t.rollouts.c.status.in_(["queuing", "requeuing"]))
    .order_by(t.rollouts.c.created_at)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_MARK_RUNNING = (
    t.rollouts.update()
    .where(t.rollouts.c.rollout_id == _b("b_rid"))
    .values(status="running", num_attempts=_b("b_seq"), updated_at=_b("b_now"))
)
_SELECT_ROLLOUT = sa.select(t.rollouts).where(t.rollouts.c.rollout_id == _b("b_rid"))
_SETTLE_ROLLOUT = (
    t.rollouts.update()
    .where(t.rollouts.c.rollout_id == _b("b_rid"))
    .values(status=_b("b_status"), updated_at=_b("b_now"))
)
_SUCCEED_ROLLOUT = (
    t.rollouts.update()
    .where(t.rollouts.c.rollout_id == _b("b_rid"))
    .values(status="succeeded", final_reward=_b("b_reward"), updated_at=_b("b_now"))
)
_SELECT_ATTEMPT = sa.select(t.attempts).where(
    t.attempts.c.attempt_id == _b("b_aid"), t.attempts.c.rollout_id == _b("b_rid")
)
_END_ATTEMPT = (
    t.attempts.update()
    .where(t.attempts.c.attempt_id == _b("b_aid"))
    .values(status=_b("b_status"), end_time=_b("b_now"), error=_b("b_error"))
)
_BEAT_ATTEMPT = t.attempts.update().where(t.attempts.c.attempt_id == _b("b_aid")).values(last_heartbeat=_b("b_now"))
_LAST_REWARD = (
    sa.select(t.spans.c.attributes)
    .where(t.spans.c.rollout_id == _b("b_rid"), t.spans.c.name == semconv.SPAN_REWARD)
    .order_by(t.spans.c.end_time.desc(), t.spans.c.sequence_id.desc())
    .limit(1)
)
_LAST_ATTEMPT_REWARD = _LAST_REWARD.where(t.spans.c.attempt_id == _b("b_aid"))
_INSERT_ROLLOUT, _INSERT_ATTEMPT, _INSERT_SPAN = t.rollouts.insert(), t.attempts.insert(), t.spans.insert()


def _json_serializer() -> Any:
    """orjson when installed (JSON columns dominate span writes), else the stdlib."""
    try:
        import orjson
    except ImportError:
        import json

        return json.dumps
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

    def dumps(value: Any) -> str:
        return orjson.dumps(value, option=options).decode()

    return dumps


def _engine_for(url: str) -> sa.Engine:
    if url.startswith("memory:"):
        engine = sa.create_engine(
            "sqlite://",
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            json_serializer=_json_serializer(),
        )
    elif url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60}, json_serializer=_json_serializer()
        )
    else:
        if url.startswith(("postgres://", "postgresql://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        try:
            engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10)
        except ModuleNotFoundError as exc:
            raise ImportError(
                f"{exc.name} is missing for {url.split(':')[0]}: pip install 'agentlightning[postgres]'"
            ) from exc
        return engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _status_filter(column: sa.Column, status: str | Iterable[str] | None) -> Any:
    if status is None:
        return None
    if isinstance(status, str):
        return column == status
    return column.in_(list(status))


def _finite_reward(value: Any) -> float | None:
    if value is None:
        return None
    try:
        reward = float(value)
    except (TypeError, ValueError):
        return None
    return reward if math.isfinite(reward) else None


class SqlStore(LightningStore):
    """See the module docstring. ``heartbeat_timeout`` applies to every running attempt."""

    def __init__(self, url: str | None = None, *, heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT_S):
        from agl_core.paths import default_store_url

        self.url = url or default_store_url()
        self.heartbeat_timeout = heartbeat_timeout
        self._engine = _engine_for(self.url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        # One connection per process is enough for SQLite; serialising here avoids lock churn.
        self._lock = threading.RLock() if self._sqlite else None
        self._last_sweep = 0.0
        with self._tx() as conn:
            t.metadata.create_all(conn)

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        if self._lock is None:
            with self._engine.begin() as conn:
                yield conn
            return
        with self._lock, self._engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self._engine.dispose()

    # --- rollouts ----------------------------------------------------------------------------
    @staticmethod
    def _rollout_row(item: RolloutRequest, now: float) -> dict[str, Any]:
        return dict(
            item.model_dump(),
            rollout_id=new_id("ro"),
            status="queuing",
            final_reward=None,
            num_attempts=0,
            created_at=now,
            updated_at=now,
        )

    def enqueue_rollouts(self, items: Sequence[RolloutRequest]) -> list[Rollout]:
        now = time.time()
        # distinct creation times keep FIFO order exact on every backend
        rows = [self._rollout_row(item, now + i * 1e-6) for i, item in enumerate(rules.rollout_requests(items))]
        if rows:
            with self._tx() as conn:
                conn.execute(_INSERT_ROLLOUT, rows)
        return [Rollout(**row) for row in rows]

    def _open_attempt(self, conn: sa.Connection, row: dict[str, Any], worker_id: str | None) -> AttemptedRollout:
        now = time.time()
        sequence = row["num_attempts"] + 1
        attempt = Attempt(
            attempt_id=new_id("at"),
            rollout_id=row["rollout_id"],
            sequence=sequence,
            status="running",
            worker_id=worker_id,
            start_time=now,
            last_heartbeat=now,
        )
        conn.execute(_INSERT_ATTEMPT, [attempt.model_dump()])
        conn.execute(_MARK_RUNNING, {"b_rid": row["rollout_id"], "b_seq": sequence, "b_now": now})
        row = {**row, "status": "running", "num_attempts": sequence, "updated_at": now}
        return AttemptedRollout(**row, attempt=attempt)

    def start_rollout(
        self,
        input: Any,
        mode: str = "train",
        *,
        worker_id: str | None = None,
        task_id: str | None = None,
        resources_id: str | None = None,
        run_id: str | None = None,
        max_attempts: int = 1,
        timeout_s: float | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AttemptedRollout:
        request = RolloutRequest(
            input=input, mode=mode, task_id=task_id, resources_id=resources_id, run_id=run_id,
            max_attempts=max_attempts, timeout_s=timeout_s, metadata=metadata or {},
        )
        row = self._rollout_row(request, time.time())
        with self._tx() as conn:
            conn.execute(_INSERT_ROLLOUT, [row])
            return self._open_attempt(conn, row, worker_id)

    def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        if time.monotonic() - self._last_sweep > min(1.0, self.heartbeat_timeout / 4):
            self.sweep()
        with self._tx() as conn:
            row = conn.execute(_CLAIM).mappings().first()
            if row is None:
                return None
            return self._open_attempt(conn, dict(row), worker_id)

    def _get_attempt(self, conn: sa.Connection, rollout_id: str, attempt_id: str) -> dict[str, Any]:
        row = conn.execute(_SELECT_ATTEMPT, {"b_aid": attempt_id, "b_rid": rollout_id}).mappings().first()
        if row is None:
            raise StoreError(f"no attempt {attempt_id!r} of rollout {rollout_id!r}")
        return dict(row)

    def _last_reward(self, conn: sa.Connection, rollout_id: str, attempt_id: str | None) -> float | None:
        query = _LAST_REWARD if attempt_id is None else _LAST_ATTEMPT_REWARD
        attrs = conn.execute(query, {"b_rid": rollout_id, "b_aid": attempt_id}).scalar()
        return _finite_reward((attrs or {}).get(semconv.AGL_REWARD_VALUE))

    def _finish_attempt(
        self,
        conn: sa.Connection,
        attempt: dict[str, Any],
        status: str,
        *,
        reward: float | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        """Ends the attempt, settles or requeues its rollout; returns the attempt as now stored."""
        now = time.time()
        rid, aid = attempt["rollout_id"], attempt["attempt_id"]
        conn.execute(_END_ATTEMPT, {"b_aid": aid, "b_status": status, "b_now": now, "b_error": error})
        ended = {**attempt, "status": status, "end_time": now, "error": error}
        rollout = conn.execute(_SELECT_ROLLOUT, {"b_rid": rid}).mappings().one()
        if rollout["status"] in TERMINAL_ROLLOUT_STATUSES:
            return ended  # a late report for a rollout already settled (e.g. cancelled) changes nothing
        if status == "succeeded":
            final = reward if reward is not None else self._last_reward(conn, rid, aid)
            conn.execute(_SUCCEED_ROLLOUT, {"b_rid": rid, "b_reward": final, "b_now": now})
        else:
            settled = "requeuing" if rollout["num_attempts"] < rollout["max_attempts"] else "failed"
            conn.execute(_SETTLE_ROLLOUT, {"b_rid": rid, "b_status": settled, "b_now": now})
        return ended

    def update_attempt(
        self,
        rollout_id: str,
        attempt_id: str,
        status: str | None = None,
        *,
        reward: float | None = None,
        error: str | None = None,
    ) -> Attempt:
        if reward is not None and _finite_reward(reward) is None:
            raise ValueError(f"reward must be a finite number, got {reward!r}")
        if status not in (None, "running", "succeeded", "failed", "timeout"):
            raise ValueError(f"unknown attempt status {status!r}")
        with self._tx() as conn:
            attempt = self._get_attempt(conn, rollout_id, attempt_id)
            if status in (None, "running"):
                now = time.time()
                conn.execute(_BEAT_ATTEMPT, {"b_aid": attempt_id, "b_now": now})
                attempt["last_heartbeat"] = now
            elif attempt["status"] == "running":
                attempt = self._finish_attempt(conn, attempt, status, reward=reward, error=error)
            return Attempt(**attempt)

    def sweep(self) -> int:
        now = time.time()
        self._last_sweep = time.monotonic()
        a, r = t.attempts, t.rollouts
        last_sign = sa.func.coalesce(a.c.last_heartbeat, a.c.start_time)
        with self._tx() as conn:
            stale = (
                conn.execute(
                    sa.select(a)
                    .join(r, r.c.rollout_id == a.c.rollout_id)
                    .where(a.c.status == "running")
                    .where(
                        sa.or_(
                            last_sign < now - self.heartbeat_timeout,
                            sa.and_(r.c.timeout_s.is_not(None), a.c.start_time + r.c.timeout_s < now),
                        )
                    )
                )
                .mappings()
                .all()
            )
            for attempt in stale:
                self._finish_attempt(conn, dict(attempt), "timeout", error="timed out (no heartbeat or over timeout_s)")
        return len(stale)

    def cancel_rollout(self, rollout_id: str) -> Rollout:
        with self._tx() as conn:
            now = time.time()
            conn.execute(
                t.rollouts.update()
                .where(t.rollouts.c.rollout_id == rollout_id)
                .where(t.rollouts.c.status.not_in(list(TERMINAL_ROLLOUT_STATUSES)))
                .values(status="cancelled", updated_at=now)
            )
            conn.execute(
                t.attempts.update()
                .where(t.attempts.c.rollout_id == rollout_id, t.attempts.c.status == "running")
                .values(status="failed", end_time=now, error="cancelled")
            )
        rollout = self.get_rollout(rollout_id)
        if rollout is None:
            raise StoreError(f"no rollout {rollout_id!r}")
        return rollout

    def get_rollout(self, rollout_id: str) -> Rollout | None:
        rows = self.query_rollouts(rollout_ids=[rollout_id])
        return rows[0] if rows else None

    def _rollout_filters(
        self, status: Any, mode: str | None, run_id: str | None, rollout_ids: Any, agent: str | None = None
    ) -> list[Any]:
        filters = [_status_filter(t.rollouts.c.status, status)]
        if agent is not None:
            filters.append(t.rollouts.c.metadata["agent"].as_string() == agent)
        if mode is not None:
            filters.append(t.rollouts.c.mode == mode)
        if run_id is not None:
            filters.append(t.rollouts.c.run_id == run_id)
        if rollout_ids is not None:
            filters.append(t.rollouts.c.rollout_id.in_(list(rollout_ids)))
        return [f for f in filters if f is not None]

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
        order = t.rollouts.c.created_at.desc() if newest_first else t.rollouts.c.created_at
        query = (
            sa.select(t.rollouts)
            .where(*self._rollout_filters(status, mode, run_id, rollout_ids, agent))
            .order_by(order, t.rollouts.c.rollout_id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            return [Rollout(**row) for row in conn.execute(query).mappings()]

    def count_rollouts(
        self,
        status: str | Iterable[str] | None = None,
        mode: str | None = None,
        *,
        run_id: str | None = None,
        agent: str | None = None,
    ) -> int:
        query = sa.select(sa.func.count()).select_from(t.rollouts).where(
            *self._rollout_filters(status, mode, run_id, None, agent)
        )
        with self._tx() as conn:
            return int(conn.execute(query).scalar() or 0)

    def query_attempts(self, rollout_id: str) -> list[Attempt]:
        query = sa.select(t.attempts).where(t.attempts.c.rollout_id == rollout_id).order_by(t.attempts.c.sequence)
        with self._tx() as conn:
            return [Attempt(**row) for row in conn.execute(query).mappings()]

    def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None, poll_s: float = 0.05
    ) -> list[Rollout]:
        deadline = None if timeout is None else time.monotonic() + timeout
        wanted = list(rollout_ids)
        last_sweep = 0.0
        while True:
            if time.monotonic() - last_sweep > 1.0:
                self.sweep()
                last_sweep = time.monotonic()
            done = [
                r for r in self.query_rollouts(TERMINAL_ROLLOUT_STATUSES, rollout_ids=wanted)
            ]
            if len(done) == len(set(wanted)) or (deadline is not None and time.monotonic() >= deadline):
                order = {rid: i for i, rid in enumerate(wanted)}
                return sorted(done, key=lambda r: order[r.rollout_id])
            time.sleep(poll_s)

    # --- resources ---------------------------------------------------------------------------
    @staticmethod
    def _resources(row: Any) -> ResourcesUpdate:
        return ResourcesUpdate.model_validate(dict(row))

    def add_resources(
        self, resources: dict[str, Resource], metadata: dict[str, Any] | None = None
    ) -> ResourcesUpdate:
        payload = {
            name: (res.model_dump(mode="json") if hasattr(res, "model_dump") else dict(res))
            for name, res in resources.items()
        }
        with self._tx() as conn:
            version = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.resources.c.version), 0))).scalar()) + 1
            row = dict(
                resources_id=new_id("res"),
                version=version,
                created_at=time.time(),
                resources=payload,
                metadata=metadata or {},
            )
            conn.execute(t.resources.insert(), [row])
        return self._resources(row)

    def annotate_resources(self, resources_id: str, metadata: dict[str, Any]) -> ResourcesUpdate:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(t.resources).where(t.resources.c.resources_id == resources_id).with_for_update()
            ).mappings().first()
            if row is None:
                raise ValueError(f"no resources version {resources_id!r}")
            merged = {**row["metadata"], **metadata}
            conn.execute(t.resources.update().where(t.resources.c.resources_id == resources_id).values(metadata=merged))
        return self._resources({**row, "metadata": merged})

    def get_latest_resources(self) -> ResourcesUpdate | None:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(t.resources).order_by(t.resources.c.version.desc()).limit(1)
            ).mappings().first()
        return self._resources(row) if row else None

    def get_resources(self, resources_id: str) -> ResourcesUpdate | None:
        with self._tx() as conn:
            row = conn.execute(
                sa.select(t.resources).where(t.resources.c.resources_id == resources_id)
            ).mappings().first()
        return self._resources(row) if row else None

    def query_resources(self, limit: int | None = None, offset: int = 0) -> list[ResourcesUpdate]:
        query = sa.select(t.resources).order_by(t.resources.c.version.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            return [self._resources(row) for row in conn.execute(query).mappings()]

    # --- spans -------------------------------------------------------------------------------
    def add_spans(self, spans: Sequence[Span]) -> int:
        if not spans:
            return 0
        rows = []
        for span in spans:
            row = span.model_dump(mode="json", exclude={"sequence_id"})
            rows.append(row)
        late_rewards = {
            s.rollout_id for s in spans if s.rollout_id and s.name == semconv.SPAN_REWARD
        }
        with self._tx() as conn:
            conn.execute(_INSERT_SPAN, rows)
            if late_rewards:
                # Rewards exported after their rollout succeeded still settle its final reward.
                settled = conn.execute(
                    sa.select(t.rollouts.c.rollout_id).where(
                        t.rollouts.c.rollout_id.in_(late_rewards),
                        t.rollouts.c.status == "succeeded",
                        t.rollouts.c.final_reward.is_(None),
                    )
                ).scalars().all()
                for rollout_id in settled:
                    conn.execute(
                        t.rollouts.update()
                        .where(t.rollouts.c.rollout_id == rollout_id)
                        .values(final_reward=self._last_reward(conn, rollout_id, None))
                    )
        return len(rows)

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
        query = sa.select(t.spans).order_by(t.spans.c.sequence_id).offset(offset)
        if rollout_id is not None:
            query = query.where(t.spans.c.rollout_id == rollout_id)
        if attempt_id is not None:
            query = query.where(t.spans.c.attempt_id == attempt_id)
        if trace_id is not None:
            query = query.where(t.spans.c.trace_id == trace_id)
        if unassigned:
            query = query.where(t.spans.c.rollout_id.is_(None))
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            return [Span.model_validate(dict(row)) for row in conn.execute(query).mappings()]

    def count_spans(self, rollout_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.spans)
        if rollout_id is not None:
            query = query.where(t.spans.c.rollout_id == rollout_id)
        with self._tx() as conn:
            return int(conn.execute(query).scalar() or 0)

    # --- runs and metrics ----------------------------------------------------------------------
    def upsert_run(self, run: Run) -> Run:
        run = run.model_copy(update={"updated_at": time.time()})
        row = run.model_dump(mode="json")
        with self._tx() as conn:
            created = conn.execute(sa.select(t.runs.c.created_at).where(t.runs.c.run_id == run.run_id)).scalar()
            if created is not None:  # an update keeps the run's creation time
                row["created_at"] = created
                conn.execute(t.runs.update().where(t.runs.c.run_id == run.run_id).values(**row))
            else:
                conn.execute(t.runs.insert(), [row])
        return run.model_copy(update={"created_at": row["created_at"]})

    def get_run(self, run_id: str) -> Run | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.run_id == run_id)).mappings().first()
        return Run(**row) if row else None

    def query_runs(self, limit: int | None = None, offset: int = 0) -> list[Run]:
        query = sa.select(t.runs).order_by(t.runs.c.created_at.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            return [Run(**row) for row in conn.execute(query).mappings()]

    def add_metrics(self, run_id: str, step: int, metrics: dict[str, float | None]) -> MetricRecord:
        record = MetricRecord(run_id=run_id, step=step, metrics=metrics)
        with self._tx() as conn:
            conn.execute(t.metrics.insert(), [record.model_dump(mode="json")])
        return record

    def query_metrics(self, run_id: str) -> list[MetricRecord]:
        query = sa.select(t.metrics).where(t.metrics.c.run_id == run_id).order_by(t.metrics.c.step, t.metrics.c.id)
        with self._tx() as conn:
            return [MetricRecord(**row) for row in conn.execute(query).mappings()]
