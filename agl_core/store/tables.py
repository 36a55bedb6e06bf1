"""SQLAlchemy Core schema of the store (SQLite and PostgreSQL alike)."""

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

rollouts = Table(
    "rollouts",
    metadata,
    Column("rollout_id", String(64), primary_key=True),
    Column("input", JSON),
    Column("mode", String(16), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("task_id", String(128)),
    Column("resources_id", String(64)),
    Column("run_id", String(64), index=True),
    Column("final_reward", Float),
    Column("max_attempts", Integer, nullable=False),
    Column("timeout_s", Float),
    Column("num_attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("metadata", JSON),
    Index("ix_rollouts_status_created", "status", "created_at"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("attempt_id", String(64), primary_key=True),
    Column("rollout_id", String(64), nullable=False, index=True),
    Column("sequence", Integer, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("worker_id", String(128)),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float),
    Column("last_heartbeat", Float),
    Column("error", Text),
)

resources = Table(
    "resources",
    metadata,
    Column("resources_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("resources", JSON, nullable=False),
    Column("metadata", JSON),
)

spans = Table(
    "spans",
    metadata,
    Column("sequence_id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", String(64)),
    Column("attempt_id", String(64)),
    Column("trace_id", String(32), nullable=False, index=True),
    Column("span_id", String(16), nullable=False),
    Column("parent_id", String(16)),
    Column("name", Text, nullable=False),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float),
    Column("attributes", JSON),
    Column("events", JSON),
    Column("status", JSON),
    Column("resource", JSON),
    Index("ix_spans_rollout_attempt", "rollout_id", "attempt_id"),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("algorithm", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("config", JSON),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("output_dir", Text),
)

metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("step", Integer, nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("metrics", JSON, nullable=False),
    Index("ix_metrics_run_step", "run_id", "step"),
)
