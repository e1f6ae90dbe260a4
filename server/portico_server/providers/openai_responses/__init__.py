"""`openai_responses`: OpenAI's Responses API (`POST /v1/responses`) as an upstream dialect.

- `request`: a chat request as a Responses body (input items, instructions, tools,
  text format, reasoning, encrypted reasoning items sent back);
- `response`: a response object or the events of a stream as domain answers and chunks;
- `errors`: failures reported inside a stream (`response.failed`, `error`);
- `provider`: the HTTP provider and its options.

Importing this package registers the `openai_responses` kind.
"""

from .. import registry
from .provider import DEFAULT_BASE_URL, REASONING_MODELS, OpenAIResponsesOptions, OpenAIResponsesProvider
from .request import REASONING_SOURCE, build_body, input_items, reasoning_item
from .response import StreamTranslator, completion, parse_usage

__all__ = [
    "DEFAULT_BASE_URL",
    "REASONING_MODELS",
    "REASONING_SOURCE",
    "OpenAIResponsesOptions",
    "OpenAIResponsesProvider",
    "StreamTranslator",
    "build_body",
    "completion",
    "input_items",
    "parse_usage",
    "reasoning_item",
]

registry.register("openai_responses", OpenAIResponsesProvider)
