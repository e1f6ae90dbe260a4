"""AIP-158 pagination of list calls: page sizes and opaque page tokens."""

from __future__ import annotations

import base64
import binascii

from .errors import InvalidRequest

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_PREFIX = "offset:"


def page_size(requested: int) -> int:
    """The page size a request asks for: 0 means the default, larger values are capped."""
    if requested < 0:
        raise InvalidRequest([("page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(offset: int) -> str:
    """A token for the page starting at `offset`. Callers treat it as opaque."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    """The offset a token of `encode_token` holds; 0 for the empty token (the first page)."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    digits = text.removeprefix(_PREFIX)
    if not text.startswith(_PREFIX) or not digits.isdigit() or len(digits) > 9:
        raise InvalidRequest([("page_token", "is not a page token this gateway issued; "
                                             "send the previous page's next_page_token or nothing")])
    return int(digits)
