"""Tool definitions from a dict or a pydantic model, so nobody writes schema text by hand."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from ._parts import cache_from_value
from ._schema import SchemaLike, is_model_class, schema_text
from .v1 import types_pb2

ToolLike = types_pb2.ToolDefinition | Mapping[str, Any] | type[BaseModel]


def tool(
    name: str,
    parameters: SchemaLike | None = None,
    *,
    description: str = "",
) -> types_pb2.ToolDefinition:
    """A tool the model may call.

    `parameters` is the JSON Schema of its arguments: a dict, a pydantic model class or
    JSON text; None means the tool takes no arguments.
    """
    if not name:
        raise ValueError("tool: name must not be empty")
    text = "" if parameters is None else schema_text(parameters, what=f"tool {name!r} parameters")
    return types_pb2.ToolDefinition(name=name, description=description, parameters_json_schema=text)


def tool_definitions(tools: Iterable[ToolLike]) -> list[types_pb2.ToolDefinition]:
    """`tools=` entries as protobuf: ToolDefinition, a dict or a pydantic model class.

    A dict has `name`, optional `description` and optional `parameters`. A model class
    becomes a tool named after the class, described by its docstring.
    """
    out = []
    for i, item in enumerate(tools):
        if isinstance(item, types_pb2.ToolDefinition):
            out.append(item)
        elif is_model_class(item):
            out.append(tool(item.__name__, item, description=_own_docstring(item)))
        elif isinstance(item, Mapping):
            unknown = set(item) - {"name", "description", "parameters", "cache"}
            if unknown:
                raise ValueError(f"tools[{i}]: unknown key(s) {sorted(unknown)}")
            definition = tool(
                str(item.get("name", "")),
                item.get("parameters"),
                description=str(item.get("description", "")),
            )
            breakpoint_ = cache_from_value(item.get("cache"), f"tools[{i}]")
            if breakpoint_ is not None:
                definition.cache.CopyFrom(breakpoint_)
            out.append(definition)
        else:
            raise TypeError(
                f"tools[{i}]: expected a ToolDefinition, a dict or a pydantic model class, "
                f"got {type(item).__name__}"
            )
    return out


def _own_docstring(model: type[BaseModel]) -> str:
    # BaseModel's own docstring is inherited by every model that has none; skip it.
    doc = model.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if doc else ""
