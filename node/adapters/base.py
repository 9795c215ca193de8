"""The interface every data-source adapter implements (docs/design.md,
"Data-source adapters").

An adapter reads a department's existing system (a database, a file) and
never changes it. It answers one question: the asked fields of the record
whose key column holds a given ID number, under an item's mapping
(node.core.config.SourceConfig). It never logs, and no error message it
raises carries, an ID number or a value.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from node.core.config import FIELD_RE, SourceConfig

Value = str | int | float | bytes | None
Record = dict[str, Value]  # item field -> value: only the fields asked for

ID_CHARS_MAX = 64


class AdapterError(Exception):
    """The source cannot answer: it is unreadable, or does not match its
    mapping. The message names the item, the file and the column, never an
    ID number or a value."""


class UnknownField(AdapterError):
    """A request named a field the item's mapping does not have."""


class SourceAdapter(ABC):
    """One data source (a database file, a CSV file) serving one or more items."""

    @abstractmethod
    def check(self, mapping: SourceConfig) -> None:
        """Raise AdapterError unless the source has the mapping's table and columns."""

    @abstractmethod
    def lookup(self, mapping: SourceConfig, id_number: str, fields: Iterable[str]) -> Record | None:
        """The asked fields of the record whose key column is `id_number`
        (exact match: the caller normalizes it, node.identity.oprf), or None
        if there is none. Raises UnknownField for a field not in the mapping,
        AdapterError if the key matches several records."""

    def close(self) -> None:
        """Release the source (connections, file handles)."""


def asked_columns(mapping: SourceConfig, id_number: object, fields: Iterable[str]) -> list[tuple[str, str]]:
    """(field, column) for each asked field, in the order asked, after checking
    the ID number's shape and that each field is in the mapping. The only way
    a field name reaches a query: through the configured, validated column."""
    if not isinstance(id_number, str) or not 0 < len(id_number) <= ID_CHARS_MAX:
        raise AdapterError(f"item {mapping.item!r}: the ID number must be a string of 1-{ID_CHARS_MAX} characters")
    columns = mapping.columns
    fields = list(dict.fromkeys(fields))
    if not fields:
        raise UnknownField(f"item {mapping.item!r}: ask for at least one field; fields: {', '.join(columns)}")
    for field in fields:
        if field not in columns:
            name = f'"{field}"' if isinstance(field, str) and FIELD_RE.fullmatch(field) else "a malformed name"
            raise UnknownField(f"item {mapping.item!r} has no field {name}; fields: {', '.join(columns)}")
    return [(field, columns[field]) for field in fields]


def duplicate_key(mapping: SourceConfig, where: str) -> AdapterError:
    return AdapterError(f"item {mapping.item!r}: several records in {where} have this ID number in key column "
                        f"{mapping.key_column!r}; the source must hold one record per person")
