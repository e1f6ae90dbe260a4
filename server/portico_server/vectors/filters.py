"""A request's `Filter` message turned into the filter tree of `model.py`, with every
mistake reported as INVALID_ARGUMENT naming the field (`filter.all.filters[1].range`)."""

from __future__ import annotations

import math

from portico.v1 import vector_service_pb2 as vpb

from ..errors import InvalidRequest
from .model import And, Eq, Filter, In, Not, Or, Range, Scalar

#: Deeper trees are refused: no real filter nests this far, and every backend recurses.
MAX_DEPTH = 16
#: Clauses (and values of `in`) in one filter, so compiling one stays cheap.
MAX_CLAUSES = 1_024
MAX_FIELD_CHARS = 256


def parse(message: vpb.Filter, field: str = "filter") -> Filter:
    return _Parser().clause(message, field, 1)


class _Parser:
    def __init__(self) -> None:
        self.clauses = 0

    def _count(self, field: str, n: int = 1) -> None:
        self.clauses += n
        if self.clauses > MAX_CLAUSES:
            raise InvalidRequest([(field, f"the filter has more than {MAX_CLAUSES} clauses and values")])

    def clause(self, message: vpb.Filter, field: str, depth: int) -> Filter:
        if depth > MAX_DEPTH:
            raise InvalidRequest([(field, f"filters nest at most {MAX_DEPTH} deep")])
        self._count(field)
        kind = message.WhichOneof("clause")
        if kind == "equals":
            return Eq(_path(message.equals.field, f"{field}.equals.field"),
                      _value(message.equals.value, f"{field}.equals.value", message.equals.HasField("value")))
        if kind == "in":
            where = f"{field}.in"
            values = getattr(message, "in")  # `in` is a Python keyword
            if not values.values:
                raise InvalidRequest([(f"{where}.values", "at least one value is required")])
            self._count(where, len(values.values))
            return In(_path(values.field, f"{where}.field"),
                      tuple(_value(v, f"{where}.values[{i}]", True) for i, v in enumerate(values.values)))
        if kind == "range":
            return _range(message.range, f"{field}.range")
        if kind in ("all", "any"):
            filters = getattr(message, kind).filters
            if not filters:
                raise InvalidRequest([(f"{field}.{kind}.filters", "at least one filter is required")])
            clauses = tuple(self.clause(f, f"{field}.{kind}.filters[{i}]", depth + 1) for i, f in enumerate(filters))
            return And(clauses) if kind == "all" else Or(clauses)
        if kind == "negate":
            return Not(self.clause(message.negate, f"{field}.negate", depth + 1))
        raise InvalidRequest([(field, "set one clause: equals, in, range, all, any or negate")])


def _path(path: str, field: str) -> str:
    if not path:
        raise InvalidRequest([(field, "is required: a metadata key, or a dotted path into nested objects")])
    if len(path) > MAX_FIELD_CHARS:
        raise InvalidRequest([(field, f"is longer than {MAX_FIELD_CHARS} characters")])
    if "" in path.split("."):
        raise InvalidRequest([(field, "has an empty part between dots")])
    return path


def _value(value: vpb.FilterValue, field: str, present: bool) -> Scalar:
    kind = value.WhichOneof("kind") if present else None
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        return _finite(value.number_value, field)
    raise InvalidRequest([(field, "is required: a string_value, number_value or bool_value")])


def _finite(number: float, field: str) -> float:
    if not math.isfinite(number):
        raise InvalidRequest([(field, "must be a finite number")])
    return number


def _range(message: vpb.FieldRange, field: str) -> Range:
    bounds = {name: _finite(getattr(message, name), f"{field}.{name}")
              for name in ("gt", "gte", "lt", "lte") if message.HasField(name)}
    if not bounds:
        raise InvalidRequest([(field, "set at least one bound: gt, gte, lt or lte")])
    return Range(_path(message.field, f"{field}.field"), **bounds)
