"""Yes/no questions over a record: a small declarative form, checked before
use and evaluated without eval (docs/design.md, "Data-source adapters").

    {"field": "status", "op": "eq", "value": "married"}
    {"field": "birth_date", "op": "le", "value": "2007-06-01"}
    {"field": "district", "op": "in", "value": ["Lixia", "Shizhong"]}
    {"all": [P, ...]}   {"any": [P, ...]}   {"not": P}

ops: eq ne lt le gt ge in. A value is a string, an integer or a finite
number (None only with eq/ne: "the field is empty"); `in` takes a list of
them. Strings compare by code point (ISO dates compare as dates); a number
compares with a number, or with a string holding a decimal number (CSV
cells are strings); other mixes are a PredicateError, never a silent no. An
empty field (None) is never lt/le/gt/ge/in anything.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from node.adapters.base import Record, Value

OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in")
DEPTH_MAX = 4
TERMS_MAX = 16  # comparisons in one predicate
IN_VALUES_MAX = 64
STRING_CHARS_MAX = 256
_DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class PredicateError(ValueError):
    """A malformed predicate, or one that cannot be evaluated on the record's
    types. The message names the field and op, never a value."""


def predicate_fields(predicate: object, allowed: Iterable[str] | None = None) -> list[str]:
    """Check the predicate's shape and return the fields it reads, in order of
    first use: what to ask the adapter for. With `allowed`, a field outside it
    is refused."""
    fields: list[str] = []
    _check(predicate, "predicate", 1, fields, [0])
    if allowed is not None:
        allowed = set(allowed)
        for field in fields:
            if field not in allowed:
                raise PredicateError(f"the predicate reads field {field!r}, which the item does not have; "
                                     f"fields: {', '.join(sorted(allowed))}")
    return list(dict.fromkeys(fields))


def _check(p: object, where: str, depth: int, fields: list[str], terms: list[int]) -> None:
    if depth > DEPTH_MAX:
        raise PredicateError(f"{where}: nested deeper than {DEPTH_MAX} levels")
    if not isinstance(p, Mapping):
        raise PredicateError(f"{where} must be an object: {{\"field\", \"op\", \"value\"}}, "
                             f"{{\"all\": [...]}}, {{\"any\": [...]}} or {{\"not\": ...}}")
    if set(p) in ({"all"}, {"any"}):
        (key, parts), = p.items()
        if not isinstance(parts, list) or not parts:
            raise PredicateError(f"{where}.{key} must be a non-empty list of predicates")
        for i, part in enumerate(parts):
            _check(part, f"{where}.{key}[{i}]", depth + 1, fields, terms)
        return
    if set(p) == {"not"}:
        _check(p["not"], f"{where}.not", depth + 1, fields, terms)
        return
    if set(p) != {"field", "op", "value"}:
        raise PredicateError(f"{where} must have exactly the keys field, op and value (or be all/any/not); "
                             f"got {', '.join(sorted(map(str, p)))[:120]}")
    field, op, value = p["field"], p["op"], p["value"]
    if not isinstance(field, str) or not field:
        raise PredicateError(f"{where}.field must be a field name")
    if op not in OPS:
        raise PredicateError(f"{where}.op must be one of {', '.join(OPS)}")
    if op == "in":
        if not isinstance(value, list) or not 0 < len(value) <= IN_VALUES_MAX:
            raise PredicateError(f"{where}.value must be a list of 1-{IN_VALUES_MAX} values for op in")
        for v in value:
            _check_value(v, where, op)
    else:
        _check_value(value, where, op)
    terms[0] += 1
    if terms[0] > TERMS_MAX:
        raise PredicateError(f"the predicate has more than {TERMS_MAX} comparisons")
    fields.append(field)


def _check_value(value: object, where: str, op: str) -> None:
    if value is None and op in ("eq", "ne"):
        return
    if isinstance(value, str):
        if len(value) > STRING_CHARS_MAX:
            raise PredicateError(f"{where}.value: strings are at most {STRING_CHARS_MAX} characters")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PredicateError(f"{where}.value must be a string, an integer or a finite number"
                             + (" (null only with eq or ne)" if value is None else ""))


def holds(record: Record, predicate: Mapping) -> bool:
    """Whether `record` (with every field the predicate reads) satisfies it.
    Check the predicate first with predicate_fields."""
    if "all" in predicate:
        return all(holds(record, p) for p in predicate["all"])
    if "any" in predicate:
        return any(holds(record, p) for p in predicate["any"])
    if "not" in predicate:
        return not holds(record, predicate["not"])
    field, op, value = predicate["field"], predicate["op"], predicate["value"]
    if field not in record:
        raise PredicateError(f"the record has no field {field!r} (ask the adapter for predicate_fields)")
    actual = record[field]
    if op == "in":
        return any(_compare(field, "eq", actual, v) for v in value)
    return _compare(field, op, actual, value)


def _compare(field: str, op: str, actual: Value, value: Value) -> bool:
    if actual is None or value is None:
        return {"eq": actual is value, "ne": actual is not value}.get(op, False)
    a, b = _comparable(field, op, actual, value)
    return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def _comparable(field: str, op: str, actual: Value, value: Value) -> tuple:
    number = (int, float)
    if isinstance(value, number):
        if isinstance(actual, number) and not isinstance(actual, bool):
            return actual, value
        if isinstance(actual, str) and _DECIMAL_RE.fullmatch(actual.strip()):
            text = actual.strip()
            return (float(text) if "." in text else int(text)), value
    elif isinstance(actual, str):
        return actual, value
    raise PredicateError(f"field {field!r} holds a {_kind(actual)}; op {op} cannot compare it with a {_kind(value)}")


def _kind(v: object) -> str:
    return {str: "string", bytes: "binary value", int: "number", float: "number"}.get(type(v), type(v).__name__)
