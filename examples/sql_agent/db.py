"""A small SQLite database of a bookshop and questions about it, with their gold SQL."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL);
CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author_id INTEGER NOT NULL REFERENCES authors(id),
                    year INTEGER NOT NULL, price REAL NOT NULL, genre TEXT NOT NULL);
CREATE TABLE sales (id INTEGER PRIMARY KEY, book_id INTEGER NOT NULL REFERENCES books(id), quantity INTEGER NOT NULL,
                    month TEXT NOT NULL);
"""

_COUNTRIES = ["France", "Japan", "Kenya", "Brazil", "Canada"]
_GENRES = ["mystery", "poetry", "history", "science", "fantasy"]


def build_database(path: Path, seed: int = 7) -> Path:
    """Create (or recreate) the bookshop database at `path`; the same seed gives the same rows."""
    rng = random.Random(seed)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        for i in range(1, 13):
            conn.execute("INSERT INTO authors VALUES (?, ?, ?)", (i, f"Author {i}", rng.choice(_COUNTRIES)))
        for i in range(1, 61):
            conn.execute(
                "INSERT INTO books VALUES (?, ?, ?, ?, ?, ?)",
                (i, f"Book {i}", rng.randint(1, 12), rng.randint(1950, 2024), round(rng.uniform(5, 60), 2), rng.choice(_GENRES)),
            )
        for i in range(1, 301):
            conn.execute(
                "INSERT INTO sales VALUES (?, ?, ?, ?)",
                (i, rng.randint(1, 60), rng.randint(1, 9), f"2024-{rng.randint(1, 12):02d}"),
            )
    return path


def questions() -> list[dict[str, str]]:
    """Natural-language questions with gold SQL, two per template and parameter."""
    out = []
    for genre in _GENRES:
        out.append({"question": f"How many {genre} books are there?", "sql": f"SELECT COUNT(*) FROM books WHERE genre = '{genre}'"})
        out.append({"question": f"What is the average price of {genre} books?", "sql": f"SELECT AVG(price) FROM books WHERE genre = '{genre}'"})
    for country in _COUNTRIES:
        out.append({"question": f"How many authors are from {country}?", "sql": f"SELECT COUNT(*) FROM authors WHERE country = '{country}'"})
        out.append({
            "question": f"How many books were written by authors from {country}?",
            "sql": f"SELECT COUNT(*) FROM books JOIN authors ON books.author_id = authors.id WHERE authors.country = '{country}'",
        })
    for year in (1970, 1990, 2000, 2010):
        out.append({"question": f"How many books were published after {year}?", "sql": f"SELECT COUNT(*) FROM books WHERE year > {year}"})
    for month in ("2024-01", "2024-06", "2024-12"):
        out.append({"question": f"How many copies were sold in {month}?", "sql": f"SELECT SUM(quantity) FROM sales WHERE month = '{month}'"})
    return out


def run_sql(db: Path, sql: str, limit: int = 20) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchmany(limit)
