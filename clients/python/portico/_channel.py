"""Channel settings, set once: TLS, keepalive, message sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ._version import __version__

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TLS:
    """TLS settings. `TLS()` verifies the gateway against the system's root certificates.

    All certificates and keys are PEM bytes; `TLS.from_files` reads them from paths.
    """

    #: Certificates to verify the gateway with; None: the system's roots.
    root_certificates: bytes | None = None
    #: Client certificate and key, for gateways that require mutual TLS.
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    #: The name to check the gateway's certificate against, when not the address's host.
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        root_certificates: str | Path | None = None,
        certificate_chain: str | Path | None = None,
        private_key: str | Path | None = None,
        *,
        server_name: str | None = None,
    ) -> TLS:
        def read(path: str | Path | None) -> bytes | None:
            return None if path is None else Path(path).read_bytes()

        return cls(read(root_certificates), read(certificate_chain), read(private_key), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("TLS: give both certificate_chain and private_key, or neither")
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    address: str
    tls: TLS | None
    max_message_bytes: int
    keepalive_time: float | None

    def __post_init__(self) -> None:
        if self.max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be positive")

    def options(self) -> list[tuple[str, Any]]:
        options: list[tuple[str, Any]] = [
            ("grpc.primary_user_agent", f"portico-python/{__version__}"),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
        ]
        if self.keepalive_time is not None:
            options += [
                ("grpc.keepalive_time_ms", int(self.keepalive_time * 1000)),
                ("grpc.keepalive_timeout_ms", 20_000),
                # Only ping while calls are open: an idle channel needs no keepalive,
                # and servers punish pings they did not allow.
                ("grpc.keepalive_permit_without_calls", 0),
            ]
        if self.tls is not None and self.tls.server_name:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return options

    def sync_channel(self) -> grpc.Channel:
        if self.tls is None:
            return grpc.insecure_channel(self.address, options=self.options())
        return grpc.secure_channel(self.address, self.tls.credentials(), options=self.options())

    def aio_channel(self) -> grpc.aio.Channel:
        if self.tls is None:
            return grpc.aio.insecure_channel(self.address, options=self.options())
        return grpc.aio.secure_channel(self.address, self.tls.credentials(), options=self.options())
