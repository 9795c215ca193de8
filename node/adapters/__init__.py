"""Data-source adapters: read a department's existing system to answer
verification queries, without changing it (docs/design.md, "Data-source
adapters"). Configured by node.toml's [[sources]] (node.core.config.SourceConfig).

    sources = open_sources(config.sources)      # checks every table and column now
    record = sources.lookup("household-registration", id_number, ["status"])
    yes = holds(record, {"field": "status", "op": "eq", "value": "married"})
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from node.adapters.base import AdapterError, Record, SourceAdapter, UnknownField
from node.adapters.csvfile import CsvAdapter
from node.adapters.predicates import PredicateError, holds, predicate_fields
from node.adapters.sql import SqliteAdapter
from node.core.config import SourceConfig

__all__ = ["AdapterError", "CsvAdapter", "PredicateError", "Record", "SourceAdapter", "Sources", "SqliteAdapter",
           "UnknownField", "holds", "open_sources", "predicate_fields"]

ADAPTERS = {"sqlite": SqliteAdapter, "csv": CsvAdapter}  # SourceConfig.kind -> adapter class


class Sources:
    """Every configured item's mapping and adapter; items that share a file share its adapter."""

    def __init__(self, mappings: dict[str, SourceConfig], adapters: dict[tuple[str, Path], SourceAdapter]) -> None:
        self.mappings = mappings
        self._adapters = adapters

    def mapping(self, item: str) -> SourceConfig:
        try:
            return self.mappings[item]
        except KeyError:
            raise AdapterError(f"this node has no source for item {item!r}; items: "
                               f"{', '.join(self.mappings) or 'none ([[sources]] in node.toml)'}") from None

    def adapter(self, item: str) -> SourceAdapter:
        mapping = self.mapping(item)
        return self._adapters[(mapping.kind, mapping.path)]

    def lookup(self, item: str, id_number: str, fields: Iterable[str]) -> Record | None:
        return self.adapter(item).lookup(self.mapping(item), id_number, fields)

    def close(self) -> None:
        for adapter in self._adapters.values():
            adapter.close()


def open_sources(configs: Iterable[SourceConfig]) -> Sources:
    """Open every source and check each mapping against it. Raises
    AdapterError naming the item, the file and what is missing."""
    mappings: dict[str, SourceConfig] = {}
    adapters: dict[tuple[str, Path], SourceAdapter] = {}
    try:
        for config in configs:
            key = (config.kind, config.path)
            if key not in adapters:
                adapters[key] = ADAPTERS[config.kind](config.path)
            adapters[key].check(config)
            mappings[config.item] = config
    except BaseException:
        for adapter in adapters.values():
            adapter.close()
        raise
    return Sources(mappings, adapters)
