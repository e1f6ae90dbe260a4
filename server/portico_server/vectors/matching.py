"""Evaluating a filter tree against one record's metadata, in Python: the `memory`
backend's filter, and the reference the other backends' compiled filters must agree with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import And, Eq, Filter, In, Or, Range, Scalar

_MISSING = object()


def lookup(metadata: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or `_MISSING`. A key holding a dot itself is found
    first, so `{"a.b": 1}` answers "a.b" too."""
    if path in metadata:
        return metadata[path]
    value: Any = metadata
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def equal(stored: Any, wanted: Scalar) -> bool:
    """JSON equality of a scalar: numbers by value (1 == 1.0), never a bool for a number."""
    if isinstance(wanted, bool):
        return isinstance(stored, bool) and stored is wanted
    if isinstance(wanted, str):
        return isinstance(stored, str) and stored == wanted
    number = _number(stored)
    return number is not None and number == wanted


def in_range(stored: Any, clause: Range) -> bool:
    number = _number(stored)
    if number is None:
        return False
    return ((clause.gt is None or number > clause.gt) and (clause.gte is None or number >= clause.gte)
            and (clause.lt is None or number < clause.lt) and (clause.lte is None or number <= clause.lte))


def matches(clause: Filter, metadata: Mapping[str, Any]) -> bool:
    if isinstance(clause, Eq):
        return equal(lookup(metadata, clause.field), clause.value)
    if isinstance(clause, In):
        stored = lookup(metadata, clause.field)
        return any(equal(stored, value) for value in clause.values)
    if isinstance(clause, Range):
        return in_range(lookup(metadata, clause.field), clause)
    if isinstance(clause, And):
        return all(matches(c, metadata) for c in clause.clauses)
    if isinstance(clause, Or):
        return any(matches(c, metadata) for c in clause.clauses)
    return not matches(clause.clause, metadata)
