"""JSON Schema -> the OpenAPI subset Gemini's `Schema` accepts (tool parameters and
response schemas, when `schema_dialect` is "openapi")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The fields of Gemini's `Schema`; it rejects any other keyword.
_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
})
#: The formats Gemini accepts for each type; any other is dropped.
_FORMATS = {"string": {"enum", "date-time"}, "number": {"float", "double"}, "integer": {"int32", "int64"}}
#: How deep `$ref`s are followed, so a recursive schema still converts.
_MAX_REF_DEPTH = 8


def openapi_schema(schema: Mapping[str, Any], *, ordered: bool = False) -> dict[str, Any]:
    """Convert a JSON Schema to the subset Gemini's `Schema` accepts: `$ref`s inlined,
    `["t", "null"]` and `anyOf` with null turned into `nullable`, unknown keywords dropped.
    With `ordered`, objects get `propertyOrdering` so output keys keep the schema's order
    (Gemini otherwise sorts them)."""
    definitions: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if isinstance(defs, dict):
            definitions.update({f"#/{key}/{name}": value for name, value in defs.items()})
    return _convert(schema, definitions, ordered, 0)


def _convert(schema: Any, definitions: Mapping[str, Any], ordered: bool, depth: int) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = definitions.get(ref)
        if target is None or depth >= _MAX_REF_DEPTH:
            return {"type": "object"}  # unknown or recursive beyond reach: accept any object
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _convert(merged, definitions, ordered, depth + 1)
    source = dict(schema)
    for sub in source.pop("allOf", None) or []:
        if isinstance(sub, dict):
            resolved = definitions.get(sub["$ref"], {}) if isinstance(sub.get("$ref"), str) else sub
            source = {**resolved, **source}
    if "oneOf" in source and "anyOf" not in source:
        source["anyOf"] = source.pop("oneOf")
    if "const" in source and "enum" not in source:
        source["enum"] = [source["const"]]

    out: dict[str, Any] = {}
    kind = source.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) < len(kind):
            out["nullable"] = True
        if len(kinds) == 1:
            kind = kinds[0]
        else:
            source["anyOf"] = [{"type": k} for k in kinds]
            kind = None
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind

    any_of = source.get("anyOf")
    if isinstance(any_of, list):
        options = [s for s in any_of if not (isinstance(s, dict) and s.get("type") == "null")]
        if len(options) < len(any_of):
            out["nullable"] = True
        if len(options) == 1:
            inner = _convert(options[0], definitions, ordered, depth + 1)
            out = {**inner, **out}
        elif options:
            out["anyOf"] = [_convert(s, definitions, ordered, depth + 1) for s in options]

    for key, value in source.items():
        if key not in _SCHEMA_KEYS or key in ("type", "anyOf", "properties", "items", "nullable"):
            continue
        if key == "format" and value not in _FORMATS.get(str(out.get("type")), set()):
            continue
        if key == "enum" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            continue  # Gemini enums are strings only
        out[key] = value
    if source.get("nullable") is True:
        out["nullable"] = True

    properties = source.get("properties")
    if isinstance(properties, dict):
        out["properties"] = {
            name: _convert(sub, definitions, ordered, depth + 1) for name, sub in properties.items()
        }
        out.setdefault("type", "object")
        if ordered and properties and "propertyOrdering" not in out:
            out["propertyOrdering"] = list(properties)
    items = source.get("items")
    if isinstance(items, list):
        items = items[0] if items else {}
    if isinstance(items, dict):
        out["items"] = _convert(items, definitions, ordered, depth + 1)
        out.setdefault("type", "array")
    return out
