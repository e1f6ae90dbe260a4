"""Tool-call ids for Gemini's function calls, which have none of their own.

Gemini wants each function call's `thoughtSignature` back on the next turn. Portico
makes a stable id per call and, for the call that carries a signature, appends the
signature to the id (`call_<digest>~<signature>`); when the caller sends the assistant
turn back, the signature is recovered from the id. That keeps the gateway stateless: any
replica can serve the next turn.
"""

from __future__ import annotations

import hashlib
import re

_SIGNATURE_SEPARATOR = "~"  # not in the base64 alphabet, so it cannot occur in a signature
# Only ids of the shape `make_call_id` produces: a caller's own id that happens to hold a
# "~" must not turn into a signature.
_OUR_CALL_ID = re.compile(r"^call_[0-9a-f]{24}~(?P<signature>.+)$", re.DOTALL)


def make_call_id(response_id: str, index: int, upstream_id: str, name: str, arguments: str, signature: str) -> str:
    """The id of a response's `index`th function call; the same call always gets the same
    id. A non-empty `signature` rides along at its end."""
    digest = hashlib.sha256(f"{response_id}\0{index}\0{upstream_id}\0{name}\0{arguments}".encode()).hexdigest()[:24]
    call_id = f"call_{digest}"
    return call_id + _SIGNATURE_SEPARATOR + signature if signature else call_id


def signature_from_call_id(call_id: str) -> str | None:
    """The thought signature an id from `make_call_id` carries; None if it carries none."""
    match = _OUR_CALL_ID.match(call_id)
    return match.group("signature") if match else None
