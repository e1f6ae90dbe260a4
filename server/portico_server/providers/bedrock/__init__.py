"""`bedrock`: Amazon Bedrock's Converse API (every model family through one dialect).

- `request`: a chat request as a Converse body (turns, tools, media, reasoning, cache points);
- `response`: a Converse answer or the events of a ConverseStream as domain objects;
- `errors`: error responses and exception frames as domain exceptions;
- `aws`: credentials, SigV4 signing and event-stream frames, all from botocore;
- `embeddings`: Titan and Cohere embeddings through InvokeModel;
- `models`: the built-in table of Bedrock models;
- `provider`: the HTTP provider and its options.

Importing this package registers the `bedrock` kind.
"""

from .. import registry
from .provider import BedrockOptions, BedrockProvider

__all__ = ["BedrockOptions", "BedrockProvider"]

registry.register("bedrock", BedrockProvider)
