"""Metadata filters for `client.vectors.query`, `count` and `delete`.

    from portico import filters as f

    f.all_of(f.eq("lang", "en"), f.between("year", gte=2020), f.negate(f.is_in("tag", ["draft", "spam"])))

A plain dict is shorthand for equalities that must all hold: `{"lang": "en", "year": 2024}`.
Fields are metadata keys; a dotted path (`"author.name"`) reaches into nested objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeAlias

from .v1 import vector_service_pb2 as vpb

Scalar: TypeAlias = str | int | float | bool
FilterLike: TypeAlias = vpb.Filter | Mapping[str, Scalar]


def value(v: Scalar) -> vpb.FilterValue:
    if isinstance(v, bool):  # before int: True is an int too
        return vpb.FilterValue(bool_value=v)
    if isinstance(v, str):
        return vpb.FilterValue(string_value=v)
    if isinstance(v, int | float):
        return vpb.FilterValue(number_value=float(v))
    raise TypeError(f"a filter value is a string, number or bool, not {type(v).__name__}")


def eq(field: str, v: Scalar) -> vpb.Filter:
    """`field` equals `v` (numbers by value: 1 equals 1.0; a string never equals a number)."""
    return vpb.Filter(equals=vpb.FieldEquals(field=field, value=value(v)))


def is_in(field: str, values: Iterable[Scalar]) -> vpb.Filter:
    """`field` equals one of `values`."""
    clause = vpb.Filter()
    getattr(clause, "in").CopyFrom(vpb.FieldIn(field=field, values=[value(v) for v in values]))  # `in`: a keyword
    return clause


def between(field: str, *, gt: float | None = None, gte: float | None = None, lt: float | None = None,
            lte: float | None = None) -> vpb.Filter:
    """`field` is a number within the bounds given (at least one)."""
    bounds = {k: float(b) for k, b in (("gt", gt), ("gte", gte), ("lt", lt), ("lte", lte)) if b is not None}
    if not bounds:
        raise ValueError("between() needs at least one of gt, gte, lt, lte")
    return vpb.Filter(range=vpb.FieldRange(field=field, **bounds))


def all_of(*clauses: FilterLike) -> vpb.Filter:
    """Every clause holds (and)."""
    return vpb.Filter(all=vpb.FilterList(filters=[to_filter(c) for c in clauses]))


def any_of(*clauses: FilterLike) -> vpb.Filter:
    """At least one clause holds (or)."""
    return vpb.Filter(any=vpb.FilterList(filters=[to_filter(c) for c in clauses]))


def negate(clause: FilterLike) -> vpb.Filter:
    """The clause does not hold."""
    return vpb.Filter(negate=to_filter(clause))


def to_filter(clause: FilterLike) -> vpb.Filter:
    if isinstance(clause, vpb.Filter):
        return clause
    if not isinstance(clause, Mapping) or not clause:
        raise TypeError("a filter is a portico.filters clause, or a non-empty dict of field: value")
    equalities = [eq(field, v) for field, v in clause.items()]
    return equalities[0] if len(equalities) == 1 else vpb.Filter(all=vpb.FilterList(filters=equalities))
