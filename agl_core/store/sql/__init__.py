"""SQL backend of `LightningStore` through SQLAlchemy Core: SQLite (file or memory) and PostgreSQL.

`SqlStore` executes `agl_core.store.rules`; its halves are `rollouts` (the rollout cycle) and
`records` (resources, spans, runs, metrics), over `core` (engine, transactions, clock), `engine`
(SQLite tuning) and `queries` (prebuilt statements).
"""

from agl_core.store.sql.records import SqlRecords
from agl_core.store.sql.rollouts import SqlRollouts


class SqlStore(SqlRollouts, SqlRecords):
    """``SqlStore(url, heartbeat_timeout=60.0, clock=time.time)``; see `SqlCore` and `LightningStore`."""


__all__ = ["SqlStore"]
