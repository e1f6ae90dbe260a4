"""OAuth access tokens for Vertex AI from Google's Application Default Credentials.

google-auth finds the credentials (a service-account or external-account file, the
metadata server, workload identity) and fetches tokens. Its calls block (file reads,
HTTP to a token endpoint), so they run in a worker thread, never on the event loop. A
token is fetched again some time before it expires, and only once however many calls
need it: calls that find the token stale while a fetch is under way wait for that fetch.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from typing import Any

import google.auth
import urllib3
from google.auth import exceptions as auth_errors
from google.auth.credentials import Credentials
from google.auth.transport.urllib3 import Request as Urllib3Request

from ...call import CallContext
from ...config import ConfigError
from ...errors import (
    UpstreamAuth,
    UpstreamConnection,
    UpstreamDeadlineExceeded,
    UpstreamError,
    UpstreamProtocol,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ...redaction import redact

#: The scope Vertex AI calls need.
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
#: Lifetime assumed for a token whose credentials report no expiry.
_UNKNOWN_LIFETIME = 3600.0
_MAX_MESSAGE = 300


class TokenSource:
    """Bearer tokens for one provider. `token()` returns a fresh one, fetching it (in a
    thread, once for all waiting calls) when there is none or it is within `margin`
    seconds of its expiry."""

    def __init__(
        self,
        provider: str,
        *,
        credentials_file: str | None,
        margin: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._margin = margin
        self._timeout = timeout
        self._clock = clock
        self._credentials: Credentials | None = None
        #: The project the credentials name (a key file's `project_id`, the metadata
        #: server's project); None until known.
        self.project: str | None = None
        self._token = ""
        self._refresh_at = 0.0
        self._inflight: asyncio.Task[str] | None = None
        #: Tokens fetched so far.
        self.refreshes = 0
        # google-auth's urllib3 transport; the pool's timeout bounds every token request.
        self._http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout), retries=False)
        if credentials_file:
            # A small local file, read once at start-up so a wrong path fails the config.
            try:
                credentials, project = google.auth.load_credentials_from_file(
                    credentials_file, scopes=[CLOUD_PLATFORM_SCOPE])
            except auth_errors.DefaultCredentialsError as exc:
                raise ConfigError(f"provider {provider!r}: options.credentials_file: {_text(exc)}") from None
            self._credentials = credentials
            self.project = project

    @property
    def quota_project(self) -> str:
        """The project billed for quota, when the credentials name one apart from the
        resource's project (user credentials with a quota project)."""
        return str(getattr(self._credentials, "quota_project_id", None) or "")

    async def token(self, call: CallContext) -> str:
        """A token that is not about to expire. Waits at most the token timeout or the
        caller's remaining deadline, whichever is sooner."""
        if self._token and self._clock() < self._refresh_at:
            return self._token
        task = self._inflight
        if task is None:
            task = self._inflight = asyncio.get_running_loop().create_task(self._refresh())
            task.add_done_callback(self._finished)
        bound = self._timeout
        remaining = call.remaining()
        caller_bound = remaining is not None and remaining < bound
        if remaining is not None:
            bound = min(bound, max(0.001, remaining))
        try:
            async with asyncio.timeout(bound):
                # Shielded: one caller giving up must not cancel the fetch others wait for.
                return await asyncio.shield(task)
        except TimeoutError:
            expired = UpstreamDeadlineExceeded if caller_bound else UpstreamTimeout
            raise expired(f"provider {self._provider!r}: no access token within {bound:.3g}s",
                          provider=self._provider, retry_safe=True) from None

    def invalidate(self, token: str) -> None:
        """Make the next call fetch a new token (the upstream refused `token`)."""
        if token and token == self._token:
            self._refresh_at = 0.0

    def _finished(self, task: asyncio.Task[str]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter gave up

    async def _refresh(self) -> str:
        token, lifetime = await asyncio.to_thread(self._fetch)
        now = self._clock()
        self._token = token
        # Early by `margin`, but never so early that a short-lived token is fetched again
        # on every call.
        self._refresh_at = now + lifetime - min(self._margin, lifetime / 2)
        self.refreshes += 1
        return token

    def _fetch(self) -> tuple[str, float]:
        """(token, seconds it stays valid). Runs in a worker thread."""
        try:
            if self._credentials is None:
                credentials, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
                self._credentials = credentials
                self.project = self.project or project
            credentials = self._credentials
            credentials.refresh(Urllib3Request(self._http))
        except Exception as exc:
            raise self._error(exc) from None
        token = credentials.token
        if not isinstance(token, str) or not token:
            raise UpstreamProtocol(f"provider {self._provider!r}: the token endpoint sent no access token",
                                   provider=self._provider)
        expiry: Any = credentials.expiry
        if isinstance(expiry, datetime.datetime):
            now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # google-auth's naive UTC
            lifetime = max(0.0, (expiry - now).total_seconds())
        else:
            lifetime = _UNKNOWN_LIFETIME
        return token, lifetime

    def _error(self, exc: Exception) -> UpstreamError:
        """The domain error for a failure to find credentials or fetch a token."""
        name = self._provider
        if isinstance(exc, auth_errors.DefaultCredentialsError):
            return UpstreamAuth(
                f"provider {name!r}: no Google credentials found: set options.credentials_file or "
                "GOOGLE_APPLICATION_CREDENTIALS, or run where a metadata server or workload identity "
                f"provides them ({_text(exc)})",
                provider=name,
            )
        if isinstance(exc, auth_errors.RefreshError):
            text = f"provider {name!r}: the token endpoint refused the credentials: {_text(exc)}"
            if getattr(exc, "retryable", False):
                return UpstreamUnavailable(text, provider=name, retry_safe=True)
            return UpstreamAuth(text, provider=name)
        if isinstance(exc, auth_errors.TransportError):
            return UpstreamConnection(f"provider {name!r}: cannot reach the token endpoint", provider=name,
                                      retry_safe=True)
        if isinstance(exc, UpstreamError):
            return exc
        return UpstreamProtocol(f"provider {name!r}: getting an access token failed ({type(exc).__name__})",
                                provider=name, retry_safe=True)


def _text(exc: Exception) -> str:
    """An exception's first argument as one bounded line, with known secrets removed."""
    first = exc.args[0] if exc.args else ""
    return redact(" ".join(str(first).split()))[:_MAX_MESSAGE]
