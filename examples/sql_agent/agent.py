"""The SQL agent of the product card: ``Agent(..., tools=[execute_sql, query_schema])``.

`agl.execute_sql` and `agl.query_schema` read the bookshop database of the built-in
``sql-generation`` task set (read-only, with a time limit). The agent grades its own final reply with
the task's ``execution_match`` grader: the query in its last ```sql block must return the gold
query's rows.
"""

from __future__ import annotations

import agentlightning as agl

SYSTEM_PROMPT = (
    "You are a SQL expert answering questions about a SQLite database. Call query_schema to see the "
    "tables and execute_sql to try a query, then reply with your final query in a ```sql block."
)


def sql_agent(model: str | None = None) -> agl.Agent:
    """A runner agent ``(task, resources) -> reward`` on the rollout's LLM endpoint."""
    return agl.Agent("sql-agent", SYSTEM_PROMPT, tools=[agl.execute_sql, agl.query_schema], model=model)
