"""Who is calling: caller keys, admin keys and client-certificate subjects.

A caller presents a key as `authorization: Bearer <key>` or `x-api-key: <key>` metadata,
or (over mutual TLS) a client certificate whose subject a key entry names. Keys are
configured by their SHA-256 or read once from an environment variable and hashed at
once: the gateway never holds a key in clear, and never logs or echoes one. A presented
key is hashed and compared with every configured digest by `hmac.compare_digest`, without
stopping at the first match, so the time taken says nothing about which digest is near.

`AuthInterceptor` is the one place this happens: a grpc.aio server interceptor that runs
before a request is decoded. It decides per method what is needed (LLMService and
VectorService: a caller key; AdminService: an admin key; health and reflection: nothing when configured open,
else any key), refuses with UNAUTHENTICATED (no or unknown key) or PERMISSION_DENIED (a
key of the wrong kind), and puts the caller's name where the servicer reads it
(`current_caller`). It is installed even with no keys configured (then it passes every
call on, at about a microsecond), so that a reload can add keys.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import inspect
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from .errors import PermissionDenied, PorticoError, Unauthenticated

if TYPE_CHECKING:
    from .config import AuthSettings, KeyIdentity

log = logging.getLogger("portico.auth")

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
#: Aborts a call with the error table's status for a domain error (servicer.fail), and
#: counts and logs it under the method's name.
Fail: TypeAlias = Callable[[Context, BaseException, str], Awaitable[None]]

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("portico_caller", default="")

#: The `auth_context()` property gRPC fills with a verified client certificate's subject
#: (RFC 2253 form, e.g. "CN=billing,O=Acme").
SUBJECT_PROPERTY = "x509_subject"

LLM_SERVICE = "portico.v1.LLMService"
ADMIN_SERVICE = "portico.v1.AdminService"
VECTOR_SERVICE = "portico.v1.VectorService"
_HEALTH_PREFIX = "/grpc.health.v1.Health/"
_REFLECTION_PREFIX = "/grpc.reflection."


def current_caller() -> str:
    """The name of the key (or certificate) that made the call being served; "" when the
    gateway is open."""
    return _CALLER.get()


def hash_key(key: str) -> str:
    """The SHA-256 of a key, as the 64 hex digits `auth.keys[].sha256` holds."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


# -- certificate subjects ---------------------------------------------------------------------

_RDN_SEPARATOR = re.compile(r"(?<!\\)[,+]")


def subject_parts(subject: str) -> tuple[tuple[str, str], ...]:
    """A distinguished name as its sorted (TYPE, value) pairs, so "CN=billing, O=Acme" and
    "O=Acme,CN=billing" (OpenSSL's order and RFC 2253's) name the same subject."""
    pairs = []
    for part in _RDN_SEPARATOR.split(subject):
        kind, _, value = part.partition("=")
        if kind.strip():
            pairs.append((kind.strip().upper(), value.strip()))
    return tuple(sorted(pairs))


def certificate_subject(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The subject of the client certificate the TLS handshake verified, if any."""
    values = auth_context.get(SUBJECT_PROPERTY) or ()
    for value in values:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if text:
            return text
    return None


# -- keys ---------------------------------------------------------------------------------


class KeyRing:
    """The digests and certificate subjects of one kind of key (caller or admin)."""

    def __init__(self, entries: Iterable[KeyIdentity], section: str, environ: Mapping[str, str]) -> None:
        entries = list(entries)
        self.names = [entry.name for entry in entries]
        self._digests: list[tuple[bytes, str]] = []
        self._subjects: dict[tuple[tuple[str, str], ...], str] = {}
        for i, entry in enumerate(entries):
            where = f"auth.{section}[{i}] ({entry.name})"
            digest = _digest_of(entry, where, environ)
            if digest is not None:
                if any(hmac.compare_digest(digest, known) for known, _ in self._digests):
                    raise _config_error(f"{where}: the same key is configured twice in auth.{section}")
                self._digests.append((digest, entry.name))
            if entry.subject is not None:
                self._subjects[subject_parts(entry.subject)] = entry.name

    def __bool__(self) -> bool:
        return bool(self._digests or self._subjects)

    @property
    def has_subjects(self) -> bool:
        return bool(self._subjects)

    def by_digest(self, digest: bytes) -> str | None:
        """The name of the key with this digest. Every configured digest is compared, in
        constant time each, whichever matches."""
        found = None
        for known, name in self._digests:
            if hmac.compare_digest(digest, known):
                found = name
        return found

    def by_subject(self, subject: str) -> str | None:
        return self._subjects.get(subject_parts(subject))


def _digest_of(entry: KeyIdentity, where: str, environ: Mapping[str, str]) -> bytes | None:
    if entry.sha256 is not None:
        return bytes.fromhex(entry.sha256)
    if entry.env is None:
        return None
    key = environ.get(entry.env)
    if not key:
        raise _config_error(f"{where}: environment variable {entry.env} is not set or empty")
    if key != key.strip() or any(c.isspace() or not c.isprintable() for c in key):
        # The message never shows the key.
        raise _config_error(f"{where}: the key in {entry.env} has whitespace or a control character "
                            "(a trailing newline?)")
    return hashlib.sha256(key.encode("utf-8")).digest()


def _config_error(message: str) -> Exception:
    from .config import ConfigError  # config imports yaml, which `portico keys hash` does without

    return ConfigError(message)


class Need(Enum):
    """What a method needs from its caller."""

    NOTHING = "nothing"
    CALLER = "a caller key"
    ADMIN = "an admin key"
    ANY = "a caller or admin key"


@dataclass(frozen=True, slots=True)
class KeyRings:
    callers: KeyRing
    admins: KeyRing
    open_health: bool
    open_reflection: bool


def keyrings(settings: AuthSettings, environ: Mapping[str, str] | None = None) -> KeyRings:
    """The keys of a configuration; raises ConfigError for an unset environment variable."""
    env = os.environ if environ is None else environ
    return KeyRings(KeyRing(settings.keys, "keys", env), KeyRing(settings.admin_keys, "admin_keys", env),
                    settings.open_health, settings.open_reflection)


class Authenticator:
    """Decides who a call comes from. `replace` applies keys from a reloaded file."""

    def __init__(self, rings: KeyRings) -> None:
        self.rings = rings
        self._needs: dict[str, Need] = {}

    def replace(self, rings: KeyRings) -> None:
        self.rings = rings
        self._needs.clear()

    def need(self, method: str) -> Need:
        need = self._needs.get(method)
        if need is None:
            need = self._needs[method] = self._need(method)
        return need

    def _need(self, method: str) -> Need:
        rings = self.rings
        if not (rings.callers or rings.admins):
            return Need.NOTHING
        if method.startswith(_HEALTH_PREFIX):
            return Need.NOTHING if rings.open_health else Need.ANY
        if method.startswith(_REFLECTION_PREFIX):
            return Need.NOTHING if rings.open_reflection else Need.ANY
        if method.startswith(f"/{ADMIN_SERVICE}/"):
            return Need.ADMIN
        return Need.CALLER if rings.callers else Need.NOTHING

    def by_key(self, key: str, need: Need) -> str:
        """The caller's name for a presented key; raises Unauthenticated or PermissionDenied."""
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        caller = self.rings.callers.by_digest(digest)
        admin = self.rings.admins.by_digest(digest)
        return self._decide(caller, admin, need, "key")

    def by_subject(self, subject: str | None, need: Need) -> str:
        if subject is None:
            raise _missing(need)
        return self._decide(self.rings.callers.by_subject(subject), self.rings.admins.by_subject(subject),
                            need, "client certificate")

    def knows_subjects(self, need: Need) -> bool:
        rings = self.rings
        if need is Need.CALLER:
            return rings.callers.has_subjects
        if need is Need.ADMIN:
            return rings.admins.has_subjects
        return rings.callers.has_subjects or rings.admins.has_subjects

    @staticmethod
    def _decide(caller: str | None, admin: str | None, need: Need, what: str) -> str:
        if need is Need.CALLER:
            if caller is not None:
                return caller
            if admin is not None:
                raise PermissionDenied(f"admin key {admin!r} may not call {LLM_SERVICE} or {VECTOR_SERVICE}; "
                                       "use a caller key",
                                       metadata={"caller": admin})
        elif need is Need.ADMIN:
            if admin is not None:
                return admin
            if caller is not None:
                raise PermissionDenied(f"{ADMIN_SERVICE} needs an admin key; caller key {caller!r} is not one",
                                       metadata={"caller": caller})
        else:
            name = caller if caller is not None else admin
            if name is not None:
                return name
        raise Unauthenticated(f"the {what} sent is not known as {need.value}")


def _missing(need: Need) -> Unauthenticated:
    return Unauthenticated(f"this call needs {need.value}: send it as `authorization: Bearer <key>` "
                           "(or `x-api-key: <key>`) metadata")


def presented_key(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The key in a call's metadata: `authorization: Bearer <key>`, else `x-api-key`.
    Raises Unauthenticated for an `authorization` value of another scheme."""
    api_key = None
    for name, value in metadata or ():
        if name == "authorization":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the authorization metadata must be `Bearer <key>`")
            return token.strip()
        if name == "x-api-key":
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            api_key = text.strip() or None
    return api_key


# -- the interceptor --------------------------------------------------------------------------


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc has no type stubs
    """Authenticates every call before its handler runs (and before its request is decoded)."""

    def __init__(self, authenticator: Authenticator, fail: Fail) -> None:
        self.auth = authenticator
        self.fail = fail
        self._by_certificate: dict[tuple[str, Need], tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # an unknown method: gRPC answers UNIMPLEMENTED
        method: str = handler_call_details.method
        need = self.auth.need(method)
        if need is Need.NOTHING:
            return handler
        try:
            key = presented_key(handler_call_details.invocation_metadata)
            if key is not None:
                _CALLER.set(self.auth.by_key(key, need))
                return handler
            if not self.auth.knows_subjects(need):
                raise _missing(need)
        except PorticoError as exc:
            return _refusing(handler, exc, self.fail, _short(method))
        return self._certificate_checked(method, need, handler)

    def _certificate_checked(self, method: str, need: Need, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """`handler` behind a check of the client certificate, which only the call's
        context shows (cached per method: the wrapper reads everything per call)."""
        cached = self._by_certificate.get((method, need))
        if cached is not None and cached[0] is handler:
            return cached[1]
        auth, fail, name = self.auth, self.fail, _short(method)

        async def admit(context: Context) -> bool:
            try:
                _CALLER.set(auth.by_subject(certificate_subject(context.auth_context()), need))
            except PorticoError as exc:
                await fail(context, exc, name)
                return False
            return True

        wrapped = _wrap(handler, admit)
        self._by_certificate[(method, need)] = (handler, wrapped)
        return wrapped


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _behavior(handler: grpc.RpcMethodHandler) -> tuple[str, Callable[..., Any]]:
    for kind in _KINDS:
        behavior = getattr(handler, kind)
        if behavior is not None:
            return kind, behavior
    raise RuntimeError("a method handler without a behavior")


def _short(method: str) -> str:
    """`Chat` of `/portico.v1.LLMService/Chat`: the name metrics and the call log use."""
    return method.rpartition("/")[2]


def _refusing(handler: grpc.RpcMethodHandler, exc: PorticoError, fail: Fail, method: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape that refuses the call; the request is never decoded."""
    kind, _ = _behavior(handler)

    async def refuse(request: Any, context: Context) -> None:
        await fail(context, exc, method)

    return handler._replace(request_deserializer=None, **{kind: refuse})


def _wrap(handler: grpc.RpcMethodHandler, admit: Callable[[Context], Awaitable[bool]]) -> grpc.RpcMethodHandler:
    kind, inner = _behavior(handler)
    if inspect.isasyncgenfunction(inner):

        async def generate(request: Any, context: Context) -> AsyncIterator[Any]:
            if await admit(context):
                async for item in inner(request, context):
                    yield item

        return handler._replace(**{kind: generate})

    async def call(request: Any, context: Context) -> Any:
        if await admit(context):
            return await inner(request, context)
        return None

    return handler._replace(**{kind: call})


def describe(rings: KeyRings, address: str) -> tuple[int, str]:
    """The start-up line saying who may call: (log level, message). It names keys, never
    shows one."""
    if not rings.callers:
        admin = ("; AdminService needs an admin key" if rings.admins
                 else "; AdminService is open too")
        return logging.WARNING, (
            f"access control is off: no caller keys are configured (auth.keys), so anyone who can reach "
            f"{address} may call every provider{admin}")
    opened = [name for name, is_open in (("health", rings.open_health), ("reflection", rings.open_reflection))
              if is_open]
    return logging.INFO, (
        f"access control is on: {len(rings.callers.names)} caller key(s) ({', '.join(rings.callers.names)}), "
        f"{len(rings.admins.names)} admin key(s); open without a key: {', '.join(opened) or 'nothing'}")
