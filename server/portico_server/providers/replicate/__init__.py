"""`replicate`: language models hosted on Replicate, through its predictions API.

- `prompt`: a chat request as a prediction's `input` (prompt or messages format);
- `prediction`: reading a prediction's status, text and usage;
- `errors`: problem-details bodies, failed predictions and `error` events as exceptions;
- `provider`: the HTTP provider (create, wait, poll, stream, cancel) and its options.

Importing this package registers the `replicate` kind.
"""

from .. import registry
from .prompt import Target, build_input, target
from .provider import DEFAULT_BASE_URL, ReplicateOptions, ReplicateProvider

__all__ = ["DEFAULT_BASE_URL", "ReplicateOptions", "ReplicateProvider", "Target", "build_input", "target"]

registry.register("replicate", ReplicateProvider)
