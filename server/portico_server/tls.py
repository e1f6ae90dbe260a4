"""TLS and mutual TLS on the gRPC port, with certificates that follow their files.

The server is given `grpc.dynamic_ssl_server_credentials`: gRPC asks `ServerCertificates`
for its certificate configuration at every new handshake (from one of its own threads,
also under grpc.aio), and `ServerCertificates` answers "unchanged" unless a file's
identity (inode, size, modification time) changed since the last look, or changed so
recently that a second write could hide behind the same identity. That covers both ways
certificates are rotated in place: a file rewritten and a Kubernetes secret volume's
symlink swap (the path then resolves to another inode). A change is read, checked (the
key belongs to the certificate) and only then served; files caught half written keep the
previous certificate until they change again. Connections already open keep the
certificate they were made with, as TLS has it.

With `require_client_cert`, a client without a certificate from `client_ca_file` is
refused during the handshake, before any call reaches the gateway; `peer_subject` then
gives the verified certificate's subject for the caller's identity.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .auth import certificate_subject
from .config import StartupError, TlsSettings

log = logging.getLogger("portico.tls")

#: What identifies a file's current content without reading it: the inode a path
#: resolves to (a symlink swap changes it), its size and modification time (a rewrite
#: changes them); None while the path does not resolve.
_FileIdentity = tuple[int, int, int, int] | None
#: How long after a file's modification its identity is not trusted to show a change.
_RACY_NS = 2_000_000_000


class CertificateError(Exception):
    """A certificate, key or CA file that cannot be served; the message names the setting."""


class _HasAuthContext(Protocol):
    def auth_context(self) -> Mapping[str, Iterable[bytes]]: ...


def peer_subject(context: _HasAuthContext) -> str | None:
    """The subject of the client certificate the handshake verified, as an RFC 4514
    string (`CN=billing,O=Acme`, what `openssl x509 -noout -subject -nameopt RFC2253`
    prints); None over plaintext or when the server asks for no client certificate
    (it asks only when it requires and verifies one)."""
    auth = context.auth_context()
    if list(auth.get("transport_security_type", ())) != [b"ssl"]:
        return None
    return certificate_subject(auth)


@dataclass(frozen=True)
class _Material:
    """One consistent reading of the configured files."""

    chain: bytes
    key: bytes
    client_ca: bytes | None
    #: Subject, serial and expiry of the served certificate, for the log.
    summary: str
    not_before: datetime.datetime
    not_after: datetime.datetime

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(self.key, self.chain)], root_certificates=self.client_ca)


class ServerCertificates:
    """The certificate configuration of one server, reloaded when its files change."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        identities = self._identities()
        try:
            self._material = _read(settings)
        except CertificateError as exc:
            raise StartupError(f"TLS: {exc}") from None
        self._seen = identities
        self._racy = _recently_modified(identities)
        #: The last reason a change could not be served, so that it is logged once.
        self._refused: str | None = None
        #: Times changed files were read and served.
        self.reloads = 0
        _warn_if_expired(self._material)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._material.configuration(),
            self._fetch,
            require_client_authentication=self.settings.require_client_cert,
        )

    def describe(self) -> str:
        """One line for the start-up log."""
        clients = (
            f"client certificates required, verified against {self.settings.client_ca_file}"
            if self.settings.require_client_cert
            else "no client certificates asked for"
        )
        return f"TLS on: serving {self._material.summary}; {clients}; reloaded when the files change"

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's certificate-configuration fetcher: None keeps the current configuration."""
        # Called at every handshake, so the common case is a few stat calls and no read.
        identities = self._identities()
        with self._lock:
            if identities == self._seen and not self._racy:
                return None
            try:
                material = _read(self.settings)
            except Exception as exc:  # gRPC would only log it, far from its cause
                # A rotation caught half way (a new certificate, its key not yet written)
                # looks like this too: the files are read again when they change.
                self._remember(identities)
                reason = str(exc) if isinstance(exc, CertificateError) else f"{type(exc).__name__}: {exc}"
                if reason != self._refused:
                    self._refused = reason
                    log.warning("TLS files changed but cannot be served; the current certificate stays: %s", reason)
                return None
            self._remember(identities)
            self._refused = None
            if material == self._material:
                return None
            self._material = material
            self.reloads += 1
        log.warning("TLS certificate reloaded: now serving %s", material.summary)
        _warn_if_expired(material)
        return material.configuration()

    def _remember(self, identities: tuple[_FileIdentity, ...]) -> None:
        self._seen = identities
        self._racy = _recently_modified(identities)

    def _identities(self) -> tuple[_FileIdentity, ...]:
        paths = [self.settings.cert_file, self.settings.key_file]
        if self.settings.client_ca_file is not None:
            paths.append(self.settings.client_ca_file)
        return tuple(_identity(path) for path in paths)


def _identity(path: str) -> _FileIdentity:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _recently_modified(identities: tuple[_FileIdentity, ...]) -> bool:
    """Whether a file changed so recently that a second write could leave its identity
    as it is: file times tick in steps of a few milliseconds, and a certificate and its
    successor are often the same size. Until then every handshake reads the files again
    (and serves them only if their content differs)."""
    horizon = time.time_ns() - _RACY_NS
    return any(identity is None or identity[3] > horizon for identity in identities)


def _read(settings: TlsSettings) -> _Material:
    """Read and check the files; the bytes checked are the bytes served."""
    chain_pem = _read_file("server.tls.cert_file", settings.cert_file)
    key_pem = _read_file("server.tls.key_file", settings.key_file)
    chain = _certificates("server.tls.cert_file", settings.cert_file, chain_pem)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertificateError(
            f"server.tls.key_file: the private key in {settings.key_file} is encrypted; "
            "give the key without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"server.tls.key_file: {settings.key_file} holds no PEM private key") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise CertificateError(
            f"server.tls.key_file: the private key in {settings.key_file} does not belong to "
            f"the certificate in {settings.cert_file} (the first certificate there must be the server's)")
    client_ca = None
    if settings.client_ca_file is not None:
        client_ca = _read_file("server.tls.client_ca_file", settings.client_ca_file)
        _certificates("server.tls.client_ca_file", settings.client_ca_file, client_ca)
    served = chain[0]
    summary = (f"{served.subject.rfc4514_string() or '(empty subject)'} (serial {served.serial_number:x}, "
               f"valid until {served.not_valid_after_utc:%Y-%m-%d %H:%M} UTC) from {settings.cert_file}")
    return _Material(chain_pem, key_pem, client_ca, summary, served.not_valid_before_utc, served.not_valid_after_utc)


def _read_file(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from None


def _certificates(setting: str, path: str, pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise CertificateError(f"{setting}: {path} holds no PEM certificate") from None


def _warn_if_expired(material: _Material) -> None:
    now = datetime.datetime.now(datetime.UTC)
    if material.not_after < now:
        log.error("TLS: the served certificate has expired; clients will refuse it: %s", material.summary)
    elif material.not_before > now:
        log.error("TLS: the served certificate is not valid yet; clients will refuse it: %s", material.summary)
