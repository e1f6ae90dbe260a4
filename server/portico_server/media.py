"""What the gateway checks of a media part before any provider sees it."""

from __future__ import annotations

#: Magic bytes of the formats every vision or document provider takes, and their types.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)

#: URI schemes a provider can resolve itself. Anything else (file:, ftp:, ...) would ask
#: the gateway or the provider to read something the caller should not reach through us.
URI_SCHEMES = ("http://", "https://", "gs://", "data:")


def sniff_mime_type(data: bytes) -> str:
    """The MIME type `data` starts like, or "" when it is none of the common formats."""
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""


def uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be sent to a provider, or None when it can."""
    if not uri.lower().startswith(URI_SCHEMES):
        return "must be an http(s), gs:// or data: URI"
    if uri.lower().startswith("data:"):
        header, comma, payload = uri.partition(",")
        if not comma or not header.lower().endswith(";base64") or not payload:
            return "a data: URI must look like data:image/png;base64,<base64 bytes>"
    return None


def mime_type_problem(mime_type: str) -> str | None:
    """Why `mime_type` is not a MIME type (type/subtype), or None."""
    kind, slash, subtype = mime_type.partition("/")
    if not slash or not kind or not subtype or any(c.isspace() for c in mime_type):
        return f"{mime_type!r} is not a MIME type like image/png or application/pdf"
    return None
