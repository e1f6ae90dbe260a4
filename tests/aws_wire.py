"""AWS wire helpers for tests, written from AWS's specifications and independent of
botocore (which the gateway uses): a SigV4 verifier for the loopback upstream, and an
encoder of `application/vnd.amazon.eventstream` frames for exceptions no recording has.

The verifier is checked against AWS's published SigV4 test suite (tests/fixtures/bedrock/
sigv4), so a request it accepts is one AWS would accept.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass
class Signed:
    """What a request's SigV4 signature covers, recomputed from the request."""

    canonical_request: str
    string_to_sign: str
    authorization: str


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _canonical_path(path: str) -> str:
    # Each segment is URI-encoded once more (every service but S3), after removing `.`
    # segments and empty ones between slashes.
    segments = [s for s in path.split("/") if s not in ("", ".")]
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        else:
            kept.append(segment)
    out = "/" + "/".join(quote(s, safe="-_.~") for s in kept)
    if path.endswith("/") and kept:
        out += "/"
    return out


def _canonical_query(query: str) -> str:
    pairs = []
    for item in query.split("&") if query else []:
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def signature_of(
    *, method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes, signed_headers: list[str],
    access_key: str, secret_key: str, region: str, service: str, amz_date: str,
) -> Signed:
    """The SigV4 signature of a request as the receiving service computes it."""
    lowered = {k.lower(): v for k, v in headers.items()}
    canonical_headers = "".join(f"{name}:{' '.join(lowered[name].split())}\n" for name in signed_headers)
    canonical = "\n".join([
        method.upper(), _canonical_path(raw_path), _canonical_query(query), canonical_headers,
        ";".join(signed_headers), hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret_key).encode(), amz_date[:8])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={';'.join(signed_headers)}, "
                     f"Signature={signature}")
    return Signed(canonical, to_sign, authorization)


def verify(
    *, method: str, raw_path: str, query: str, headers: dict[str, str], body: bytes,
    secrets: dict[str, str], region: str, service: str,
) -> str | None:
    """None when the request carries a valid signature by one of `secrets` (access key ->
    secret key) for `region` and `service`; else why not."""
    lowered = {k.lower(): v for k, v in headers.items()}
    auth = lowered.get("authorization", "")
    if not auth.startswith(ALGORITHM + " "):
        return "no SigV4 Authorization header"
    fields = dict(part.strip().split("=", 1) for part in auth[len(ALGORITHM) + 1:].split(","))
    access_key, date, reg, svc, terminal = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    amz_date = lowered.get("x-amz-date", "")
    if access_key not in secrets:
        return "unknown access key"
    if (reg, svc, terminal) != (region, service, "aws4_request") or date != amz_date[:8]:
        return f"wrong scope {fields['Credential']}"
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    if "x-amz-security-token" in lowered and "x-amz-security-token" not in signed:
        return "the session token is not signed"
    expected = signature_of(method=method, raw_path=raw_path, query=query, headers=headers, body=body,
                            signed_headers=signed, access_key=access_key, secret_key=secrets[access_key],
                            region=region, service=service, amz_date=amz_date)
    if not hmac.compare_digest(expected.authorization, auth):
        return "signature mismatch"
    return None


# -- event-stream frames -----------------------------------------------------------------------


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return bytes([len(raw_name)]) + raw_name + b"\x07" + struct.pack(">H", len(raw_value)) + raw_value


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total length, headers length, CRC32 of both),
    string-typed headers, payload, and the CRC32 of everything before it."""
    encoded = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(name: str, payload: bytes) -> bytes:
    return frame({":event-type": name, ":content-type": "application/json", ":message-type": "event"}, payload)


def exception(name: str, message: str) -> bytes:
    payload = ('{"message":"' + message + '"}').encode()
    return frame({":exception-type": name, ":content-type": "application/json", ":message-type": "exception"},
                 payload)
