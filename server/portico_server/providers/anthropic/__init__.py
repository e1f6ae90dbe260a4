"""`anthropic`: Claude through Anthropic's native Messages API (`POST /v1/messages`).

- `request`: a chat request as a Messages body (turns, tools, the structured-answer tool);
- `response`: a message or the events of a stream as domain responses and chunks;
- `errors`: error bodies, `error` events and rate-limit headers as domain exceptions;
- `models`: the built-in table of Claude models;
- `provider`: the HTTP provider, its options, and the environment hook.

Importing this package registers the `anthropic` kind.
"""

from .. import registry
from .models import KNOWN_MODELS, UNKNOWN_MODEL_MAX_OUTPUT, ModelFacts, model_facts
from .provider import (
    API_VERSION,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_TOKENS_CAP,
    ENVIRONMENT_MODELS,
    MAX_REQUEST_BYTES,
    AnthropicOptions,
    AnthropicProvider,
    settings_from_environment,
)
from .request import convert_messages
from .response import StreamTranslator

__all__ = [
    "API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_TOKENS_CAP",
    "ENVIRONMENT_MODELS",
    "KNOWN_MODELS",
    "MAX_REQUEST_BYTES",
    "UNKNOWN_MODEL_MAX_OUTPUT",
    "AnthropicOptions",
    "AnthropicProvider",
    "ModelFacts",
    "StreamTranslator",
    "convert_messages",
    "model_facts",
    "settings_from_environment",
]

registry.register("anthropic", AnthropicProvider)
registry.add_environment_hook(settings_from_environment)
