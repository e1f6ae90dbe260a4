"""What Client and AsyncClient share: settings, per-call options, result parsing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ._channel import TLS, ChannelSettings
from ._credentials import api_key_metadata, resolve_tls
from ._errors import ResponseParseError
from ._request import MetadataLike, call_metadata
from ._retry import NO_RETRY, Attempts, RetryPolicy
from .v1 import llm_service_pb2

ModelT = TypeVar("ModelT", bound=BaseModel)

DEFAULT_ADDRESS = "127.0.0.1:50051"
#: Seconds a call may take unless the client or the call says otherwise. Long, because
#: a model can think for minutes; short enough that a lost answer does not hang forever.
DEFAULT_TIMEOUT = 600.0
#: Seconds between keepalive pings while calls are open.
DEFAULT_KEEPALIVE_TIME = 60.0


class ClientCore:
    """Channel settings and call defaults, resolved once at construction."""

    def __init__(
        self,
        address: str | None,
        *,
        tls: bool | TLS,
        api_key: str | None,
        ca_file: str | Path | None,
        cert_file: str | Path | None,
        key_file: str | Path | None,
        metadata: MetadataLike | None,
        timeout: float | None,
        retry: RetryPolicy | None,
        max_message_bytes: int,
        keepalive_time: float | None,
    ) -> None:
        resolved = address or os.environ.get("PORTICO_ADDRESS") or DEFAULT_ADDRESS
        self.channel = ChannelSettings(
            address=resolved,
            tls=resolve_tls(tls, ca_file, cert_file, key_file),
            max_message_bytes=max_message_bytes,
            keepalive_time=keepalive_time,
        )
        own = call_metadata(metadata)
        # The key goes first: a proxy that keeps only the first `authorization` still sees it.
        self.metadata = [*api_key_metadata(api_key, own), *own]
        self.timeout = timeout
        self.retry = retry or NO_RETRY

    @property
    def address(self) -> str:
        return self.channel.address

    def attempts(self, options: Mapping[str, Any]) -> Attempts:
        """The attempts of one call, within its deadline; a call's own timeout wins, None included."""
        return Attempts(self.retry, options.get("timeout", self.timeout))

    def call_kwargs(self, options: Mapping[str, Any], attempts: Attempts) -> dict[str, Any]:
        """`timeout` (what is left of the call's) and `metadata` for one attempt's stub call."""
        metadata = call_metadata(self.metadata, options.get("metadata"))
        return {"timeout": attempts.timeout(), "metadata": metadata or None}


def parse_structured(response: llm_service_pb2.CompletionResponse, model: type[ModelT]) -> ModelT:
    """The answer's content validated as `model`; ResponseParseError when it does not fit."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ResponseParseError(
            f"the answer is not a valid {model.__name__}: {exc.error_count()} error(s), "
            f"first: {exc.errors()[0]['msg']}",
            response=response,
        ) from exc

