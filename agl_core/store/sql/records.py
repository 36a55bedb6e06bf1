"""The SQL backend's records: resource versions, spans, runs and metrics."""

from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa

from agl_core.store import tables as t
from agl_core.store.sql import queries as q
from agl_core.store.sql.core import SqlCore
from agl_core.tracing import semconv
from agl_core.types import MetricRecord, Resource, ResourcesUpdate, Run, Span, new_id


class SqlRecords(SqlCore):
    """Resources, spans (a reward span may settle a late final reward), runs and metrics."""

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
        resources_id = new_id("res")

        def add(conn: sa.Connection, retried: bool) -> Any:
            if retried and (row := self._resources_row(conn, resources_id)) is not None:
                return row  # the lost commit had happened
            version = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.resources.c.version), 0))).scalar() or 0) + 1
            row = dict(
                resources_id=resources_id,
                version=version,
                created_at=self._clock(),
                resources=payload,
                metadata=metadata or {},
            )
            conn.execute(t.resources.insert(), [row])
            return row

        return self._resources(self._transact(add))

    @staticmethod
    def _resources_row(conn: sa.Connection, resources_id: str) -> Any:
        query = sa.select(t.resources).where(t.resources.c.resources_id == resources_id)
        return conn.execute(query).mappings().first()

    def annotate_resources(self, resources_id: str, metadata: dict[str, Any]) -> ResourcesUpdate:
        def annotate(conn: sa.Connection, _: bool) -> Any:
            row = conn.execute(
                sa.select(t.resources).where(t.resources.c.resources_id == resources_id).with_for_update()
            ).mappings().first()
            if row is None:
                raise ValueError(f"no resources version {resources_id!r}")
            merged = {**row["metadata"], **metadata}
            conn.execute(t.resources.update().where(t.resources.c.resources_id == resources_id).values(metadata=merged))
            return {**row, "metadata": merged}

        return self._resources(self._transact(annotate))

    def get_latest_resources(self) -> ResourcesUpdate | None:
        query = sa.select(t.resources).order_by(t.resources.c.version.desc()).limit(1)
        row = self._transact(lambda conn, _: conn.execute(query).mappings().first())
        return self._resources(row) if row else None

    def get_resources(self, resources_id: str) -> ResourcesUpdate | None:
        row = self._transact(lambda conn, _: self._resources_row(conn, resources_id))
        return self._resources(row) if row else None

    def query_resources(self, limit: int | None = None, offset: int = 0) -> list[ResourcesUpdate]:
        query = sa.select(t.resources).order_by(t.resources.c.version.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return self._transact(lambda conn, _: [self._resources(row) for row in conn.execute(query).mappings()])

    # --- spans -------------------------------------------------------------------------------
    def add_spans(self, spans: Sequence[Span]) -> int:
        if not spans:
            return 0
        rows = [span.model_dump(mode="json", exclude={"sequence_id"}) for span in spans]
        rewarded = {s.rollout_id for s in spans if s.rollout_id and s.name == semconv.SPAN_REWARD}

        def add(conn: sa.Connection, retried: bool) -> None:
            # a retry stores only what the lost commit did not (a span is its trace and span id in its attempt)
            fresh = q.unstored_spans(conn, rows) if retried else rows
            if fresh:
                conn.execute(q.INSERT_SPAN, fresh)
            if rewarded:
                q.settle_late_rewards(conn, rewarded)

        self._transact(add)
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
        return self._transact(lambda conn, _: [Span.model_validate(dict(row)) for row in conn.execute(query).mappings()])

    def count_spans(self, rollout_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.spans)
        if rollout_id is not None:
            query = query.where(t.spans.c.rollout_id == rollout_id)
        return self._transact(lambda conn, _: int(conn.execute(query).scalar() or 0))

    # --- runs and metrics ----------------------------------------------------------------------
    def upsert_run(self, run: Run) -> Run:
        run = run.model_copy(update={"updated_at": self._clock()})
        row = run.model_dump(mode="json")

        def upsert(conn: sa.Connection, _: bool) -> None:
            created = conn.execute(sa.select(t.runs.c.created_at).where(t.runs.c.run_id == run.run_id)).scalar()
            if created is not None:  # an update keeps the run's creation time
                row["created_at"] = created
                conn.execute(t.runs.update().where(t.runs.c.run_id == run.run_id).values(**row))
            else:
                conn.execute(t.runs.insert(), [row])

        self._transact(upsert)
        return run.model_copy(update={"created_at": row["created_at"]})

    def get_run(self, run_id: str) -> Run | None:
        query = sa.select(t.runs).where(t.runs.c.run_id == run_id)
        row = self._transact(lambda conn, _: conn.execute(query).mappings().first())
        return Run(**row) if row else None

    def query_runs(self, limit: int | None = None, offset: int = 0) -> list[Run]:
        query = sa.select(t.runs).order_by(t.runs.c.created_at.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return self._transact(lambda conn, _: [Run(**row) for row in conn.execute(query).mappings()])

    def add_metrics(self, run_id: str, step: int, metrics: dict[str, float | None]) -> MetricRecord:
        record = MetricRecord(run_id=run_id, step=step, metrics=metrics, timestamp=self._clock())
        row = record.model_dump(mode="json")

        def add(conn: sa.Connection, retried: bool) -> None:
            if retried:  # the lost commit may have added it
                same = sa.select(t.metrics.c.id).where(*(t.metrics.c[k] == row[k] for k in ("run_id", "step", "timestamp")))
                if conn.execute(same).first():
                    return
            conn.execute(t.metrics.insert(), [row])

        self._transact(add)
        return record

    def query_metrics(self, run_id: str) -> list[MetricRecord]:
        query = sa.select(t.metrics).where(t.metrics.c.run_id == run_id).order_by(t.metrics.c.step, t.metrics.c.id)
        return self._transact(lambda conn, _: [MetricRecord(**row) for row in conn.execute(query).mappings()])
