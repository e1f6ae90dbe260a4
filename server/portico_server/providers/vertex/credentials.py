"""OAuth access tokens for Vertex AI, fetched without blocking the event loop.

`adc` gets them from google-auth, whose calls block (file reads, HTTP to a token
endpoint or the metadata server), so they run in a worker thread. A token is replaced some
time before it expires, and only one fetch runs however many calls need a token: calls
that must wait all wait for that fetch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ...call import CallContext
from ...errors import UpstreamDeadlineExceeded, UpstreamTimeout

#: A token this close to its expiry is not handed out: it could expire on the way.
_USABLE_UNTIL = 10.0


class TokenSource:
    """Bearer tokens for one provider. `token()` returns a valid one. Within `margin`
    seconds of its expiry a new one is fetched in the background while calls keep using
    the old one; a call waits only when there is no token yet, or the one there is about
    to expire. Fetches run in a thread, one at a time, shared by every waiting call."""

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
        # google-auth is imported here, not with the module: only a configured vertex
        # provider pays for it.
        from .adc import GoogleCredentials

        self._google = GoogleCredentials(provider, credentials_file, timeout)
        self._token = ""
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._inflight: asyncio.Task[str] | None = None
        #: Tokens fetched so far.
        self.refreshes = 0

    @property
    def project(self) -> str | None:
        """The project the credentials name; None until they are loaded (or if none)."""
        return self._google.project

    @property
    def quota_project(self) -> str:
        return self._google.quota_project

    async def token(self, call: CallContext) -> str:
        """A token that is not about to expire. Waits at most the token timeout or the
        caller's remaining deadline, whichever is sooner."""
        now = self._clock()
        if self._token and now < self._refresh_at:
            return self._token
        task = self._inflight
        if task is None:
            task = self._inflight = asyncio.get_running_loop().create_task(self._refresh())
            task.add_done_callback(self._finished)
        if self._token and now < self._expires_at - _USABLE_UNTIL:
            return self._token  # still valid: the new one is fetched in the background
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

    def close(self) -> None:
        """Stop waiting for a fetch under way (its thread ends on its own) and release
        the token requests' connections."""
        if self._inflight is not None:
            self._inflight.cancel()
        self._google.close()

    def invalidate(self, token: str) -> None:
        """Make the next call fetch a new token (the upstream refused `token`)."""
        if token and token == self._token:
            self._refresh_at = self._expires_at = 0.0

    def _finished(self, task: asyncio.Task[str]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter gave up

    async def _refresh(self) -> str:
        token, lifetime = await asyncio.to_thread(self._google.fetch)
        now = self._clock()
        self._token = token
        self._expires_at = now + lifetime
        # Early by `margin`, but never so early that a short-lived token is fetched again
        # on every call.
        self._refresh_at = now + lifetime - min(self._margin, lifetime / 2)
        self.refreshes += 1
        return token
