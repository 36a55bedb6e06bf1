"""Engines for the SQL backend: SQLite (file or memory) tuned for several processes, or PostgreSQL.

SQLite runs in WAL mode and opens every transaction with ``BEGIN IMMEDIATE`` so that several
processes can share one file: a claim (dequeue) is atomic and a writer waits instead of failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool


def _json_serializer() -> Any:
    """orjson when installed (JSON columns dominate span writes), else the stdlib."""
    try:
        import orjson
    except ImportError:
        import json

        return json.dumps
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

    def dumps(value: Any) -> str:
        return orjson.dumps(value, option=options).decode()

    return dumps


def engine_for(url: str) -> sa.Engine:
    if url.startswith("memory:"):
        engine = sa.create_engine(
            "sqlite://",
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            json_serializer=_json_serializer(),
        )
    elif url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60}, json_serializer=_json_serializer()
        )
    else:
        if url.startswith(("postgres://", "postgresql://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        try:
            engine = sa.create_engine(url, pool_pre_ping=True, pool_size=10)
        except ModuleNotFoundError as exc:
            raise ImportError(
                f"{exc.name} is missing for {url.split(':')[0]}: pip install 'agentlightning[postgres]'"
            ) from exc
        return engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine

