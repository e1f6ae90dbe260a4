"""The request's Filter message to the filter tree: what it becomes, and the limits that
keep a hostile filter cheap."""

from __future__ import annotations

import pytest
from portico.v1 import vector_service_pb2 as vpb
from portico_server.errors import InvalidRequest
from portico_server.vectors.filters import MAX_CLAUSES, MAX_DEPTH, parse
from portico_server.vectors.model import And, Eq, In, Not, Or, Range


def eq(field: str, **value: object) -> vpb.Filter:
    return vpb.Filter(equals=vpb.FieldEquals(field=field, value=vpb.FilterValue(**value)))


def test_every_clause_becomes_its_node() -> None:
    within = vpb.Filter()
    getattr(within, "in").CopyFrom(vpb.FieldIn(field="lang", values=[vpb.FilterValue(string_value="en"),
                                                                     vpb.FilterValue(number_value=2)]))
    message = vpb.Filter(all=vpb.FilterList(filters=[
        eq("a.b", bool_value=False), within,
        vpb.Filter(any=vpb.FilterList(filters=[vpb.Filter(range=vpb.FieldRange(field="year", gte=2020, lt=2030)),
                                               vpb.Filter(negate=eq("x", number_value=0))])),
    ]))
    assert parse(message) == And((
        Eq("a.b", False), In("lang", ("en", 2.0)),
        Or((Range("year", gte=2020, lt=2030), Not(Eq("x", 0.0)))),
    ))


def test_nesting_deeper_than_the_limit_is_refused_naming_where() -> None:
    message = eq("x", bool_value=True)
    for _ in range(MAX_DEPTH):
        message = vpb.Filter(negate=message)
    with pytest.raises(InvalidRequest) as caught:
        parse(message)
    field = caught.value.violations[0][0]
    assert field == "filter" + ".negate" * MAX_DEPTH


def test_more_clauses_and_values_than_the_limit_are_refused() -> None:
    many = vpb.Filter()
    getattr(many, "in").CopyFrom(vpb.FieldIn(field="id", values=[vpb.FilterValue(number_value=i)
                                                                 for i in range(MAX_CLAUSES)]))
    with pytest.raises(InvalidRequest) as caught:
        parse(many)
    assert caught.value.violations[0][0] == "filter.in"


def test_a_number_that_is_not_finite_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(vpb.Filter(range=vpb.FieldRange(field="x", lt=float("inf"))))
    assert caught.value.violations[0][0] == "filter.range.lt"
