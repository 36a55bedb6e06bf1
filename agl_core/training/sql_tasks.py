"""The ``sql-generation`` task set: questions about the bookshop database with their gold SQL.

Questions come from templates over the database's own rows (`agl_core.training.sql_database`), so
the set is the same everywhere. A question whose gold result is empty (or one NULL) is left out: any
query returning nothing would match it. About a quarter of the questions, chosen by a hash of
their text, form the eval split. Each task input carries the gold query as ``answer``, the
database path and ``ordered`` (true when the question asks for an order), graded by
``execution_match`` on the agent's reply.
"""

from __future__ import annotations

import random
import zlib
from functools import lru_cache
from typing import Iterator

from agl_core.runtime.graders import run_readonly_sql
from agl_core.training.sql_database import CITIES, COUNTRIES, GENRES, Rows, database_path, rows
from agl_core.types import Task

REPLY_FORMAT = "Reply with one SQLite query that answers it, in a ```sql block."
_MONTHS = "January February March April May June July August September October November December".split()

Question = tuple[str, str, bool]  # (question, gold SQL, ordered)


def _per_genre(g: str) -> Iterator[Question]:
    yield f"How many {g} books are there?", f"SELECT COUNT(*) FROM books WHERE genre = '{g}'", False
    yield f"What is the average price of {g} books?", f"SELECT AVG(price) FROM books WHERE genre = '{g}'", False
    yield f"In which year was the oldest {g} book published?", f"SELECT MIN(year) FROM books WHERE genre = '{g}'", False
    yield (
        f"What is the title of the most expensive {g} book?",
        f"SELECT title FROM books WHERE genre = '{g}' ORDER BY price DESC LIMIT 1",
        False,
    )
    yield (
        f"What is the total revenue (price times quantity) of all orders for {g} books?",
        f"SELECT SUM(o.quantity * b.price) FROM orders o JOIN books b ON o.book_id = b.id WHERE b.genre = '{g}'",
        False,
    )
    yield (
        f"What are the titles of the 3 cheapest {g} books, cheapest first?",
        f"SELECT title FROM books WHERE genre = '{g}' ORDER BY price LIMIT 3",
        True,
    )
    yield (
        f"Which {g} books cost more than the average price of all books? List their titles.",
        f"SELECT title FROM books WHERE genre = '{g}' AND price > (SELECT AVG(price) FROM books)",
        False,
    )
    for year in (1980, 2000):
        yield (
            f"List the titles of {g} books published after {year}.",
            f"SELECT title FROM books WHERE genre = '{g}' AND year > {year}",
            False,
        )
    for c in COUNTRIES:
        yield (
            f"How many {g} books were written by authors from {c}?",
            f"SELECT COUNT(*) FROM books b JOIN authors a ON b.author_id = a.id WHERE b.genre = '{g}' AND a.country = '{c}'",
            False,
        )


def _per_country(c: str) -> Iterator[Question]:
    yield f"How many authors are from {c}?", f"SELECT COUNT(*) FROM authors WHERE country = '{c}'", False
    yield (
        f"How many books were written by authors from {c}?",
        f"SELECT COUNT(*) FROM books b JOIN authors a ON b.author_id = a.id WHERE a.country = '{c}'",
        False,
    )
    yield (
        f"Which authors from {c} were born before 1960? Give their names.",
        f"SELECT name FROM authors WHERE country = '{c}' AND born < 1960",
        False,
    )


def _per_city(city: str) -> Iterator[Question]:
    yield f"How many customers live in {city}?", f"SELECT COUNT(*) FROM customers WHERE city = '{city}'", False
    yield (
        f"Which customers live in {city}? List their names in alphabetical order.",
        f"SELECT name FROM customers WHERE city = '{city}' ORDER BY name",
        True,
    )
    yield (
        f"How many copies in total were ordered by customers from {city}?",
        f"SELECT SUM(o.quantity) FROM orders o JOIN customers c ON o.customer_id = c.id WHERE c.city = '{city}'",
        False,
    )


def _per_author(data: Rows) -> Iterator[Question]:
    for author_id, name, _, _ in data.authors:
        yield (
            f"How many books has {name} written?",
            f"SELECT COUNT(*) FROM books b JOIN authors a ON b.author_id = a.id WHERE a.name = '{name}'",
            False,
        )
        yield (
            f"List the titles of the books written by {name}.",
            f"SELECT b.title FROM books b JOIN authors a ON b.author_id = a.id WHERE a.name = '{name}'",
            False,
        )
        years = [year for _, _, a_id, _, year, _ in data.books if a_id == author_id]
        if len(years) > 1 and len(set(years)) == len(years):  # an order without ties
            yield (
                f"List the titles of the books by {name} from the oldest to the newest.",
                f"SELECT b.title FROM books b JOIN authors a ON b.author_id = a.id WHERE a.name = '{name}' ORDER BY b.year",
                True,
            )


def _per_book(data: Rows) -> Iterator[Question]:
    for i, (_, title, _, _, _, _) in enumerate(data.books):
        if i % 2 == 0:
            yield (
                f"Who wrote {title}?",
                f"SELECT a.name FROM authors a JOIN books b ON b.author_id = a.id WHERE b.title = '{title}'",
                False,
            )
        else:
            yield f"How much does {title} cost?", f"SELECT price FROM books WHERE title = '{title}'", False
        if i % 3 == 0:
            yield (
                f"How many copies of {title} have been ordered in total?",
                f"SELECT SUM(o.quantity) FROM orders o JOIN books b ON o.book_id = b.id WHERE b.title = '{title}'",
                False,
            )
        elif i % 3 == 1:
            yield (
                f"Which customers ordered {title}? List their names.",
                "SELECT DISTINCT c.name FROM customers c JOIN orders o ON o.customer_id = c.id "
                f"JOIN books b ON o.book_id = b.id WHERE b.title = '{title}'",
                False,
            )


def _per_customer(data: Rows) -> Iterator[Question]:
    for i, (_, name, _, _) in enumerate(data.customers):
        if i % 2 == 0:
            yield (
                f"How many orders has {name} placed?",
                f"SELECT COUNT(*) FROM orders o JOIN customers c ON o.customer_id = c.id WHERE c.name = '{name}'",
                False,
            )
        else:
            yield (
                f"Which books has {name} ordered? List the titles.",
                "SELECT DISTINCT b.title FROM books b JOIN orders o ON o.book_id = b.id "
                f"JOIN customers c ON o.customer_id = c.id WHERE c.name = '{name}'",
                False,
            )


def _overall() -> Iterator[Question]:
    for number, month in enumerate(_MONTHS, 1):
        pattern = f"2024-{number:02d}-%"
        yield (
            f"How many orders were placed in {month} 2024?",
            f"SELECT COUNT(*) FROM orders WHERE order_date LIKE '{pattern}'",
            False,
        )
        yield (
            f"What was the total revenue (price times quantity) of the orders placed in {month} 2024?",
            f"SELECT SUM(o.quantity * b.price) FROM orders o JOIN books b ON o.book_id = b.id WHERE o.order_date LIKE '{pattern}'",
            False,
        )
    for year in range(2015, 2025):
        yield f"How many customers joined in {year}?", f"SELECT COUNT(*) FROM customers WHERE joined = {year}", False
    for k in (3, 5, 10):
        yield (
            f"List the titles of the {k} most expensive books, from the most expensive down.",
            f"SELECT title FROM books ORDER BY price DESC LIMIT {k}",
            True,
        )
    for price in (10, 15, 20):
        yield (
            f"List the titles of the books that cost less than {price} dollars, from the cheapest up.",
            f"SELECT title FROM books WHERE price < {price} ORDER BY price",
            True,
        )
    yield "For each genre, how many books are there?", "SELECT genre, COUNT(*) FROM books GROUP BY genre", False
    yield (
        "For each country, how many authors are there?",
        "SELECT country, COUNT(*) FROM authors GROUP BY country",
        False,
    )
    yield "For each city, how many customers are there?", "SELECT city, COUNT(*) FROM customers GROUP BY city", False
    yield (
        "Which authors have not written any book? Give their names.",
        "SELECT name FROM authors WHERE id NOT IN (SELECT author_id FROM books)",
        False,
    )


def all_questions() -> list[Question]:
    """Every templated question in generation order, before filtering and splitting."""
    data = rows()
    out = [q for g in GENRES for q in _per_genre(g)]
    out += [q for c in COUNTRIES for q in _per_country(c)]
    out += [q for city in CITIES for q in _per_city(city)]
    return out + [*_per_author(data), *_per_book(data), *_per_customer(data), *_overall()]


def _is_eval(question: str) -> bool:
    return zlib.crc32(question.encode()) % 4 == 0


@lru_cache(maxsize=2)
def _questions(split: str) -> tuple[Question, ...]:
    database = database_path()
    chosen = []
    for question, sql, ordered in all_questions():
        if _is_eval(question) != (split == "eval"):
            continue
        result = run_readonly_sql(database, sql)
        if result and result != [(None,)]:
            chosen.append((question, sql, ordered))
    random.Random(f"sql-generation-{split}").shuffle(chosen)  # the first n mix every template
    return tuple(chosen)


def sql_generation(split: str, n: int) -> list[Task]:
    """Up to `n` tasks of the ``train`` split (or else the eval one), the same ones on every call."""
    database = str(database_path())
    return [
        Task(
            task_id=f"sql-{zlib.crc32(question.encode()):08x}",
            input={
                "question": f"{question} {REPLY_FORMAT}",
                "answer": sql,
                "grader": "execution_match",
                "database": database,
                "ordered": ordered,
            },
        )
        for question, sql, ordered in _questions("train" if split == "train" else "eval")[:n]
    ]
