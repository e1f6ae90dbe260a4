"""The gateway's log: one JSON object per line for log collectors, or plain text for a
person at a terminal (`logging.format: auto` picks by whether stderr is one), and one
line per finished call on the `portico.call` logger with what an operator asks first:
which request, who called, what it was sent to, how long it took, what it cost, how it
ended.

Every line passes the secret redaction (redaction.py) as a whole, the call's fields
included, since tags and model names are the caller's free text.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson

from .redaction import install_log_redaction, redact

if TYPE_CHECKING:
    from .config import LoggingSettings
    from .observe import CallRecord

INFO = logging.INFO
#: The logger of the per-call lines; `logging.calls: false` turns it off.
CALLS = logging.getLogger("portico.call")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s{tag}: %(message)s"


def configure(settings: LoggingSettings, level: str, worker: int | None) -> None:
    """Send every record of the process to stderr in the configured format (`level`:
    the effective level name; `worker`: this process's worker number, if it is one)."""
    use_json = settings.format == "json" or (settings.format == "auto" and not _is_terminal(sys.stderr))
    handler = logging.StreamHandler(sys.stderr)
    if use_json:
        handler.setFormatter(JsonFormatter(worker))
    else:
        handler.setFormatter(TextFormatter(_TEXT_FORMAT.format(tag=f" [worker {worker}]" if worker else "")))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # No format prints them, and looking them up is a good part of a record's cost.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    CALLS.disabled = not settings.calls
    # Before any provider exists: every record, at every level and from every library,
    # passes the filter that removes configured secrets.
    install_log_redaction()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def write(record: CallRecord, duration: float, retries: int) -> None:
    """The call's line: `<method> <status>` with its fields beside it."""
    call = record.call
    trace = record.trace if record.trace is not None and record.trace.active else None
    fields: dict[str, Any] = {
        "request_id": record.request_id,
        "method": record.method,
        "status": record.code.name,
        "reason": record.reason,
        "caller": call.caller if call is not None else "",
        "tags": dict(call.tags) if call is not None else {},
        "provider": record.provider,
        "model": record.model,
        "request_model": record.request_model,
        "attempts": len(trace.attempts) if trace is not None else 0,
        "retries": retries,
        "duration_ms": round(duration * 1000, 3),
    }
    if trace is not None:
        fields["upstream_ms"] = round(sum(a.duration_ms + a.wait_ms for a in trace.attempts), 3)
        fields["overhead_ms"] = round(trace.overhead_ms(), 3)
    if record.first_chunk is not None:
        fields["first_chunk_ms"] = round((record.first_chunk - record.started) * 1000, 3)
        fields["chunks"] = record.chunks
    if record.tokens is not None:
        inputs, outputs, cache_read, cache_creation, reasoning = record.tokens
        fields.update(input_tokens=inputs, output_tokens=outputs, cache_read_tokens=cache_read,
                      cache_creation_tokens=cache_creation, reasoning_tokens=reasoning)
    level = logging.WARNING if _is_fault(record) else logging.INFO
    if CALLS.isEnabledFor(level):
        # Made directly: `log()` would walk the stack for a source line no format prints.
        entry = CALLS.makeRecord(CALLS.name, level, __file__, 0, "%s %s", (record.method, record.code.name),
                                 None, extra={"call": fields})
        CALLS.handle(entry)


def _is_fault(record: CallRecord) -> bool:
    """A failure on the gateway's or a provider's side (not the caller's own mistake)."""
    return record.code.name in {"INTERNAL", "UNKNOWN", "UNAVAILABLE", "FAILED_PRECONDITION", "DATA_LOSS"}


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...}`: a call line adds its fields at the
    top level; an exception adds `exception` (its traceback text)."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        entry["message"] = record.getMessage()
        fields = getattr(record, "call", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return redact(orjson.dumps(entry, default=str).decode())


class TextFormatter(logging.Formatter):
    """The classic line, and after a call line's message its fields as `key=value`."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "call", None)
        if isinstance(fields, dict):
            line += " " + " ".join(_pair(key, value) for key, value in fields.items()
                                   if value not in ("", {}, None) and key not in ("method", "status"))
        return redact(line)


def _pair(key: str, value: Any) -> str:
    if isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    text = str(value)
    return f"{key}={json.dumps(text) if (' ' in text or not text) else text}"


_second: tuple[int, str] = (-1, "")


def _iso_time(created: float) -> str:
    """UTC with milliseconds; the part up to the second is made once per second."""
    global _second
    whole = int(created)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int(created % 1 * 1000):03d}Z"
