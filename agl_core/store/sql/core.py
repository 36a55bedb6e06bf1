"""What both halves of `SqlStore` share: the engine, transactions, the clock, the heartbeat timeout."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import sqlalchemy as sa

from agl_core.paths import default_store_url
from agl_core.store import rules
from agl_core.store import tables as t
from agl_core.store.base import DEFAULT_HEARTBEAT_TIMEOUT_S, LightningStore
from agl_core.store.sql.engine import engine_for


class SqlCore(LightningStore):
    """``heartbeat_timeout`` applies to every running attempt; ``clock`` gives the time every
    timestamp and timeout is measured with (``time.time``; tests pass a fake one)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
        clock: rules.Clock = time.time,
    ) -> None:
        self.url = url or default_store_url()
        self.heartbeat_timeout = heartbeat_timeout
        self._clock = clock
        self._engine = engine_for(self.url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        # One connection per process is enough for SQLite; serialising here avoids lock churn.
        self._lock = threading.RLock() if self._sqlite else None
        self._last_sweep = float("-inf")
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
