"""What the client puts on the wire: metadata and TLS.

The gateway's own servicer is hosted on a server built here, so the test can record
what arrives (a server interceptor) and listen with TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import portico
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2_grpc
from harness import PORTICO_BIN
from portico.v1 import admin_service_pb2_grpc
from portico_server import intake
from portico_server.admin import AdminServicer
from portico_server.app import Gateway
from portico_server.config import parse_config
from portico_server.servicer import fail

CONFIG = {
    "server": {"health_probe_interval": 0},
    "providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat", "fake-embed"], "default_model": "fake-chat",
                   "embedding_model": "fake-embed"}],
}
#: A caller key, as the gateway's operator would hand it out.
KEY = "pk-test-caller-0123456789abcdef"


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
    """The gateway's LLMService, AdminService and health service on a loopback port of a
    server built here; yields the port."""
    gateway = Gateway(parse_config(CONFIG, "test config"))
    server = grpc.aio.server(interceptors=interceptors)
    # As the gateway registers it: the servicer's stream writes chunks it encoded itself.
    intake.add_to_server(gateway.servicer, server, gateway.decoder, fail, gateway.generations.call)
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(gateway), server)
    health_pb2_grpc.add_HealthServicer_to_server(gateway.health.servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    await gateway.health.start(0)
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
    #: A client certificate the same CA signed, for mutual TLS.
    client_chain: bytes
    client_key: bytes

    def write(self, directory: Path) -> dict[str, Path]:
        """The PEM files, as a user would have them: {"ca": ..., "cert": ..., "key": ...}."""
        paths = {"ca": directory / "ca.pem", "cert": directory / "client.pem", "key": directory / "client-key.pem"}
        paths["ca"].write_bytes(self.ca)
        paths["cert"].write_bytes(self.client_chain)
        paths["key"].write_bytes(self.client_key)
        return paths

    def server_credentials(self, *, require_client_cert: bool = False) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.server_key, self.server_chain)],
            root_certificates=self.ca if require_client_cert else None,
            require_client_auth=require_client_cert,
        )


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_certificates(host_names: list[str], *, ca_name: str = "portico test CA") -> Certificates:
    """A throwaway CA, a server certificate it signed for `host_names` (and 127.0.0.1),
    and a client certificate it signed for "CN=billing"."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(common: str, alt_names: list[x509.GeneralName] | None) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), _pem_key(key)

    server_sans: list[x509.GeneralName] = [x509.DNSName(h) for h in host_names]
    server_sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server_chain, server_key = issue(host_names[0], server_sans)
    client_chain, client_key = issue("billing", None)
    return Certificates(ca.public_bytes(serialization.Encoding.PEM), server_chain, server_key, client_chain, client_key)


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
    async with gateway_servicer(credentials=certs.server_credentials()) as port:
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


# -- the caller key ------------------------------------------------------------------------


def authorization(metadata: dict[str, str | bytes]) -> str | bytes | None:
    return metadata.get("authorization")


async def test_the_api_key_goes_as_a_bearer_token_on_every_call_in_plaintext() -> None:
    recorder = MetadataRecorder()
    async with gateway_servicer(interceptors=(recorder,)) as port:
        address = f"127.0.0.1:{port}"
        async with portico.AsyncClient(address, api_key=KEY, metadata={"x-team": "search"}) as client:
            await client.chat("hi", provider="fake")
            async with client.stream("hi", provider="fake") as stream:
                await stream.get_final_response()
            await client.embed("hi", provider="fake")
        with portico.Client(address, api_key=KEY) as sync_client:
            def calls() -> None:
                sync_client.count_tokens("hi", provider="fake")
                sync_client.capabilities(provider="fake")
                sync_client.providers()

            await asyncio.to_thread(calls)

    assert [method.rsplit("/", 1)[1] for method, _ in recorder.calls] == [
        "Chat", "StreamChat", "Embed", "CountTokens", "GetCapabilities", "ListProviders",
    ]
    assert [authorization(metadata) for _, metadata in recorder.calls] == [f"Bearer {KEY}"] * 6
    assert recorder.calls[0][1]["x-team"] == "search"


async def test_the_key_comes_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = MetadataRecorder()
    async with gateway_servicer(interceptors=(recorder,)) as port:
        address = f"127.0.0.1:{port}"
        monkeypatch.setenv("PORTICO_API_KEY", f"  {KEY}\n")  # as `export` of a file's content leaves it
        async with portico.AsyncClient(address) as from_env:
            await from_env.chat("hi", provider="fake")
        async with portico.AsyncClient(address, api_key="pk-given") as given:
            await given.chat("hi", provider="fake")
        async with portico.AsyncClient(address, metadata={"Authorization": "Bearer pk-metadata"}) as own:
            await own.chat("hi", provider="fake")
        monkeypatch.setenv("PORTICO_API_KEY", "")
        async with portico.AsyncClient(address) as empty_env:
            await empty_env.chat("hi", provider="fake")
        monkeypatch.delenv("PORTICO_API_KEY")
        async with portico.AsyncClient(address) as no_key:
            await no_key.chat("hi", provider="fake")

    assert [authorization(metadata) for _, metadata in recorder.calls] == [
        f"Bearer {KEY}", "Bearer pk-given", "Bearer pk-metadata", None, None,
    ]


def test_a_bad_key_or_tls_setting_is_refused_without_repeating_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        portico.Client(api_key=KEY, metadata={"Authorization": "Bearer other"})
    with pytest.raises(ValueError, match="printable ASCII") as control:
        portico.Client(api_key="pk-secret-value\r\nx-injected: 1")
    with pytest.raises(ValueError, match="empty"):
        portico.Client(api_key=" ")
    with pytest.raises(ValueError, match="cert_file and key_file"):
        portico.Client(cert_file=tmp_path / "client.pem")
    with pytest.raises(ValueError, match="not both"):
        portico.Client(tls=portico.TLS(), ca_file=tmp_path / "ca.pem")
    with pytest.raises(FileNotFoundError, match=r"absent\.pem"):
        portico.Client(ca_file=tmp_path / "absent.pem")

    assert "pk-secret-value" not in str(control.value)


# -- TLS from files, and mutual TLS ----------------------------------------------------------


async def test_mutual_tls_with_a_ca_file_and_a_client_certificate(tmp_path: Path) -> None:
    certs = make_certificates(["gateway.portico.test"])
    files = certs.write(tmp_path)
    (tmp_path / "stranger").mkdir()
    stranger = make_certificates(["elsewhere.test"], ca_name="another CA").write(tmp_path / "stranger")
    recorder = MetadataRecorder()
    credentials = certs.server_credentials(require_client_cert=True)
    async with gateway_servicer(interceptors=(recorder,), credentials=credentials) as port:
        address = f"127.0.0.1:{port}"  # the certificate names 127.0.0.1: no server name override needed
        async with portico.AsyncClient(
            address, ca_file=files["ca"], cert_file=files["cert"], key_file=files["key"], api_key=KEY
        ) as client:
            answer = await client.chat("over mutual TLS", provider="fake")
        with portico.Client(
            address, ca_file=str(files["ca"]), cert_file=str(files["cert"]), key_file=str(files["key"])
        ) as sync_client:
            sync_answer = await asyncio.to_thread(lambda: sync_client.chat("sync, mutual TLS", provider="fake"))
        # Without a client certificate, or with one from a CA the gateway does not trust,
        # the handshake fails: the call never reaches the service.
        async with portico.AsyncClient(address, ca_file=files["ca"], retry=None, timeout=5) as anonymous:
            with pytest.raises(portico.ConnectionFailedError):
                await anonymous.chat("no certificate", provider="fake")
        async with portico.AsyncClient(
            address, ca_file=files["ca"], cert_file=stranger["cert"], key_file=stranger["key"], retry=None, timeout=5
        ) as impostor:
            with pytest.raises(portico.ConnectionFailedError):
                await impostor.chat("wrong CA", provider="fake")

    assert (answer.content, sync_answer.content) == ("over mutual TLS", "sync, mutual TLS")
    assert [authorization(metadata) for _, metadata in recorder.calls] == [f"Bearer {KEY}", None]


# -- the CLI ------------------------------------------------------------------------------------


async def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PORTICO_")}
    environment.update(env or {})
    return await asyncio.to_thread(
        subprocess.run, [PORTICO_BIN, *args], capture_output=True, text=True, timeout=60, env=environment
    )


async def test_every_cli_command_connects_with_mutual_tls_and_the_key(tmp_path: Path) -> None:
    certs = make_certificates(["gateway.portico.test"])
    files = certs.write(tmp_path)
    recorder = MetadataRecorder()
    credentials = certs.server_credentials(require_client_cert=True)
    async with gateway_servicer(interceptors=(recorder,), credentials=credentials) as port:
        address = f"127.0.0.1:{port}"
        tls = ["--address", address, "--ca-file", str(files["ca"]),
               "--cert-file", str(files["cert"]), "--key-file", str(files["key"])]
        in_env = {"PORTICO_API_KEY": KEY}
        chat = await run_cli("chat", "hello over TLS", "--provider", "fake", *tls, "--api-key", KEY)
        embed = await run_cli("embed", "a text", "--provider", "fake", "--dimensions", "4", *tls, env=in_env)
        providers = await run_cli("providers", "--json", *tls, env=in_env)
        health = await run_cli("health", *tls, env=in_env)
        breakers = await run_cli("admin", "breakers", *tls, env=in_env)
        calls = list(recorder.calls)
        # Plaintext to the TLS port, and TLS checked against the system's roots (which do not
        # know the test CA), both fail with one line naming the address.
        plaintext = await run_cli("providers", "--address", address, "--timeout", "5")
        system_roots = await run_cli("providers", "--address", address, "--tls", "--timeout", "5")
        missing = await run_cli("providers", "--address", address, "--ca-file", str(tmp_path / "absent.pem"))

    assert (chat.returncode, chat.stdout, chat.stderr) == (0, "hello over TLS\n", "")
    assert embed.returncode == 0 and len(embed.stdout.splitlines()) == 1
    assert providers.returncode == 0 and [p["name"] for p in json.loads(providers.stdout)] == ["fake"]
    assert (health.returncode, health.stdout) == (0, "SERVING\n")
    assert breakers.returncode == 0 and breakers.stdout.startswith("BREAKER")
    assert [method.rsplit("/", 1)[1] for method, _ in calls] == [
        "StreamChat", "Embed", "ListProviders", "Check", "ListBreakers",
    ]
    assert [authorization(metadata) for _, metadata in calls] == [f"Bearer {KEY}"] * 5
    for failed in (plaintext, system_roots):
        assert failed.returncode == 1
        assert failed.stderr.startswith(f"portico: error: cannot reach the gateway at {address}: ")
        assert failed.stderr.count("\n") == 1
    assert missing.returncode == 2
    assert missing.stderr.startswith("portico: error: cannot read ") and "absent.pem" in missing.stderr
    for result in (chat, embed, providers, health, breakers, plaintext, system_roots, missing):
        assert KEY not in result.stderr
