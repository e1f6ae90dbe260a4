"""TLS and mutual TLS on the gateway's port, over real handshakes with throwaway
certificates: calls, refusals at the handshake, the client's verified subject,
certificates rotated in place while the gateway runs, and clear start-up errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from harness import PORTICO_BIN, spawned_gateway
from portico.v1 import llm_service_pb2 as pb
from portico.v1 import llm_service_pb2_grpc
from portico.v1 import types_pb2 as t
from portico_server.app import Gateway
from portico_server.config import ConfigError, StartupError, TlsSettings, parse_config
from portico_server.tls import ServerCertificates, peer_subject
from tls_certs import Authority, Issued

PROVIDERS = [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "default_model": "fake-chat"}]
#: The first bytes a gRPC server sends on a connection it accepted: an HTTP/2 SETTINGS
#: frame (a 3-byte length, then type 4).
SETTINGS_FRAME_TYPE = 4


class SecretVolume:
    """A directory laid out as Kubernetes mounts a Secret: each file a symlink through
    `..data`, which points at a timestamped directory; an update writes a new directory
    and swaps `..data` in one rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self._versions = 0

    def publish(self, files: dict[str, bytes]) -> None:
        self._versions += 1
        version = self.root / f"..2026_12_01_00_00_0{self._versions}"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_bytes(content)
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(Path("..data") / name)
        previous = (self.root / "..data").resolve() if (self.root / "..data").exists() else None
        (self.root / "..data_tmp").symlink_to(version.name)
        os.replace(self.root / "..data_tmp", self.root / "..data")
        if previous is not None:
            shutil.rmtree(previous)


def secret_files(server: Issued, ca: Authority | None = None) -> dict[str, bytes]:
    files = {"tls.crt": server.chain, "tls.key": server.key}
    if ca is not None:
        files["ca.crt"] = ca.pem
    return files


def tls_section(directory: Path, *, mutual: bool = False) -> dict[str, Any]:
    section: dict[str, Any] = {"cert_file": str(directory / "tls.crt"), "key_file": str(directory / "tls.key")}
    if mutual:
        section |= {"client_ca_file": str(directory / "ca.crt"), "require_client_cert": True}
    return section


@contextlib.asynccontextmanager
async def tls_gateway(tls: dict[str, Any]) -> AsyncIterator[Gateway]:
    config = parse_config({
        "server": {"address": "127.0.0.1:0", "health_probe_interval": 0, "tls": tls},
        "providers": PROVIDERS,
    }, "test config")
    gateway = Gateway(config)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop(grace=0)


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def tls_channel(address: str, ca: Authority, client: Issued | None = None) -> grpc.aio.Channel:
    """A channel on a connection of its own, verifying the server against `ca` by the
    name `localhost`, presenting `client`'s certificate when given."""
    credentials = grpc.ssl_channel_credentials(
        ca.pem, client.key if client else None, client.chain if client else None)
    return grpc.aio.secure_channel(
        f"localhost:{port_of(address)}", credentials, options=[("grpc.use_local_subchannel_pool", 1)])


async def chat(channel: grpc.aio.Channel, text: str) -> str:
    request = pb.ChatRequest(provider="fake", messages=[t.Message(role=t.ROLE_USER, content=text)])
    reply = await llm_service_pb2_grpc.LLMServiceStub(channel).Chat(request, timeout=10)
    return str(reply.content)


def client_context(ca: Authority, client: Issued | None, tmp_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.pem.decode())
    context.set_alpn_protocols(["h2"])
    if client is not None:
        cert, key = client.write(tmp_path / f"client-{client.serial:x}")
        context.load_cert_chain(cert, key)
    return context


async def served_certificate(
    address: str, ca: Authority, tmp_path: Path, client: Issued | None = None
) -> x509.Certificate:
    """The certificate the server presents on a new connection (verified against `ca`)."""
    context = client_context(ca, client, tmp_path)
    _, writer = await asyncio.open_connection("127.0.0.1", port_of(address), ssl=context, server_hostname="localhost")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        # Without waiting for the peer's close_notify, which gRPC never sends.
        writer.transport.abort()
    return x509.load_der_x509_certificate(der)


async def handshake_then_http2(address: str, ca: Authority, tmp_path: Path, client: Issued | None) -> None:
    """A TLS 1.2 handshake (where the server checks the client's certificate before the
    handshake completes, so a refusal fails the handshake itself), then the server's
    first HTTP/2 frame. Raises OSError (ssl.SSLError, ConnectionResetError) when refused."""
    context = client_context(ca, client, tmp_path)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port_of(address), ssl=context, server_hostname="localhost")
    try:
        header = await asyncio.wait_for(reader.readexactly(9), 10)
        assert header[3] == SETTINGS_FRAME_TYPE
    finally:
        # Without waiting for the peer's close_notify, which gRPC never sends.
        writer.transport.abort()


async def test_a_call_over_tls_and_plaintext_is_refused(tmp_path: Path) -> None:
    ca = Authority()
    ca.server().write(tmp_path)
    async with tls_gateway(tls_section(tmp_path)) as gateway:
        async with tls_channel(gateway.address, ca) as channel:
            assert await chat(channel, "over TLS") == "over TLS"
        async with grpc.aio.insecure_channel(gateway.address) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as plaintext:
                await chat(channel, "in clear")
        # A client that trusts another authority refuses the gateway's certificate.
        async with tls_channel(gateway.address, Authority("Another CA")) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as untrusted:
                await chat(channel, "to a stranger")
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    assert untrusted.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_lets_in_only_clients_of_the_configured_authority(tmp_path: Path) -> None:
    ca, stranger = Authority(), Authority("Another CA")
    ca.server().write(tmp_path)
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    billing = ca.client("billing", "Acme")
    impostor = stranger.client("billing", "Acme")  # the same subject, from the wrong authority
    async with tls_gateway(tls_section(tmp_path, mutual=True)) as gateway:
        async with tls_channel(gateway.address, ca, billing) as channel:
            assert await chat(channel, "with a certificate") == "with a certificate"
        await handshake_then_http2(gateway.address, ca, tmp_path, billing)
        for client in (impostor, None):
            with pytest.raises(OSError):
                await handshake_then_http2(gateway.address, ca, tmp_path, client)
            async with tls_channel(gateway.address, ca, client) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await chat(channel, "let me in")
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


@contextlib.asynccontextmanager
async def whoami_server(settings: TlsSettings | None) -> AsyncIterator[tuple[str, list[str | None]]]:
    """A server on the gateway's TLS credentials with one method that answers what
    `peer_subject` says; yields its address and the subjects of the calls it ran."""
    seen: list[str | None] = []

    async def whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append(peer_subject(context))
        return (seen[-1] or "").encode()

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(whoami)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Whoami", {"Get": handler})])
    if settings is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", ServerCertificates(settings).credentials())
    await server.start()
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        await server.stop(0)


async def test_peer_subject_is_the_verified_client_certificates_subject(tmp_path: Path) -> None:
    ca, stranger = Authority(), Authority("Another CA")
    cert, key = ca.server().write(tmp_path)
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    mutual = TlsSettings(
        cert_file=str(cert), key_file=str(key), client_ca_file=str(tmp_path / "ca.crt"), require_client_cert=True)
    async with whoami_server(mutual) as (address, seen):
        async with tls_channel(address, ca, ca.client("billing", "Acme")) as channel:
            subject = await channel.unary_unary("/test.Whoami/Get")(b"", timeout=10)
        for client in (stranger.client("billing", "Acme"), None):
            async with tls_channel(address, ca, client) as channel:
                with pytest.raises(grpc.aio.AioRpcError):
                    await channel.unary_unary("/test.Whoami/Get")(b"", timeout=10)
    # Refused at the handshake: the method never ran for either.
    assert seen == ["CN=billing,O=Acme"]
    assert subject == b"CN=billing,O=Acme"

    # No subject over plaintext, or over TLS that asks for no client certificate.
    async with whoami_server(None) as (address, seen), grpc.aio.insecure_channel(address) as channel:
        await channel.unary_unary("/test.Whoami/Get")(b"", timeout=10)
    server_only = TlsSettings(cert_file=str(cert), key_file=str(key))
    async with whoami_server(server_only) as (address, seen_tls), tls_channel(
        address, ca, ca.client("billing", "Acme")
    ) as channel:
        await channel.unary_unary("/test.Whoami/Get")(b"", timeout=10)
    assert seen == [None]
    assert seen_tls == [None]


async def rotate_in_place(directory: Path, server: Issued) -> None:
    # The key first: a handshake between the two writes sees a mismatch and keeps the
    # old pair (tested below); either order ends served.
    (directory / "tls.key").write_bytes(server.key)
    (directory / "tls.crt").write_bytes(server.chain)


@pytest.mark.parametrize("layout", ["rewritten in place", "kubernetes secret volume"])
async def test_a_rotated_certificate_is_served_without_a_restart(tmp_path: Path, layout: str) -> None:
    ca = Authority()
    first, second = ca.server(), ca.server()
    directory = tmp_path / "tls"
    volume = SecretVolume(directory)
    if layout == "rewritten in place":
        first.write(directory)
    else:
        volume.publish(secret_files(first))
    async with tls_gateway(tls_section(directory)) as gateway:
        assert (await served_certificate(gateway.address, ca, tmp_path)).serial_number == first.serial
        before = tls_channel(gateway.address, ca)
        assert await chat(before, "before") == "before"

        if layout == "rewritten in place":
            await rotate_in_place(directory, second)
        else:
            volume.publish(secret_files(second))

        assert (await served_certificate(gateway.address, ca, tmp_path)).serial_number == second.serial
        async with tls_channel(gateway.address, ca) as after:
            assert await chat(after, "after") == "after"
        # A connection made before the rotation carries on.
        assert await chat(before, "still here") == "still here"
        await before.close()
        assert gateway.certificates is not None
        assert gateway.certificates.reloads == 1


async def test_a_rewrite_that_leaves_size_and_time_as_they_were_is_noticed(tmp_path: Path) -> None:
    """File times move in steps of milliseconds, so a certificate rewritten within one
    step by one of the same size looks untouched to stat(). Files changed that recently
    are read again at each handshake; here the time is pinned to stand for that step."""
    ca = Authority()
    first = ca.server()
    second = next(s for s in (ca.server() for _ in range(200)) if len(s.chain) == len(first.chain))
    step = time.time_ns() + 60_000_000_000  # "now", for a minute
    cert, key = first.write(tmp_path)
    for path in (cert, key):
        os.utime(path, ns=(step, step))
    async with tls_gateway(tls_section(tmp_path)) as gateway:
        identity = [(p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in (cert, key)]
        second.write(tmp_path)
        for path in (cert, key):
            os.utime(path, ns=(step, step))
        assert [(p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in (cert, key)] == identity
        assert (await served_certificate(gateway.address, ca, tmp_path)).serial_number == second.serial


async def test_a_half_written_rotation_keeps_the_served_certificate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = Authority()
    first, second = ca.server(), ca.server()
    first.write(tmp_path)
    async with tls_gateway(tls_section(tmp_path)) as gateway:
        # The new certificate has arrived, its key not yet.
        (tmp_path / "tls.crt").write_bytes(second.chain)
        with caplog.at_level(logging.WARNING, "portico.tls"):
            assert (await served_certificate(gateway.address, ca, tmp_path)).serial_number == first.serial
            async with tls_channel(gateway.address, ca) as channel:
                assert await chat(channel, "meanwhile") == "meanwhile"
        (warning,) = [r.getMessage() for r in caplog.records if r.name == "portico.tls"]
        assert "the current certificate stays" in warning
        assert "does not belong to the certificate" in warning

        (tmp_path / "tls.key").write_bytes(second.key)
        assert (await served_certificate(gateway.address, ca, tmp_path)).serial_number == second.serial


async def test_a_rotated_client_authority_is_used_for_new_connections(tmp_path: Path) -> None:
    old_ca, new_ca = Authority("Old CA"), Authority("New CA")
    volume = SecretVolume(tmp_path / "tls")
    server = old_ca.server()
    volume.publish(secret_files(server, old_ca))
    async with tls_gateway(tls_section(volume.root, mutual=True)) as gateway:
        async with tls_channel(gateway.address, old_ca, old_ca.client("billing", "Acme")) as channel:
            assert await chat(channel, "old") == "old"
        volume.publish(secret_files(server, new_ca))
        async with tls_channel(gateway.address, old_ca, new_ca.client("billing", "Acme")) as channel:
            assert await chat(channel, "new") == "new"
        with pytest.raises(OSError):
            await handshake_then_http2(gateway.address, old_ca, tmp_path, old_ca.client("billing", "Acme"))


def encrypted(issued: Issued) -> bytes:
    key = serialization.load_pem_private_key(issued.key, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"))


@pytest.mark.parametrize(("case", "expected"), [
    ("missing certificate", "server.tls.cert_file: cannot read {dir}/tls.crt: No such file or directory"),
    ("certificate is a directory", "server.tls.cert_file: cannot read {dir}/tls.crt: Is a directory"),
    ("certificate is not PEM", "server.tls.cert_file: {dir}/tls.crt holds no PEM certificate"),
    ("missing key", "server.tls.key_file: cannot read {dir}/tls.key: No such file or directory"),
    ("key is not PEM", "server.tls.key_file: {dir}/tls.key holds no PEM private key"),
    ("key is encrypted", "server.tls.key_file: the private key in {dir}/tls.key is encrypted"),
    ("key of another certificate", "server.tls.key_file: the private key in {dir}/tls.key does not belong to "
                                   "the certificate in {dir}/tls.crt"),
    ("missing client CA", "server.tls.client_ca_file: cannot read {dir}/ca.crt: No such file or directory"),
])
async def test_files_that_cannot_be_served_stop_start_up(tmp_path: Path, case: str, expected: str) -> None:
    ca = Authority()
    server = ca.server()
    server.write(tmp_path)
    (tmp_path / "ca.crt").write_bytes(ca.pem)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    match case:
        case "missing certificate":
            cert.unlink()
        case "certificate is a directory":
            cert.unlink()
            cert.mkdir()
        case "certificate is not PEM":
            cert.write_bytes(server.certificate.public_bytes(serialization.Encoding.DER))
        case "missing key":
            key.unlink()
        case "key is not PEM":
            key.write_text("tls.key\n")
        case "key is encrypted":
            key.write_bytes(encrypted(server))
        case "key of another certificate":
            key.write_bytes(ca.server().key)
        case "missing client CA":
            (tmp_path / "ca.crt").unlink()
    gateway = Gateway(parse_config({
        "server": {"address": "127.0.0.1:0", "tls": tls_section(tmp_path, mutual=True)},
        "providers": PROVIDERS,
    }))
    with pytest.raises(StartupError) as refused:
        await gateway.start()
    await gateway.stop(grace=0)
    assert str(refused.value) == "TLS: " + expected.format(dir=tmp_path) + (
        "; give the key without a passphrase" if case == "key is encrypted" else
        " (the first certificate there must be the server's)" if case == "key of another certificate" else "")
    assert gateway.server is None
    assert "PRIVATE KEY" not in str(refused.value)


async def test_the_start_up_log_names_the_served_certificate_and_an_expired_one_is_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = Authority()
    current, expired = ca.server(), ca.server(expired=True)
    current.write(tmp_path / "current")
    expired.write(tmp_path / "expired")
    with caplog.at_level(logging.INFO):
        async with tls_gateway(tls_section(tmp_path / "current")):
            pass
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("TLS on")]
    assert line.startswith(f"TLS on: serving CN=localhost (serial {current.serial:x}, valid until ")
    assert line.endswith(f"from {tmp_path}/current/tls.crt; no client certificates asked for; "
                         "reloaded when the files change")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    caplog.clear()
    async with tls_gateway(tls_section(tmp_path / "expired")) as gateway:
        # Served all the same (refusing to start would not bring a valid one sooner),
        # and clients refuse it.
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
            await served_certificate(gateway.address, ca, tmp_path)
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.startswith("TLS: the served certificate has expired; clients will refuse it: CN=localhost")


@pytest.mark.parametrize(("tls", "expected"), [
    ({"require_client_cert": True}, "server.tls: Value error, require_client_cert needs client_ca_file"),
    ({"client_ca_file": "ca.crt"}, "server.tls: Value error, client_ca_file is only used with require_client_cert"),
    ({"cert_file": ""}, "server.tls.cert_file: String should have at least 1 character"),
    ({"certificate": "tls.crt"}, "server.tls.certificate: Extra inputs are not permitted"),
])
def test_a_tls_section_that_cannot_work_is_a_configuration_error(tls: dict[str, Any], expected: str) -> None:
    section = {"cert_file": "tls.crt", "key_file": "tls.key", **tls}
    with pytest.raises(ConfigError) as refused:
        parse_config({"server": {"tls": section}}, "portico.yaml")
    assert str(refused.value).startswith(f"portico.yaml: {expected}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_portico_serve_says_in_one_line_why_tls_cannot_start(tmp_path: Path, workers: str) -> None:
    ca = Authority()
    ca.server().write(tmp_path)
    (tmp_path / "tls.key").write_bytes(ca.server().key)
    config = tmp_path / "portico.yaml"
    config.write_text(
        f"server: {{tls: {{cert_file: {tmp_path}/tls.crt, key_file: {tmp_path}/tls.key}}}}\n"
        "providers: [{name: fake, kind: fake}]\n")
    done = subprocess.run(
        [PORTICO_BIN, "serve", "--config", str(config), "--address", "127.0.0.1:0", "--workers", workers],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (f"portico: TLS: server.tls.key_file: the private key in {tmp_path}/tls.key does not "
                           f"belong to the certificate in {tmp_path}/tls.crt (the first certificate there must be "
                           "the server's)\n")


def worker_of(channel: grpc.Channel, count: int) -> int:
    """The worker a channel's connection landed on: the one whose `portico.worker.<n>`
    health entry it finds."""
    health = health_pb2_grpc.HealthStub(channel)
    serving = []
    for index in range(1, count + 1):
        try:
            health.Check(health_pb2.HealthCheckRequest(service=f"portico.worker.{index}"), timeout=10)
            serving.append(index)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND
    (worker,) = serving
    return worker


def test_workers_serve_mutual_tls_and_each_follows_a_rotation(tmp_path: Path) -> None:
    client_ca, old_ca, new_ca = Authority("Client CA"), Authority("Old CA"), Authority("New CA")
    volume = SecretVolume(tmp_path / "tls")
    volume.publish(secret_files(old_ca.server(), client_ca))
    billing = client_ca.client("billing", "Acme")
    config = (f"server: {{workers: 2, tls: {{cert_file: {volume.root}/tls.crt, key_file: {volume.root}/tls.key, "
              f"client_ca_file: {volume.root}/ca.crt, require_client_cert: true}}}}\n"
              "providers: [{name: fake, kind: fake, models: [fake-chat]}]\n")
    request = pb.ChatRequest(model="fake-chat", messages=[t.Message(role=t.ROLE_USER, content="hi")])

    def workers_reached(address: str, trusted: Authority) -> set[int]:
        """Calls on new connections, each verifying the server against `trusted` only,
        until both workers answered (the kernel spreads connections at random)."""
        credentials = grpc.ssl_channel_credentials(trusted.pem, billing.key, billing.chain)
        reached: set[int] = set()
        for _ in range(40):
            with grpc.secure_channel(f"localhost:{port_of(address)}", credentials,
                                     options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                assert llm_service_pb2_grpc.LLMServiceStub(channel).Chat(request, timeout=10).content == "hi"
                reached.add(worker_of(channel, 2))
            if len(reached) == 2:
                break
        return reached

    with spawned_gateway(config, tmp_path) as (_, address):
        assert workers_reached(address, old_ca) == {1, 2}
        # A certificate from another authority: a call that verifies against it alone
        # proves the worker that answered serves the new certificate.
        volume.publish(secret_files(new_ca.server(), client_ca))
        assert workers_reached(address, new_ca) == {1, 2}
