"""Reads from the journal for the operator modules.

Reads go through :meth:`agent.journal.Journal.query` (a pooled read-only connection: a report
never holds the journal's single writer). :class:`JournalQuery` keeps the shape
:class:`agent.kpi.Store` expects for code that holds only "something with a journal".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol


class JournalLike(Protocol):
    """The part of :class:`agent.journal.Journal` used here."""

    def register_schema(self, name: str, ddl_sql: str) -> None:
        """Create tables once."""

    def transaction(self) -> Any:
        """A write transaction; the operator modules use only its ``execute(sql, params)``."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only statement."""


def query(journal: JournalLike, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one SELECT, on the journal's read-only pool."""
    return journal.query(sql, params)


class JournalQuery:
    """Wraps a journal with exactly the methods :class:`agent.kpi.Store` needs."""

    def __init__(self, journal: JournalLike) -> None:
        self.journal = journal

    def register_schema(self, name: str, ddl_sql: str) -> None:
        """Pass through to the journal."""
        self.journal.register_schema(name, ddl_sql)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Pass through to the journal."""
        with self.journal.transaction() as db:
            yield db

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SELECT."""
        return query(self.journal, sql, params)
