"""The gRPC server's HTTP/2 connection policy (`server.connections`) as channel options.

- `max_connection_age` (+ grace): a client connection is asked to go away (GOAWAY) after
  this age, so clients behind a Kubernetes Service, which balances connections and not
  calls, open new connections that can land on replicas started since.
- keepalive: the server pings a quiet connection and drops it when the ping goes
  unanswered (a client gone without closing: a node died, a NAT forgot the flow).
- ping enforcement: a client pinging more often than `min_ping_interval` collects
  strikes, and after `max_ping_strikes` the server closes its connection.
- `max_concurrent_streams`: calls one connection may have open at once; a client's
  further calls wait on its side until one ends.
"""

from __future__ import annotations

from .config import ConnectionSettings

#: gRPC's own marker for "no limit" on a duration option (INT_MAX milliseconds).
_FOREVER_MS = 2**31 - 1


def _ms(seconds: float | None) -> int:
    return _FOREVER_MS if seconds is None else min(_FOREVER_MS, round(seconds * 1000))


def connection_options(settings: ConnectionSettings) -> list[tuple[str, int]]:
    """grpc.aio.server options for `settings`."""
    return [
        ("grpc.max_connection_age_ms", _ms(settings.max_connection_age)),
        ("grpc.max_connection_age_grace_ms", _ms(settings.max_connection_age_grace)),
        ("grpc.keepalive_time_ms", _ms(settings.keepalive_time)),
        ("grpc.keepalive_timeout_ms", _ms(settings.keepalive_timeout)),
        # Clients may keep idle connections alive with their own pings (as the Go and
        # Java clients' keepalive settings do), at most every `min_ping_interval`.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(settings.min_ping_interval)),
        ("grpc.http2.max_ping_strikes", settings.max_ping_strikes),
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
    ]
