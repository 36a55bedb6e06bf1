"""The SQL agent: `agl.Agent` with `query_schema` and `execute_sql` tools, rewarded by execution match."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import agentlightning as agl
from examples.sql_agent.db import SCHEMA, run_sql

SYSTEM_PROMPT = (
    "You answer questions about a SQLite database. Call query_schema to see the tables, then "
    "execute_sql with one SELECT query, then reply with the answer."
)


def execution_match(db: Path, gold_sql: str, executed: list[str]) -> float:
    """1 when the last query the agent executed returns the same rows as the gold query."""
    if not executed:
        return 0.0
    try:
        return float(run_sql(db, executed[-1]) == run_sql(db, gold_sql))
    except Exception:  # invalid SQL from the model scores zero
        return 0.0


def sql_agent(db: Path, model: str | None = None) -> Any:
    """A runner agent ``(task, resources) -> reward`` over the database at `db`."""

    def query_schema() -> str:
        """Return the CREATE TABLE statements of the database."""
        return SCHEMA.strip()

    @agl.rollout(name="sql-agent")
    def run(task: dict[str, str], resources: dict[str, Any]) -> float:
        executed: list[str] = []

        def execute_sql(query: str) -> str:
            """Run one read-only SQL query and return up to 20 rows as JSON."""
            executed.append(query)
            return json.dumps(run_sql(db, query))

        agent = agl.Agent("sql-agent", SYSTEM_PROMPT, tools=[query_schema, execute_sql], model=model)
        agent.run(task["question"], resources)
        return execution_match(db, task["sql"], executed)

    return run
