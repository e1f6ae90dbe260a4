"""Who the client says it is, and how it checks the gateway: the caller key and TLS files.

The key goes as `authorization: Bearer <key>` metadata on every call, with or without TLS:
a gateway on loopback or inside a cluster often listens in plaintext, and refusing to send
the key there would only push people to turn auth off. Over a network, use TLS.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ._channel import TLS

API_KEY_ENV = "PORTICO_API_KEY"
AUTHORIZATION = "authorization"


def resolve_api_key(api_key: str | None) -> str | None:
    """`api_key`, else $PORTICO_API_KEY, with surrounding whitespace removed; None for no key.

    gRPC metadata values must be printable ASCII; a key that is not is refused here with
    a message that does not repeat the key (it would land in logs)."""
    source = "api_key"
    if api_key is None:
        api_key, source = os.environ.get(API_KEY_ENV), f"${API_KEY_ENV}"
    if api_key is None:
        return None
    key = api_key.strip()
    if not key:
        if source == "api_key":
            raise ValueError("api_key is empty; leave it out to send no key")
        return None  # an exported but empty variable means "no key", as in most tools
    if not all(" " < ch <= "~" for ch in key):
        raise ValueError(f"{source}: a caller key is printable ASCII without spaces; this one is not")
    return key


def api_key_metadata(api_key: str | None, metadata: Sequence[tuple[str, str | bytes]]) -> list[tuple[str, str]]:
    """The `authorization` pair for the caller key (`api_key`, else $PORTICO_API_KEY), or
    none. An `authorization` entry in the client's own metadata wins over the variable;
    given together with `api_key` it would send two, so that is refused."""
    if any(name == AUTHORIZATION for name, _ in metadata):
        if api_key is not None:
            raise ValueError("give the caller key as api_key or as `authorization` metadata, not both")
        return []
    key = resolve_api_key(api_key)
    return [] if key is None else [(AUTHORIZATION, f"Bearer {key}")]


def resolve_tls(
    tls: bool | TLS,
    ca_file: str | Path | None,
    cert_file: str | Path | None,
    key_file: str | Path | None,
) -> TLS | None:
    """The TLS settings, or None for plaintext. A CA file or a client certificate implies
    TLS; `tls=True` without a CA file verifies the gateway against the system's roots."""
    files = (ca_file, cert_file, key_file)
    if (cert_file is None) != (key_file is None):
        raise ValueError("TLS: give cert_file and key_file together (the client certificate and its key)")
    if isinstance(tls, TLS):
        if any(f is not None for f in files):
            raise ValueError("TLS: give either a TLS(...) object or ca_file / cert_file / key_file, not both")
        return tls
    if any(f is not None for f in files):
        return TLS.from_files(ca_file, cert_file, key_file)
    return TLS() if tls else None
