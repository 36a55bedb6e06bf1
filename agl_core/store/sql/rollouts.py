"""The SQL backend's rollout cycle: enqueue, claim, report, sweep, cancel, query and wait.

It only executes: every decision (timeouts, requeue or fail, the final reward) is `rules`'.
PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``; SQLite's ``BEGIN IMMEDIATE`` makes a claim atomic.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

from agl_core.store import rules
from agl_core.store import tables as t
from agl_core.store.base import StoreError
from agl_core.store.sql import queries as q
from agl_core.store.sql.core import SqlCore
from agl_core.types import (
    TERMINAL_ROLLOUT_STATUSES,
    Attempt,
    AttemptedRollout,
    Rollout,
    RolloutRequest,
    new_id,
)


class SqlRollouts(SqlCore):
    """Rollouts and attempts (see `LightningStore` for the status machine)."""

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
        now = self._clock()
        # distinct creation times keep FIFO order exact on every backend
        rows = [self._rollout_row(item, now + i * 1e-6) for i, item in enumerate(rules.rollout_requests(items))]

        def enqueue(conn: sa.Connection, retried: bool) -> None:
            fresh = rows
            if retried:  # the lost commit may have stored them
                stored = set(conn.execute(q.STORED_ROLLOUT_IDS, {"b_rids": [r["rollout_id"] for r in rows]}).scalars())
                fresh = [row for row in rows if row["rollout_id"] not in stored]
            if fresh:
                conn.execute(q.INSERT_ROLLOUT, fresh)

        if rows:
            self._transact(enqueue)
        return [Rollout(**row) for row in rows]

    def _open_attempt(
        self, conn: sa.Connection, row: dict[str, Any], attempt_id: str, worker_id: str | None
    ) -> AttemptedRollout:
        now = self._clock()
        sequence = row["num_attempts"] + 1
        attempt = Attempt(
            attempt_id=attempt_id,
            rollout_id=row["rollout_id"],
            sequence=sequence,
            status="running",
            worker_id=worker_id,
            start_time=now,
            last_heartbeat=now,
        )
        conn.execute(q.INSERT_ATTEMPT, [attempt.model_dump()])
        conn.execute(q.MARK_RUNNING, {"b_rid": row["rollout_id"], "b_seq": sequence, "b_now": now})
        row = {**row, "status": "running", "num_attempts": sequence, "updated_at": now}
        return AttemptedRollout(**row, attempt=attempt)

    @staticmethod
    def _opened(conn: sa.Connection, attempt_id: str) -> AttemptedRollout | None:
        """Attempt `attempt_id` with its rollout, if a commit (perhaps one whose answer was lost) opened it."""
        attempt = conn.execute(q.ATTEMPT_BY_ID, {"b_aid": attempt_id}).mappings().first()
        if attempt is None:
            return None
        rollout = conn.execute(q.SELECT_ROLLOUT, {"b_rid": attempt["rollout_id"]}).mappings().one()
        return AttemptedRollout(**rollout, attempt=Attempt(**attempt))

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
        row, attempt_id = self._rollout_row(request, self._clock()), new_id("at")

        def start(conn: sa.Connection, retried: bool) -> AttemptedRollout:
            if retried and (opened := self._opened(conn, attempt_id)):
                return opened
            conn.execute(q.INSERT_ROLLOUT, [row])
            return self._open_attempt(conn, row, attempt_id, worker_id)

        return self._transact(start)

    def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        if rules.sweep_due(self._clock(), self._last_sweep, self.heartbeat_timeout):
            self.sweep()

        attempt_id = new_id("at")

        def claim(conn: sa.Connection, retried: bool) -> AttemptedRollout | None:
            if retried and (opened := self._opened(conn, attempt_id)):
                return opened  # the claim whose answer was lost
            row = conn.execute(q.CLAIM).mappings().first()
            return None if row is None else self._open_attempt(conn, dict(row), attempt_id, worker_id)

        return self._transact(claim)

    def _finish_attempt(
        self, conn: sa.Connection, attempt: dict[str, Any], status: str, *, reward: float | None, error: str | None
    ) -> dict[str, Any]:
        """Ends a running attempt and settles its rollout by the rules; returns the attempt as stored."""
        now = self._clock()
        rid, aid = attempt["rollout_id"], attempt["attempt_id"]
        ended = conn.execute(q.END_ATTEMPT, {"b_aid": aid, "b_status": status, "b_now": now, "b_error": error})
        if ended.rowcount == 0:  # someone else ended it first
            return dict(conn.execute(q.SELECT_ATTEMPT, {"b_aid": aid, "b_rid": rid}).mappings().one())
        rollout = conn.execute(q.SELECT_ROLLOUT, {"b_rid": rid}).mappings().one()
        settled = rules.settled_status(rollout["status"], rollout["num_attempts"], rollout["max_attempts"], status)
        if settled is not None:
            final = rules.final_reward(reward, q.attempt_reward_spans(conn, rid, aid)) if settled == "succeeded" else None
            conn.execute(q.SETTLE_ROLLOUT, {"b_rid": rid, "b_status": settled, "b_reward": final, "b_now": now})
        return {**attempt, "status": status, "end_time": now, "error": error}

    def update_attempt(
        self,
        rollout_id: str,
        attempt_id: str,
        status: str | None = None,
        *,
        reward: float | None = None,
        error: str | None = None,
    ) -> Attempt:
        reward = rules.check_report(status, reward)

        def report(conn: sa.Connection, _: bool) -> Attempt:
            found = conn.execute(q.SELECT_ATTEMPT, {"b_aid": attempt_id, "b_rid": rollout_id}).mappings().first()
            if found is None:
                raise StoreError(f"no attempt {attempt_id!r} of rollout {rollout_id!r}")
            attempt = dict(found)
            if attempt["status"] != "running":
                return Attempt(**attempt)  # a report on an ended attempt changes nothing (so a retry neither)
            if status is None or rules.is_heartbeat(status):
                now = self._clock()
                conn.execute(q.BEAT_ATTEMPT, {"b_aid": attempt_id, "b_now": now})
                return Attempt(**{**attempt, "last_heartbeat": now})
            return Attempt(**self._finish_attempt(conn, attempt, status, reward=reward, error=error))

        return self._transact(report)

    def sweep(self) -> int:
        now = self._last_sweep = self._clock()

        def sweep(conn: sa.Connection, _: bool) -> int:
            timed_out = 0
            for row in conn.execute(q.RUNNING_ATTEMPTS).mappings().all():
                if rules.timed_out(row["start_time"], row["last_heartbeat"], row["timeout_s"], self.heartbeat_timeout, now):
                    attempt = {name: row[name] for name in q.ATTEMPT_COLUMNS}
                    self._finish_attempt(conn, attempt, "timeout", reward=None, error=rules.TIMEOUT_ERROR)
                    timed_out += 1
            return timed_out

        return self._transact(sweep)

    def cancel_rollout(self, rollout_id: str) -> Rollout:

        def cancel(conn: sa.Connection, _: bool) -> None:
            now = self._clock()
            conn.execute(
                t.rollouts.update()
                .where(t.rollouts.c.rollout_id == rollout_id)
                .where(t.rollouts.c.status.not_in(list(TERMINAL_ROLLOUT_STATUSES)))
                .values(status="cancelled", updated_at=now)
            )
            conn.execute(
                t.attempts.update()
                .where(t.attempts.c.rollout_id == rollout_id, t.attempts.c.status == "running")
                .values(status="failed", end_time=now, error=rules.CANCELLED_ERROR)
            )

        self._transact(cancel)
        rollout = self.get_rollout(rollout_id)
        if rollout is None:
            raise StoreError(f"no rollout {rollout_id!r}")
        return rollout

    def get_rollout(self, rollout_id: str) -> Rollout | None:
        rows = self.query_rollouts(rollout_ids=[rollout_id])
        return rows[0] if rows else None

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
            .where(*q.rollout_filters(status, mode, run_id, rollout_ids, agent))
            .order_by(order, t.rollouts.c.rollout_id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        return self._transact(lambda conn, _: [Rollout(**row) for row in conn.execute(query).mappings()])

    def count_rollouts(
        self,
        status: str | Iterable[str] | None = None,
        mode: str | None = None,
        *,
        run_id: str | None = None,
        agent: str | None = None,
    ) -> int:
        filters = q.rollout_filters(status, mode, run_id, None, agent)
        query = sa.select(sa.func.count()).select_from(t.rollouts).where(*filters)
        return self._transact(lambda conn, _: int(conn.execute(query).scalar() or 0))

    def query_attempts(self, rollout_id: str) -> list[Attempt]:
        query = sa.select(t.attempts).where(t.attempts.c.rollout_id == rollout_id).order_by(t.attempts.c.sequence)
        return self._transact(lambda conn, _: [Attempt(**row) for row in conn.execute(query).mappings()])

    def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None, poll_s: float = 0.05
    ) -> list[Rollout]:
        # real time: this is a wait; the store's clock only decides the timeouts the sweeps find
        deadline = None if timeout is None else time.monotonic() + timeout
        wanted = list(rollout_ids)
        last_sweep = float("-inf")
        while True:
            if time.monotonic() - last_sweep > rules.SWEEP_INTERVAL_S:
                self.sweep()
                last_sweep = time.monotonic()
            done = self.query_rollouts(TERMINAL_ROLLOUT_STATUSES, rollout_ids=wanted)
            if len(done) == len(set(wanted)) or (deadline is not None and time.monotonic() >= deadline):
                order = {rid: i for i, rid in enumerate(wanted)}
                return sorted(done, key=lambda r: order[r.rollout_id])
            time.sleep(poll_s)
