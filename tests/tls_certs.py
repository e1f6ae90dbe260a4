"""Throwaway certificate authorities and the certificates they sign, for TLS tests.

Made fresh by each test with `cryptography` (EC P-256, valid for an hour), written as PEM
files the way cert-manager writes a Secret: `tls.crt`, `tls.key`, `ca.crt`.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM."""

    certificate: x509.Certificate
    chain: bytes
    key: bytes

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    def write(self, directory: Path, cert_name: str = "tls.crt", key_name: str = "tls.key") -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / cert_name).write_bytes(self.chain)
        (directory / key_name).write_bytes(self.key)
        return directory / cert_name, directory / key_name


class Authority:
    """A self-signed CA that issues server and client certificates."""

    def __init__(self, name: str = "Portico Test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            self._builder(subject, self._key.public_key())
            .issuer_name(subject)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self.certificate.public_bytes(PEM)

    def _builder(
        self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, expired: bool = False
    ) -> x509.CertificateBuilder:
        # An expired certificate: valid for a minute, two hours ago.
        start = self._now - (datetime.timedelta(hours=2) if expired else datetime.timedelta(minutes=5))
        end = start + datetime.timedelta(minutes=1) if expired else self._now + datetime.timedelta(hours=1)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
        )

    def _issue(
        self, subject: x509.Name, usage: x509.ObjectIdentifier, names: list[x509.GeneralName], expired: bool = False
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            self._builder(subject, key.public_key(), expired)
            .issuer_name(self.certificate.subject)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        key_pem = key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return Issued(certificate, certificate.public_bytes(PEM), key_pem)

    def server(self, host: str = "localhost", expired: bool = False) -> Issued:
        """A server certificate for `host` and 127.0.0.1."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        names: list[x509.GeneralName] = [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        return self._issue(subject, ExtendedKeyUsageOID.SERVER_AUTH, names, expired)

    def client(self, common_name: str, organization: str) -> Issued:
        """A client certificate whose subject reads `CN=<common_name>,O=<organization>`
        (RFC 4514 lists the attributes last first)."""
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ])
        return self._issue(subject, ExtendedKeyUsageOID.CLIENT_AUTH, [])
