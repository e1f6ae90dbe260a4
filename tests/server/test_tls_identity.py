"""Mutual TLS and caller keys together, end to end: the gateway listens with TLS and
verifies client certificates, and a certificate's subject is the caller's identity —
with that caller's allow list — as a user sets it up with the Python client's options."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from portico import AsyncClient, PermissionDeniedError, UnauthenticatedError
from portico_server.app import Gateway
from portico_server.config import parse_config
from tls_certs import Authority

KEY = "pk-ops-7c1e0a9b3d"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[int, Authority, Path]]:
    ca = Authority()
    cert, key = ca.server().write(tmp_path / "server")
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    config = parse_config({
        "server": {"address": "127.0.0.1:0", "health_probe_interval": 0, "tls": {
            "cert_file": str(cert), "key_file": str(key),
            "client_ca_file": str(tmp_path / "ca.crt"), "require_client_cert": True}},
        "providers": [{"name": "fake", "kind": "fake", "default_model": "fake-chat"},
                      {"name": "other", "kind": "fake", "default_model": "fake-chat"}],
        "auth": {"keys": [
            {"name": "billing", "subject": "CN=billing,O=Acme", "allow": {"providers": ["fake"]}},
            {"name": "ops", "sha256": hashlib.sha256(KEY.encode()).hexdigest()},
        ]},
    }, "test config")
    gw = Gateway(config)
    await gw.start()
    try:
        yield int(gw.address.rpartition(":")[2]), ca, tmp_path
    finally:
        await gw.stop(grace=0)


def client(port: int, ca_file: Path, cert: tuple[Path, Path], api_key: str | None = None) -> AsyncClient:
    return AsyncClient(f"localhost:{port}", ca_file=ca_file, cert_file=cert[0], key_file=cert[1],
                       api_key=api_key, retry=None)


async def test_a_client_certificate_subject_is_the_callers_identity(gateway: tuple[int, Authority, Path]) -> None:
    port, ca, tmp = gateway
    billing = ca.client("billing", "Acme").write(tmp / "billing")
    async with client(port, tmp / "ca.crt", billing) as c:
        answer = await c.chat("hello over mutual TLS", provider="fake")
        assert answer.content == "hello over mutual TLS"
        # The certificate's caller has billing's allow list, not everything.
        with pytest.raises(PermissionDeniedError) as denied:
            await c.chat("hi", provider="other")
        assert "other" in str(denied.value)


async def test_a_verified_certificate_that_no_key_names_is_unauthenticated(
    gateway: tuple[int, Authority, Path],
) -> None:
    port, ca, tmp = gateway
    stranger = ca.client("stranger", "Acme").write(tmp / "stranger")
    async with client(port, tmp / "ca.crt", stranger) as c:
        with pytest.raises(UnauthenticatedError):
            await c.chat("hi", provider="fake")
    # The same certificate with a configured key is that key's caller.
    async with client(port, tmp / "ca.crt", stranger, api_key=KEY) as c:
        assert (await c.chat("with a key", provider="other")).content == "with a key"
