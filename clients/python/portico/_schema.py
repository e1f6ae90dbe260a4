"""JSON Schema as text, from a dict, a pydantic model class or ready-made text.

The API carries schemas as JSON text rather than a protobuf Struct so key order and
integers survive; these helpers write that text so callers never do it by hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeGuard

from pydantic import BaseModel

SchemaLike = Mapping[str, Any] | type[BaseModel] | str


def is_model_class(value: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(value, type) and issubclass(value, BaseModel)


def schema_text(schema: SchemaLike, *, what: str) -> str:
    """The schema as compact JSON text; `what` names the argument in error messages."""
    if is_model_class(schema):
        tree: Any = schema.model_json_schema()
    elif isinstance(schema, str):
        try:
            tree = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what}: not valid JSON: {exc}") from None
        if not isinstance(tree, dict):
            raise ValueError(f"{what}: a JSON Schema must be a JSON object")
        return schema  # the caller's exact text, key order and all
    elif isinstance(schema, Mapping):
        tree = dict(schema)
    else:
        raise TypeError(
            f"{what}: expected a dict, a pydantic model class or JSON text, "
            f"got {type(schema).__name__}"
        )
    # json.dumps keeps dict insertion order, so properties reach the model as written.
    return json.dumps(tree, ensure_ascii=False, separators=(",", ":"))
