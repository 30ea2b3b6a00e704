"""Reads from the journal for the operator modules.

The journal offers writes through ``transaction()`` but no public read method (reported to its
owner); until it does, reads go through a short transaction too, as the printing modules do.
:class:`JournalQuery` adds the ``query`` method :mod:`agent.kpi` expects of its store.
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
        """A write transaction yielding a sqlite_utils Database."""


def query(journal: JournalLike, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one SELECT (run inside a short journal transaction)."""
    with journal.transaction() as db:
        return [tuple(r) for r in db.execute(sql, list(params)).fetchall()]


class JournalQuery:
    """Wraps a journal with the ``query`` method :class:`agent.kpi.Store` needs."""

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
