"""The bookshop database behind the ``sql-generation`` task set, and read-only tools over it.

The rows come from a fixed seed, so every machine builds the same database; it is written once to
the user cache dir (``$XDG_CACHE_HOME/agent-lightning/sql-generation/``) under a name holding a
digest of its content, so a change to the data never reuses a stale file. `query_schema` and
`execute_sql` are the agent-facing tools (``Agent(..., tools=[execute_sql, query_schema])``):
queries run read-only with a time limit (`agl_core.runtime.graders.run_readonly_sql`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from agl_core.paths import cache_dir
from agl_core.runtime.graders import run_readonly_sql

SCHEMA = """
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, country TEXT NOT NULL, born INTEGER NOT NULL);
CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL UNIQUE, author_id INTEGER NOT NULL REFERENCES authors(id),
                    genre TEXT NOT NULL, year INTEGER NOT NULL, price REAL NOT NULL);
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, city TEXT NOT NULL, joined INTEGER NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                     book_id INTEGER NOT NULL REFERENCES books(id), quantity INTEGER NOT NULL, order_date TEXT NOT NULL);
""".strip()

COUNTRIES = ["France", "Japan", "Kenya", "Brazil", "Canada", "India"]
GENRES = ["mystery", "poetry", "history", "science", "fantasy", "romance"]
CITIES = ["Lyon", "Osaka", "Nairobi", "Recife", "Toronto", "Pune", "Leeds"]
_FIRST = "Ada Ben Cleo Dev Eli Fay Gus Hana Ivo Jun Kira Leo Mina Nico Omar Pia".split()
_LAST = "Abe Brandt Costa Dube Evans Fujii Gomez Hale Ito Jensen Kamau Lopez".split()
_ADJECTIVES = "Silent Golden Hidden Last Broken Distant Burning Quiet Frozen Wild Lost Bright".split()
_NOUNS = "River Garden Empire Letter Mountain Harbor Orchard Signal Island Compass Lantern Forest".split()


@dataclass(frozen=True)
class Rows:
    """Every row of the database, as inserted (the question templates draw their parameters here)."""

    authors: list[tuple[int, str, str, int]]
    books: list[tuple[int, str, int, str, int, float]]
    customers: list[tuple[int, str, str, int]]
    orders: list[tuple[int, int, int, int, str]]


@lru_cache(maxsize=1)
def rows(seed: int = 11) -> Rows:
    rng = random.Random(seed)
    people = rng.sample([f"{f} {last}" for f in _FIRST for last in _LAST], 60)
    authors = [(i, name, rng.choice(COUNTRIES), rng.randint(1920, 1995)) for i, name in enumerate(people[:20], 1)]
    titles = rng.sample([f"The {a} {n}" for a in _ADJECTIVES for n in _NOUNS], 80)
    prices = [
        cents / 100 for cents in rng.sample(range(499, 5999), len(titles))
    ]  # distinct, so "most expensive" has no ties
    books = [
        (i, title, rng.randint(1, len(authors)), rng.choice(GENRES), rng.randint(1960, 2023), price)
        for i, (title, price) in enumerate(zip(titles, prices), 1)
    ]
    customers = [(i, name, rng.choice(CITIES), rng.randint(2015, 2024)) for i, name in enumerate(people[20:], 1)]
    orders = [
        (
            i,
            rng.randint(1, len(customers)),
            rng.randint(1, len(books)),
            rng.randint(1, 5),
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        )
        for i in range(1, 501)
    ]
    return Rows(authors, books, customers, orders)


def _build(path: Path) -> None:
    data = rows()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        with sqlite3.connect(tmp) as conn:
            conn.executescript(SCHEMA)
            conn.executemany("INSERT INTO authors VALUES (?, ?, ?, ?)", data.authors)
            conn.executemany("INSERT INTO books VALUES (?, ?, ?, ?, ?, ?)", data.books)
            conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", data.customers)
            conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", data.orders)
        conn.close()
        os.replace(tmp, path)  # concurrent builders each write their own file; the last rename wins, same bytes
    finally:
        Path(tmp).unlink(missing_ok=True)


def database_path() -> Path:
    """The database file, built on first use."""
    digest = hashlib.sha256(repr((SCHEMA, rows())).encode()).hexdigest()[:12]
    path = cache_dir() / "sql-generation" / f"bookshop-{digest}.db"
    if not path.is_file():
        _build(path)
    return path


def query_schema() -> str:
    """Return the CREATE TABLE statements of the bookshop database (SQLite)."""
    return SCHEMA


def execute_sql(query: str) -> str:
    """Run one read-only SQLite query on the bookshop database; returns up to 20 result rows as JSON."""
    found = run_readonly_sql(database_path(), query)
    shown = json.dumps([list(row) for row in found[:20]])
    return shown if len(found) <= 20 else f"{shown}\n({len(found) - 20} more rows not shown)"
