"""The filter tree of `model.py` compiled to a parameterised SQL condition on a `jsonb`
column, meaning exactly what `matching.matches` means in Python.

Nothing from the filter is ever written into the SQL text: field names and values both
travel as bind parameters (`$1`, `$2`, ...); only the shape of the tree decides the text.

How the Python semantics map to SQL:
- a dotted path first names a key holding the dot itself, then nested objects:
  `COALESCE(doc -> 'a.b', doc -> 'a' -> 'b')`. `->` with a text key is NULL on anything
  but an object, so a path never indexes into an array (as `#>` would with `'0'`);
- jsonb equality compares numbers by value (1 = 1.0) and never equates `true` with 1 or
  "1" with 1, as `matching.equal` does;
- a range applies to numbers only (`jsonb_typeof` guards the cast);
- every leaf is `COALESCE(..., false)`, so a missing field is false rather than NULL and
  `Not` of it is true, as in Python.
"""

from __future__ import annotations

import json

from ..errors import InvalidRequest
from .model import And, Eq, Filter, In, Not, Or, Range, Scalar

#: Postgres text and jsonb cannot hold NUL, so no stored value equals one that has it.
_NUL = "\x00"


class Compiler:
    """Collects bind parameters while compiling; `params` continue after `first_param - 1`
    parameters the caller already has."""

    def __init__(self, column: str, first_param: int = 1) -> None:
        self.column = column
        self.params: list[object] = []
        self._first = first_param

    def _bind(self, value: object, cast: str) -> str:
        self.params.append(value)
        return f"${self._first + len(self.params) - 1}::{cast}"

    def _lookup(self, field: str) -> str:
        if not isinstance(field, str) or not field or _NUL in field:
            raise InvalidRequest([("filter", f"field {field!r} is not a metadata key or dotted path")])
        whole = f"({self.column} -> {self._bind(field, 'text')})"
        parts = field.split(".")
        if len(parts) == 1:
            return whole
        nested = self.column + "".join(f" -> {self._bind(part, 'text')}" for part in parts)
        return f"COALESCE({whole}, {nested})"

    def _json(self, value: Scalar) -> str | None:
        """The jsonb parameter for a scalar, or None for a string no jsonb value can equal."""
        if isinstance(value, str) and _NUL in value:
            return None
        return self._bind(json.dumps(value), "jsonb")

    def compile(self, clause: Filter) -> str:
        if isinstance(clause, Eq):
            wanted = self._json(clause.value)
            return "false" if wanted is None else f"COALESCE({self._lookup(clause.field)} = {wanted}, false)"
        if isinstance(clause, In):
            values = [json.dumps(v) for v in clause.values if not (isinstance(v, str) and _NUL in v)]
            if not values:
                return "false"
            return f"COALESCE({self._lookup(clause.field)} = ANY({self._bind(values, 'jsonb[]')}), false)"
        if isinstance(clause, Range):
            return self._range(clause)
        if isinstance(clause, And):
            return "(" + " AND ".join(self.compile(c) for c in clause.clauses) + ")" if clause.clauses else "true"
        if isinstance(clause, Or):
            return "(" + " OR ".join(self.compile(c) for c in clause.clauses) + ")" if clause.clauses else "false"
        if isinstance(clause, Not):
            return f"(NOT {self.compile(clause.clause)})"
        raise TypeError(f"not a filter clause: {clause!r}")

    def _range(self, clause: Range) -> str:
        value = self._lookup(clause.field)
        bounds = [(op, bound) for op, bound in ((">", clause.gt), (">=", clause.gte), ("<", clause.lt),
                                                ("<=", clause.lte)) if bound is not None]
        if not bounds:
            return f"COALESCE(jsonb_typeof({value}) = 'number', false)"
        # float8 as in Python, which compares float(stored) with the bound.
        tests = " AND ".join(f"({value})::float8 {op} {self._bind(float(bound), 'float8')}" for op, bound in bounds)
        return f"COALESCE(CASE WHEN jsonb_typeof({value}) = 'number' THEN {tests} END, false)"


def compile_filter(clause: Filter, column: str, first_param: int = 1) -> tuple[str, list[object]]:
    """The SQL condition for `clause` on the jsonb `column` and its parameters, numbered
    from `first_param`."""
    compiler = Compiler(column, first_param)
    return compiler.compile(clause), compiler.params
