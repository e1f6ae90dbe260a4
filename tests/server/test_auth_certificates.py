"""A client certificate's subject as the caller's identity: read from a real mutual-TLS
handshake's `auth_context()` (throwaway certificates), matched in any attribute order,
and applied by the same interceptor the gateway installs."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from portico_server import intake
from portico_server.app import Gateway
from portico_server.auth import AuthInterceptor, certificate_subject, subject_parts
from portico_server.config import parse_config
from portico_server.servicer import fail

KEY = "pk-billing-1d2e3f4a5b"


@dataclass
class Issued:
    cert: bytes
    key: bytes


def _name(**parts: str) -> x509.Name:
    oids = {"O": NameOID.ORGANIZATION_NAME, "CN": NameOID.COMMON_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in parts.items()])


def _issue(subject: x509.Name, issuer: x509.Name, signer: Any, public: Any, *, ca: bool = False,
           server: bool = False) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Authority:
    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(O="Acme", CN="Test CA")
        self.cert = _issue(self.name, self.name, self.key, self.key.public_key(), ca=True)

    def issue(self, *, server: bool = False, **subject: str) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        return Issued(_issue(_name(**subject), self.name, self.key, key.public_key(), server=server), _key_pem(key))


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


CONFIG = {
    "server": {"address": "127.0.0.1:0", "health_probe_interval": 0},
    "providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat", "fake-large"]}],
    "auth": {"keys": [
        # OpenSSL's order; the handshake reports RFC 2253's ("CN=billing,O=Acme").
        {"name": "billing", "subject": "O=Acme, CN=billing", "allow": {"models": ["fake-chat"]}},
        {"name": "keyed", "sha256": hashlib.sha256(KEY.encode()).hexdigest()},
    ]},
}


@pytest.fixture
async def mtls_gateway(authority: Authority) -> AsyncIterator[tuple[Gateway, int]]:
    """The gateway's servicer and auth interceptor behind a mutual-TLS port (the TLS
    wiring of `portico serve` itself is tested with the TLS settings)."""
    gateway = Gateway(parse_config(CONFIG))
    server = grpc.aio.server(interceptors=[AuthInterceptor(gateway.auth, fail)])
    intake.add_to_server(gateway.servicer, server, gateway.decoder, fail)
    served = authority.issue(server=True, CN="localhost")
    credentials = grpc.ssl_server_credentials([(served.key, served.cert)], root_certificates=authority.cert,
                                              require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield gateway, port
    finally:
        await server.stop(0)
        await gateway.stop(grace=0)


def channel(port: int, authority: Authority, client: Issued) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(authority.cert, client.key, client.cert)
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials,
                                   options=[("grpc.ssl_target_name_override", "localhost")])


def chat(model: str) -> pb.ChatRequest:
    return pb.ChatRequest(model=model, messages=[t.Message(role=t.ROLE_USER, content="hi")])


async def test_the_certificate_subject_identifies_the_caller(
    mtls_gateway: tuple[Gateway, int], authority: Authority
) -> None:
    _, port = mtls_gateway
    async with channel(port, authority, authority.issue(O="Acme", CN="billing")) as ch:
        stub = llm_service_pb2_grpc.LLMServiceStub(ch)
        answer = await stub.Chat(chat("fake-chat"))
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.Chat(chat("fake-large"))
    assert answer.content == "hi"
    # The allow list of the entry the subject named applied.
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'billing'" in denied.value.details()


async def test_an_unknown_subject_is_unauthenticated_and_a_key_still_works(
    mtls_gateway: tuple[Gateway, int], authority: Authority
) -> None:
    _, port = mtls_gateway
    async with channel(port, authority, authority.issue(O="Acme", CN="someone-else")) as ch:
        stub = llm_service_pb2_grpc.LLMServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.Chat(chat("fake-chat"))
        keyed = await stub.Chat(chat("fake-large"), metadata=(("authorization", f"Bearer {KEY}"),))
    assert unknown.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "client certificate" in unknown.value.details()
    assert keyed.content == "hi"


async def test_auth_context_carries_the_subject_in_rfc_2253_form(authority: Authority) -> None:
    seen: list[dict[str, Any]] = []

    class Capture(llm_service_pb2_grpc.LLMServiceServicer):
        async def ListProviders(self, request: Any, context: Any) -> pb.ListProvidersResponse:
            seen.append(context.auth_context())
            return pb.ListProvidersResponse()

    server = grpc.aio.server()
    llm_service_pb2_grpc.add_LLMServiceServicer_to_server(Capture(), server)
    served = authority.issue(server=True, CN="localhost")
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
        [(served.key, served.cert)], root_certificates=authority.cert, require_client_auth=True))
    await server.start()
    try:
        async with channel(port, authority, authority.issue(O="Acme", CN="billing")) as ch:
            await llm_service_pb2_grpc.LLMServiceStub(ch).ListProviders(pb.ListProvidersRequest())
    finally:
        await server.stop(0)
    assert certificate_subject(seen[0]) == "CN=billing,O=Acme"
    assert certificate_subject({}) is None


def test_subjects_match_in_any_order_with_any_spacing() -> None:
    same = subject_parts("CN=billing,O=Acme")
    assert same == subject_parts("O=Acme, CN=billing") == subject_parts("o=Acme,cn=billing")
    assert subject_parts("CN=billing,O=Acme") != subject_parts("CN=billing,O=Other")
    assert subject_parts(r"CN=a\,b,O=Acme") == (("CN", r"a\,b"), ("O", "Acme"))
