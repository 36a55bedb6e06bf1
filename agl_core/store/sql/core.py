"""What both halves of `SqlStore` share: the engine, transactions, the clock, the heartbeat timeout."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import sqlalchemy as sa

from agl_core.paths import default_store_url
from agl_core.store import rules
from agl_core.store import tables as t
from agl_core.store.base import DEFAULT_HEARTBEAT_TIMEOUT_S, LightningStore, StoreUnavailable
from agl_core.store.sql.engine import engine_for

T = TypeVar("T")
#: How long a transaction is retried while the database is unreachable (a PostgreSQL restart).
RECONNECT_S = 30.0
_RECONNECT_PAUSE_S = 0.2


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
        self._reached = False  # a database never reached is an error at once, not one to wait for
        self._transact(lambda conn, _: t.metadata.create_all(conn))

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        if self._lock is None:
            with self._engine.begin() as conn:
                yield conn
            return
        with self._lock, self._engine.begin() as conn:
            yield conn

    def _transact(self, work: Callable[[sa.Connection, bool], T]) -> T:
        """``work(conn, retried)`` in one transaction.

        While PostgreSQL, once reached, is unreachable (restarting, a dropped connection) the
        transaction is run again, with ``retried=True``, for up to `RECONNECT_S`: a commit whose
        answer was lost may have happened, so a retried `work` must not insert twice. A full disk,
        a database never reached, or one still unreachable after that is `StoreUnavailable` in one
        line (nothing of this call stored).
        """
        deadline = time.monotonic() + RECONNECT_S
        retried = False
        while True:
            try:
                with self._tx() as conn:
                    done = work(conn, retried)
                self._reached = True
                return done
            except sa.exc.DBAPIError as exc:
                if not (isinstance(exc, sa.exc.OperationalError) or exc.connection_invalidated):
                    raise
                reason = " ".join(str(exc.orig).split()) or type(exc.orig).__name__
                if self._sqlite or not self._reached or time.monotonic() + _RECONNECT_PAUSE_S > deadline:
                    raise StoreUnavailable(f"store {self._where()}: {reason}") from None
            time.sleep(_RECONNECT_PAUSE_S)
            retried = True

    def _where(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()
