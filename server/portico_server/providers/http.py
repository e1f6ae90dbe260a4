"""What every HTTP provider shares: one pooled httpx client, timeouts from the caller's
deadline, the request-size guard, and turning transport failures and error bodies into
domain exceptions with the key scrubbed out.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from .. import jsonwire, offload
from ..config import ProviderSettings
from ..errors import (
    PorticoError,
    RequestTooLarge,
    UpstreamConnection,
    UpstreamError,
    UpstreamPoolExhausted,
    UpstreamProtocol,
    UpstreamTimeout,
    parse_retry_after,
    upstream_error,
)
from .base import Provider

_MAX_ERROR_MESSAGE = 500


class HttpProvider(Provider):
    """Base of providers that speak HTTP. Subclasses set `default_base_url` and
    `auth_headers()`, and may override `error_from_response()` for their error shape."""

    default_base_url = ""

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.base_url = (settings.base_url or self.default_base_url).rstrip("/")
        headers = {**self.auth_headers(), **settings.headers}
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    def api_key(self) -> str:
        return self.settings.api_key.get_secret_value() if self.settings.api_key else ""

    def auth_headers(self) -> dict[str, str]:
        """Headers that carry the credentials; `Authorization: Bearer` unless overridden."""
        key = self.api_key()
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def close(self) -> None:
        await self.client.aclose()

    # -- sending ------------------------------------------------------------------------

    def timeout_for(self, seconds: float | None) -> httpx.Timeout:
        """The caller's remaining deadline bounds every phase of the upstream call."""
        total = self.settings.timeout if seconds is None else max(0.001, seconds)
        return httpx.Timeout(total, connect=min(total, self.settings.connect_timeout))

    def encode(self, body: dict[str, Any]) -> bytes:
        """JSON-encode a body, refusing it unsent when it exceeds `max_request_bytes`."""
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        limit = self.settings.max_request_bytes
        if limit is not None and len(data) > limit:
            raise RequestTooLarge(
                f"request is {len(data)} bytes; provider {self.name!r} accepts at most {limit}",
                limit=f"max_request_bytes={limit}",
                provider=self.name,
            )
        return data

    @contextlib.asynccontextmanager
    async def send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send a request and yield the streaming response once its status is a success.

        The response body is not read yet; leaving the block closes it (and with it the
        upstream connection's stream), which is how a cancelled call stops the provider.
        """
        content = await offload.run(self.encode, body) if body is not None else None
        hdrs = {"content-type": "application/json"} if content is not None else {}
        if headers:
            hdrs.update(headers)
        request = self.client.build_request(
            method, path, content=content, params=params, headers=hdrs, timeout=self.timeout_for(timeout)
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.PoolTimeout:
            raise UpstreamPoolExhausted(
                f"no connection to provider {self.name!r} came free in time", provider=self.name
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # No connection, so the request was never written: sending it again is safe.
            raise UpstreamConnection(
                f"cannot reach provider {self.name!r}: {type(exc).__name__}", provider=self.name, retry_safe=True
            ) from None
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"provider {self.name!r} did not answer in time", provider=self.name) from None
        except httpx.TransportError as exc:
            raise UpstreamConnection(
                f"cannot reach provider {self.name!r}: {type(exc).__name__}", provider=self.name
            ) from None
        try:
            if response.status_code >= 400:
                try:
                    raw = await response.aread()
                except httpx.HTTPError:
                    raw = b""
                raise self.error_from_response(response.status_code, response.headers, raw)
            try:
                yield response
            except PorticoError as exc:
                # The provider accepted the request, so a generation may be under way.
                exc.retry_safe = False
                raise
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"provider {self.name!r} stopped answering in time", provider=self.name) from None
        except httpx.TransportError as exc:
            raise UpstreamConnection(
                f"connection to provider {self.name!r} failed mid-response: {type(exc).__name__}",
                provider=self.name,
            ) from None
        finally:
            await response.aclose()

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """Send a request and return its decoded JSON body."""
        async with self.send(method, path, body=body, timeout=timeout, params=params) as response:
            raw = await response.aread()
        try:
            return jsonwire.loads(raw)
        except ValueError:
            raise UpstreamProtocol(
                f"provider {self.name!r} answered with a body that is not JSON", provider=self.name
            ) from None

    # -- errors -------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """Remove the API key from text that came from upstream, and bound its length."""
        key = self.api_key()
        if key:
            text = text.replace(key, "[redacted]")
        return text[:_MAX_ERROR_MESSAGE]

    def error_from_response(self, status: int, headers: httpx.Headers, body: bytes) -> UpstreamError:
        """Map an error response. The default reads the common `{"error": {...}}` shapes."""
        message, code = extract_error(body)
        text = self.scrub(message) or f"HTTP {status}"
        return upstream_error(
            status,
            f"provider {self.name!r}: {text}",
            provider=self.name,
            code=self.scrub(code),
            retry_after=parse_retry_after(headers),
        )


def extract_error(body: bytes) -> tuple[str, str]:
    """(message, code or type) from the error bodies providers send; empty when unknown."""
    try:
        data = json.loads(body)
    except ValueError:
        return "", ""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini sometimes wraps the error in a list
    if not isinstance(data, dict):
        return "", ""
    err = data.get("error", data)
    if isinstance(err, str):
        return err, str(data.get("type", "") or data.get("code", ""))
    if not isinstance(err, dict):
        return "", ""
    message = str(err.get("message", "") or "")
    code = err.get("code") or err.get("type") or err.get("status") or ""
    return message, str(code)
