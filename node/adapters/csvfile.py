"""A CSV file as a data source, for demos (docs/design.md, "Data-source
adapters"): UTF-8 (a byte-order mark is allowed), a header row naming the
columns, one record per row. Loaded once and indexed by key column; loaded
again when the file changes (size, modification time or inode), checked
before every lookup. A file that no longer loads is an error for each
lookup until it does: an answer from data the department has since
changed would be wrong."""
from __future__ import annotations

import csv
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from node.adapters.base import AdapterError, Record, SourceAdapter, asked_columns, duplicate_key
from node.core.config import SourceConfig

log = logging.getLogger(__name__)

_AMBIGUOUS = object()  # an index entry for a key that several rows share


class CsvAdapter(SourceAdapter):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._header: list[str] = []
        self._rows: list[list[str]] = []
        self._indexes: dict[str, dict[str, object]] = {}  # key column -> key -> row or _AMBIGUOUS
        self._load()

    def _file_stamp(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise AdapterError(f"{self.path}: cannot read the CSV file: {exc.strerror}") from None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _load(self) -> None:
        stamp = self._file_stamp()
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f, strict=True))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            detail = exc.strerror if isinstance(exc, OSError) else type(exc).__name__  # no cell content
            raise AdapterError(f"{self.path}: cannot load the CSV file ({detail})") from None
        if not rows or not rows[0]:
            raise AdapterError(f"{self.path}: the CSV file has no header row")
        header = [name.strip() for name in rows[0]]
        for number, row in enumerate(rows[1:], start=2):
            if row and len(row) != len(header):
                raise AdapterError(f"{self.path}: line {number} has {len(row)} cells, the header {len(header)}")
        self._header, self._rows = header, [row for row in rows[1:] if row]
        self._indexes, self._stamp = {}, stamp
        log.info("%s: loaded %d records", self.path, len(self._rows))

    def _index(self, key_column: str) -> dict[str, object]:
        index = self._indexes.get(key_column)
        if index is None:
            position = self._header.index(key_column)
            index = {}
            for row in self._rows:
                key = row[position].strip()
                index[key] = _AMBIGUOUS if key in index else row
            self._indexes[key_column] = index
        return index

    def _fresh(self) -> None:
        if self._file_stamp() != self._stamp:
            self._load()

    def check(self, mapping: SourceConfig) -> None:
        with self._lock:
            self._fresh()
            for column in (mapping.key_column, *mapping.columns.values()):
                if column not in self._header:
                    raise AdapterError(f"item {mapping.item!r}: {self.path} has no column {column!r}; "
                                       f"columns: {', '.join(self._header)}")

    def lookup(self, mapping: SourceConfig, id_number: str, fields: Iterable[str]) -> Record | None:
        asked = asked_columns(mapping, id_number, fields)
        with self._lock:
            self._fresh()
            try:
                positions = [self._header.index(column) for _, column in asked]
                row = self._index(mapping.key_column).get(id_number)
            except ValueError:  # the file changed and lost a column the mapping names
                raise AdapterError(f"item {mapping.item!r}: {self.path} no longer has the columns its mapping "
                                   f"names; columns: {', '.join(self._header)}") from None
        if row is _AMBIGUOUS:
            raise duplicate_key(mapping, str(self.path))
        return {field: row[p] for (field, _), p in zip(asked, positions)} if row is not None else None
