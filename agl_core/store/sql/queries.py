"""The SQL backend's statements, built once (building a SQLAlchemy expression costs several times
more than running it on SQLite), and the reads the rules need: reward spans, filters.

Bind parameters are prefixed ``b_`` so they never clash with the column names that
``insert``/``update`` reserve.
"""

from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa

from agl_core.store import rules
from agl_core.store import tables as t
from agl_core.tracing import semconv
from agl_core.types import Span

_b = sa.bindparam
CLAIM = (
    sa.select(t.rollouts)
    .where(t.rollouts.c.status.in_(["queuing", "requeuing"]))
    .order_by(t.rollouts.c.created_at)
    .limit(1)
    .with_for_update(skip_locked=True)
)
MARK_RUNNING = (
    t.rollouts.update()
    .where(t.rollouts.c.rollout_id == _b("b_rid"))
    .values(status="running", num_attempts=_b("b_seq"), updated_at=_b("b_now"))
)
SELECT_ROLLOUT = sa.select(t.rollouts).where(t.rollouts.c.rollout_id == _b("b_rid"))
SETTLE_ROLLOUT = (
    t.rollouts.update()
    .where(t.rollouts.c.rollout_id == _b("b_rid"))
    .values(status=_b("b_status"), final_reward=_b("b_reward"), updated_at=_b("b_now"))
)
STORED_ROLLOUT_IDS = sa.select(t.rollouts.c.rollout_id).where(t.rollouts.c.rollout_id.in_(_b("b_rids", expanding=True)))
ATTEMPT_BY_ID = sa.select(t.attempts).where(t.attempts.c.attempt_id == _b("b_aid"))
SELECT_ATTEMPT = sa.select(t.attempts).where(
    t.attempts.c.attempt_id == _b("b_aid"), t.attempts.c.rollout_id == _b("b_rid")
)
#: Ends an attempt only while it runs, so two sweepers (or a sweeper and a worker) end it once.
END_ATTEMPT = (
    t.attempts.update()
    .where(t.attempts.c.attempt_id == _b("b_aid"), t.attempts.c.status == "running")
    .values(status=_b("b_status"), end_time=_b("b_now"), error=_b("b_error"))
)
BEAT_ATTEMPT = (
    t.attempts.update()
    .where(t.attempts.c.attempt_id == _b("b_aid"), t.attempts.c.status == "running")
    .values(last_heartbeat=_b("b_now"))
)
RUNNING_ATTEMPTS = sa.select(t.attempts, t.rollouts.c.timeout_s).join(
    t.rollouts, t.rollouts.c.rollout_id == t.attempts.c.rollout_id
).where(t.attempts.c.status == "running")
_REWARD_SPANS = sa.select(t.spans).where(
    t.spans.c.rollout_id == _b("b_rid"), t.spans.c.attempt_id == _b("b_aid"), t.spans.c.name == semconv.SPAN_REWARD
)
_SUCCEEDED_ATTEMPTS = sa.select(t.attempts.c.rollout_id, t.attempts.c.attempt_id).where(
    t.attempts.c.rollout_id.in_(_b("b_rids", expanding=True)), t.attempts.c.status == "succeeded"
)
INSERT_ROLLOUT, INSERT_ATTEMPT, INSERT_SPAN = t.rollouts.insert(), t.attempts.insert(), t.spans.insert()
ATTEMPT_COLUMNS = [c.name for c in t.attempts.columns]


def attempt_reward_spans(conn: sa.Connection, rollout_id: str, attempt_id: str) -> list[Span]:
    """The reward spans of one attempt (the rules pick the latest)."""
    rows = conn.execute(_REWARD_SPANS, {"b_rid": rollout_id, "b_aid": attempt_id}).mappings()
    return [Span.model_validate(dict(row)) for row in rows]


def unstored_spans(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The span rows not stored yet: those no stored span matches in trace, span, rollout and attempt id."""
    key = ("trace_id", "span_id", "rollout_id", "attempt_id")
    query = sa.select(*(t.spans.c[k] for k in key)).where(t.spans.c.trace_id.in_({row["trace_id"] for row in rows}))
    stored = {tuple(found) for found in conn.execute(query)}
    return [row for row in rows if tuple(row[k] for k in key) not in stored]


def settle_late_rewards(conn: sa.Connection, rollout_ids: Iterable[str]) -> None:
    """Give the succeeded rollouts among `rollout_ids` that have no final reward the latest reward
    of their succeeded attempt (`rules.settles_late`)."""
    rows = conn.execute(
        sa.select(t.rollouts.c.rollout_id, t.rollouts.c.status, t.rollouts.c.final_reward).where(
            t.rollouts.c.rollout_id.in_(list(rollout_ids))
        )
    ).all()
    waiting = [rid for rid, status, reward in rows if rules.settles_late(status, reward)]
    if not waiting:
        return
    for rid, aid in conn.execute(_SUCCEEDED_ATTEMPTS, {"b_rids": waiting}).all():
        reward = rules.latest_reward(attempt_reward_spans(conn, rid, aid))
        if reward is not None:
            conn.execute(t.rollouts.update().where(t.rollouts.c.rollout_id == rid).values(final_reward=reward))


def status_filter(column: sa.Column, status: str | Iterable[str] | None) -> Any:
    if status is None:
        return None
    if isinstance(status, str):
        return column == status
    return column.in_(list(status))


def rollout_filters(
    status: Any, mode: str | None, run_id: str | None, rollout_ids: Any, agent: str | None = None
) -> list[Any]:
    """The WHERE clauses of `query_rollouts` / `count_rollouts`."""
    filters = [status_filter(t.rollouts.c.status, status)]
    if agent is not None:
        filters.append(t.rollouts.c.metadata["agent"].as_string() == agent)
    if mode is not None:
        filters.append(t.rollouts.c.mode == mode)
    if run_id is not None:
        filters.append(t.rollouts.c.run_id == run_id)
    if rollout_ids is not None:
        filters.append(t.rollouts.c.rollout_id.in_(list(rollout_ids)))
    return [f for f in filters if f is not None]
