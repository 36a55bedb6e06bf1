"""What only the SQL backend does (the behaviour every backend shares is in test_store_contract):
URL dispatch, SQLite's WAL mode, and claims that never collide on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import agentlightning as agl
from agl_core.store import tables
from agl_core.store.sql import SqlStore
from agl_core.types import RolloutRequest


def test_dispatch_by_url(tmp_path: Path) -> None:
    assert isinstance(agl.LightningStore("memory://"), SqlStore)
    assert isinstance(agl.LightningStore(f"sqlite:///{tmp_path}/x.db"), SqlStore)
    with pytest.raises(ValueError, match="unknown store URL"):
        agl.LightningStore("redis://x")


def test_sqlite_file_runs_in_wal_mode(tmp_path: Path) -> None:
    with SqlStore(f"sqlite:///{tmp_path / 'nested' / 'store.db'}") as store:
        with store._engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert (tmp_path / "nested" / "store.db").exists()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_claims_never_hand_out_a_rollout_twice(backend: str, request, tmp_path: Path) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'q.db'}"
    store = SqlStore(url)
    with store._engine.begin() as conn:  # PostgreSQL is one database for the session
        for table in reversed(tables.metadata.sorted_tables):
            conn.execute(table.delete())
    enqueued = store.enqueue_rollouts([RolloutRequest(input=i) for i in range(40)])
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (rollout := store.dequeue_rollout(name)) is not None:
            with lock:
                claimed.append(rollout.rollout_id)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(claimed) == sorted(r.rollout_id for r in enqueued)
    assert all(len(store.query_attempts(rid)) == 1 for rid in claimed[:5]) and store.count_rollouts("running") == 40
    store.close()
