"""What the Vertex tests share: a throwaway service-account key, and a loopback OAuth
token endpoint that checks the signed JWT assertion google-auth sends, as Google's does."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from portico_server.config import ProviderSettings
from upstream import Received, Reply, Upstream

PROJECT = "portico-test"
LOCATION = "us-east5"
TOKEN_PATH = "/token"
JSON = {"content-type": "application/json; charset=UTF-8"}
SSE = {"content-type": "text/event-stream"}
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def model_path(publisher: str, model: str, method: str) -> str:
    return f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/{publisher}/models/{model}:{method}"


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class ServiceAccount:
    """A freshly generated RSA key in a service-account key file."""

    path: Path
    token_uri: str
    key: rsa.RSAPrivateKey
    email: str = "portico-test@portico-test.iam.gserviceaccount.com"
    private_key_pem: str = ""

    @classmethod
    def create(cls, directory: Path, token_uri: str) -> ServiceAccount:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        account = cls(directory / "service-account.json", token_uri, key, private_key_pem=pem)
        account.path.write_text(json.dumps({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "0123456789abcdef",
            "private_key": pem,
            "client_email": account.email,
            "client_id": "1234567890",
            "token_uri": token_uri,
        }))
        return account

    def verify(self, assertion: str) -> dict[str, Any]:
        """The claims of a JWT assertion, after checking it is RS256-signed with this key
        (cryptography raises InvalidSignature otherwise)."""
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header = json.loads(_b64url(header_b64))
        assert header["alg"] == "RS256" and header["kid"] == "0123456789abcdef"
        self.key.public_key().verify(_b64url(signature_b64), f"{header_b64}.{claims_b64}".encode(),
                                     padding.PKCS1v15(), hashes.SHA256())
        claims: dict[str, Any] = json.loads(_b64url(claims_b64))
        return claims


@dataclass
class TokenEndpoint:
    """Answers token requests with `ya29.test-<n>` tokens living `expires_in` seconds.
    While `hold` is set, it waits for `release` before answering."""

    account: ServiceAccount | None = None
    expires_in: int = 3600
    claims: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    hold: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    refuse: bool = False

    def issued(self) -> list[str]:
        return [f"ya29.test-{n + 1}" for n in range(len(self.requests))]

    async def __call__(self, received: Received) -> Reply:
        self.requests.append(received)
        if self.hold:
            await self.release.wait()
        form = dict(parse_qsl(received.body.decode()))
        if self.refuse:
            error = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            return Reply(400, JSON, json.dumps(error).encode())
        if self.account is not None:
            assert form["grant_type"] == JWT_BEARER
            self.claims.append(self.account.verify(form["assertion"]))
        token = f"ya29.test-{len(self.requests)}"
        body = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        return Reply(200, JSON, json.dumps(body).encode())


def vertex_settings(up: Upstream, account: ServiceAccount, **options: Any) -> ProviderSettings:
    return ProviderSettings(name="vertex", kind="vertex", base_url=up.url, models=["gemini-2.5-flash"],
                            options={"project": PROJECT, "location": LOCATION,
                                     "credentials_file": str(account.path), **options})


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
