"""SigV4 against AWS's published test suite (tests/fixtures/bedrock/sigv4, see SOURCES.md):
botocore's signer, which the Bedrock provider uses, and the tests' own verifier, which the
loopback upstream uses to check every request the provider signs."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_wire import signature_of
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from upstream import FIXTURES

SUITE = FIXTURES / "bedrock" / "sigv4"
ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TIMESTAMP = "20150830T123600Z"
VECTORS = sorted(p.stem for p in SUITE.glob("*.req"))


def parse(name: str) -> tuple[str, str, str, dict[str, str], bytes]:
    """(method, path, query, headers, body) of a `.req` file."""
    text = (SUITE / f"{name}.req").read_text()
    head, _, body = text.partition("\n\n")
    request_line, *lines = head.split("\n")
    method, target, _ = request_line.split(" ")
    path, _, query = target.partition("?")
    headers = {}
    for line in lines:
        key, _, value = line.partition(":")
        headers[key] = value
    return method, path, query, headers, body.encode()


def expected(name: str, suffix: str) -> str | None:
    path = SUITE / f"{name}.{suffix}"
    return path.read_text() if path.exists() else None


def test_the_suite_is_here():
    assert len(VECTORS) == 5
    assert all(expected(name, "authz") for name in VECTORS)


@pytest.mark.parametrize("name", VECTORS)
def test_botocore_signs_as_the_suite_says(name):
    method, path, query, headers, body = parse(name)
    url = "https://example.amazonaws.com" + path + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    request.context["timestamp"] = TIMESTAMP
    token = headers.get("X-Amz-Security-Token")
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), "service", "us-east-1")
    canonical = auth.canonical_request(request)
    if (creq := expected(name, "creq")) is not None:
        assert canonical == creq
    to_sign = auth.string_to_sign(request, canonical)
    if (sts := expected(name, "sts")) is not None:
        assert to_sign == sts
    signature = auth.signature(to_sign, request)
    signed = auth.signed_headers(auth.headers_to_sign(request))
    authorization = f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, SignedHeaders={signed}, Signature={signature}"
    assert authorization == expected(name, "authz")


@pytest.mark.parametrize("name", VECTORS)
def test_the_verifier_computes_what_the_suite_says(name):
    method, path, query, headers, body = parse(name)
    signed = signature_of(
        method=method, raw_path=path, query=query, headers=headers, body=body,
        signed_headers=sorted(k.lower() for k in headers), access_key=ACCESS_KEY, secret_key=SECRET_KEY,
        region="us-east-1", service="service", amz_date=TIMESTAMP,
    )
    if (creq := expected(name, "creq")) is not None:
        assert signed.canonical_request == creq
    if (sts := expected(name, "sts")) is not None:
        assert signed.string_to_sign == sts
    assert signed.authorization == expected(name, "authz")


def test_a_wrong_secret_gives_another_signature():
    method, path, query, headers, body = parse("post-vanilla")
    signed = signature_of(
        method=method, raw_path=path, query=query, headers=headers, body=body, signed_headers=["host", "x-amz-date"],
        access_key=ACCESS_KEY, secret_key=SECRET_KEY + "x", region="us-east-1", service="service",
        amz_date=TIMESTAMP,
    )
    assert signed.authorization != expected("post-vanilla", "authz")


def test_vectors_are_the_published_files():
    # The files are byte copies; a stray newline at the end would change every digest.
    assert not any(p.read_bytes().endswith(b"\n") for p in Path(SUITE).iterdir())
