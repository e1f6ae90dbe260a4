"""Configured secrets, kept out of everything the gateway says.

Each provider registers its secret values (the API key, every configured header
value, and the token part of an `Authorization`-style value such as `Bearer <token>`)
when it is created. `redact()` replaces any of them in a text; the error table applies it
to every status message and ErrorInfo metadata value, the providers apply it to text
that came from upstream, and `RedactingFilter` applies it to every log record.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

REDACTED = "[redacted]"
#: Shorter values are not treated as secrets: replacing "1" or "true" everywhere would
#: mangle messages, and no credential is that short.
MIN_SECRET_LENGTH = 8


class SecretRegistry:
    """Every secret value this process knows, and one regular expression matching them."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                for form in _forms(value):
                    if len(form) >= MIN_SECRET_LENGTH:
                        self._values.add(form)
            # Longest first, so a token is not half replaced by a shorter secret inside it.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(REDACTED, text)


#: Authorization schemes whose token is a secret on its own, wherever it is quoted.
_AUTH_SCHEMES = {"bearer", "basic", "token", "apikey", "api-key", "key", "digest", "dpop", "sharedkey"}


def _forms(value: str) -> list[str]:
    """The value, and for `Scheme token` values (Bearer, Basic, ...) the token alone."""
    value = value.strip()
    forms = [value]
    scheme, _, token = value.partition(" ")
    if token.strip() and scheme.lower() in _AUTH_SCHEMES:
        forms.append(token.strip())
    return forms


#: The process's registry: providers add to it, the error table and the logs read it.
SECRETS = SecretRegistry()


def register_secrets(values: Iterable[str]) -> None:
    SECRETS.add(values)


def redact(text: str) -> str:
    """`text` with every registered secret replaced by `[redacted]`."""
    return SECRETS.redact(text)


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and its traceback text) with secrets redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not SECRETS:
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed call: the handler reports it, as without the filter
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put a `RedactingFilter` on every handler of `logger` (the root logger by default),
    so records of every logger, the HTTP library's included, pass through it."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
