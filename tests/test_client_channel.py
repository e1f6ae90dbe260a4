"""What the client puts on the wire: metadata and TLS.

The gateway's own servicer is hosted on a server built here, so the test can record
what arrives (a server interceptor) and listen with TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import portico
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from portico.v1 import llm_service_pb2_grpc
from portico_server.app import Gateway
from portico_server.config import parse_config

CONFIG = {
    "server": {"health_probe_interval": 0},
    "providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "default_model": "fake-chat"}],
}


class MetadataRecorder(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Keeps the invocation metadata of every call that arrives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str | bytes]]] = []

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        self.calls.append((details.method, dict(details.invocation_metadata or ())))
        return await continuation(details)


@contextlib.asynccontextmanager
async def gateway_servicer(
    *, interceptors: tuple[Any, ...] = (), credentials: grpc.ServerCredentials | None = None
) -> AsyncIterator[int]:
    """The gateway's LLMService on a loopback port of a server built here; yields the port."""
    gateway = Gateway(parse_config(CONFIG, "test config"))
    server = grpc.aio.server(interceptors=interceptors)
    llm_service_pb2_grpc.add_LLMServiceServicer_to_server(gateway.servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)
        await gateway.stop(grace=0)


@dataclass
class Certificates:
    ca: bytes
    server_chain: bytes
    server_key: bytes


def make_certificates(host_names: list[str]) -> Certificates:
    """A throwaway CA and a server certificate it signed for `host_names`."""
    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("portico test CA"))
        .issuer_name(name("portico test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [x509.DNSName(h) for h in host_names]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server = (
        x509.CertificateBuilder()
        .subject_name(name(host_names[0]))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Certificates(
        ca=ca.public_bytes(pem),
        server_chain=server.public_bytes(pem),
        server_key=server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


async def test_client_and_call_metadata_are_sent_with_every_call() -> None:
    recorder = MetadataRecorder()
    async with gateway_servicer(interceptors=(recorder,)) as port, portico.AsyncClient(
        f"127.0.0.1:{port}", metadata={"X-Team": "search", "x-trace-bin": b"\x00\x01"}
    ) as client:
        await client.chat("hi", provider="fake", metadata=[("x-request-id", "r-1")])
        await client.providers()

    (chat_method, chat_md), (list_method, list_md) = recorder.calls
    assert chat_method == "/portico.v1.LLMService/Chat"
    assert chat_md["x-team"] == "search"
    assert chat_md["x-trace-bin"] == b"\x00\x01"
    assert chat_md["x-request-id"] == "r-1"
    assert str(chat_md["user-agent"]).startswith("portico-python/")
    assert list_method == "/portico.v1.LLMService/ListProviders"
    assert list_md["x-team"] == "search"
    assert "x-request-id" not in list_md


async def test_sync_client_sends_metadata_too() -> None:
    recorder = MetadataRecorder()
    async with gateway_servicer(interceptors=(recorder,)) as port:
        with portico.Client(f"127.0.0.1:{port}", metadata=[("x-team", "ads")]) as client:
            await asyncio.to_thread(lambda: client.chat("hi", provider="fake", metadata={"x-extra": "1"}))

    (_, metadata), = recorder.calls
    assert (metadata["x-team"], metadata["x-extra"]) == ("ads", "1")


async def test_tls_with_the_gateways_ca_and_a_server_name_override() -> None:
    certs = make_certificates(["gateway.portico.test"])
    credentials = grpc.ssl_server_credentials([(certs.server_key, certs.server_chain)])
    async with gateway_servicer(credentials=credentials) as port:
        tls = portico.TLS(root_certificates=certs.ca, server_name="gateway.portico.test")
        async with portico.AsyncClient(f"localhost:{port}", tls=tls) as client:
            answer = await client.chat("over TLS", provider="fake")
        # Verified against the system roots, the test CA is unknown: the handshake fails.
        async with portico.AsyncClient(f"127.0.0.1:{port}", tls=True, retry=None, timeout=5) as client:
            with pytest.raises(portico.ConnectionFailedError):
                await client.chat("over TLS", provider="fake")
        # Plaintext to a TLS port fails too, rather than silently downgrading.
        async with portico.AsyncClient(f"127.0.0.1:{port}", retry=None, timeout=5) as client:
            with pytest.raises(portico.ConnectionFailedError):
                await client.chat("in clear", provider="fake")

    assert answer.content == "over TLS"


def test_tls_from_files_reads_pem(tmp_path: Any) -> None:
    certs = make_certificates(["gateway.portico.test"])
    (tmp_path / "ca.pem").write_bytes(certs.ca)
    tls = portico.TLS.from_files(tmp_path / "ca.pem", server_name="gateway.portico.test")
    assert tls == portico.TLS(root_certificates=certs.ca, server_name="gateway.portico.test")
    with pytest.raises(ValueError, match="both"):
        portico.TLS(certificate_chain=certs.server_chain).credentials()
