"""SQL tables as data sources: SQLite through the standard library; a
PostgreSQL adapter is a subclass of SqlAdapter (docs/design.md, "Data-source
adapters", says what it needs).

Safety: the ID number only ever travels as a query parameter; table and
column names come from node.toml only, were checked against COLUMN_RE there
(letters, digits, '_'), and are double-quoted; a requested field reaches the
query only as the column its mapping names. The connection is read-only.
"""
from __future__ import annotations

import sqlite3
import threading
from abc import abstractmethod
from collections.abc import Iterable
from pathlib import Path

from node.adapters.base import AdapterError, Record, SourceAdapter, asked_columns, duplicate_key
from node.core.config import COLUMN_RE, SourceConfig


def quote(identifier: str) -> str:
    """A configured identifier, double-quoted (standard SQL: SQLite and PostgreSQL)."""
    if not COLUMN_RE.fullmatch(identifier):  # config checked it; this guards other callers
        raise AdapterError(f"{identifier[:64]!r} is not a valid table or column name")
    return f'"{identifier}"'


class SqlAdapter(SourceAdapter):
    """One database; what differs between SQL databases is below, abstract."""

    placeholder = "?"  # the DB-API paramstyle's marker
    errors: tuple[type[Exception], ...] = ()  # the DB-API module's Error

    def __init__(self, name: str) -> None:
        self.name = name  # how messages name the database (a path, a host/database)
        self._lock = threading.Lock()  # one connection, one query at a time
        self._db = self._connect()

    @abstractmethod
    def _connect(self):
        """A read-only DB-API connection."""

    @abstractmethod
    def _columns(self, table: str) -> list[str]:
        """The table's column names; [] if there is no such table."""

    def check(self, mapping: SourceConfig) -> None:
        columns = self._columns(mapping.table)
        if not columns:
            raise AdapterError(f"item {mapping.item!r}: {self.name} has no table {mapping.table!r}")
        for column in (mapping.key_column, *mapping.columns.values()):
            if column not in columns:
                raise AdapterError(f"item {mapping.item!r}: table {mapping.table!r} in {self.name} has no column "
                                   f"{column!r}; columns: {', '.join(columns)}")

    def lookup(self, mapping: SourceConfig, id_number: str, fields: Iterable[str]) -> Record | None:
        asked = asked_columns(mapping, id_number, fields)
        sql = (f"SELECT {', '.join(quote(column) for _, column in asked)} FROM {quote(mapping.table)} "
               f"WHERE {quote(mapping.key_column)} = {self.placeholder} LIMIT 2")
        rows = self._query(mapping, sql, (id_number,))
        if len(rows) > 1:
            raise duplicate_key(mapping, f"table {mapping.table!r} of {self.name}")
        return {field: value for (field, _), value in zip(asked, rows[0])} if rows else None

    def _query(self, mapping: SourceConfig, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            try:
                cursor = self._db.execute(sql, params)
                try:
                    return cursor.fetchall()
                finally:
                    cursor.close()
            except self.errors as exc:  # the message names the statement's tables and columns, not values
                raise AdapterError(f"item {mapping.item!r}: reading {self.name} failed: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()


class SqliteAdapter(SqlAdapter):
    """A SQLite database file, opened read-only (URI mode=ro): the node can
    neither change the department's data nor create a missing file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(str(path))

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise AdapterError(f"{self.path}: no such SQLite database file")
        try:
            db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False)
            db.execute("PRAGMA query_only = ON")  # a second guard: refuse writes on this connection
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # not a database: fails here
        except sqlite3.Error as exc:
            raise AdapterError(f"{self.path}: cannot open it as a SQLite database read-only: {exc}") from None
        return db

    def _columns(self, table: str) -> list[str]:
        with self._lock:
            return [row[1] for row in self._db.execute(f"PRAGMA table_info({quote(table)})").fetchall()]
