"""`portico`: run the gateway, or talk to a running one from a shell.

    portico serve [--config FILE] [--address HOST:PORT] [--workers N]   (--config defaults to $PORTICO_CONFIG)
    portico chat "prompt" [--provider P] [--model M] [--system S] [--temperature T] [--max-tokens N]
    portico embed TEXT... [--provider P] [--model M] [--dimensions N]
    portico providers [--json]
    portico health [--service NAME]
    portico admin breakers | reset-breaker PROVIDER | switch ROUTE [TARGET] | reload | history
    portico keys hash < KEYFILE                          (the SHA-256 for auth.keys[].sha256)
    portico vectors create|list|upsert|query|get|count|delete ...   (see cli_vectors.py)

Every command that connects takes --address, --timeout, --api-key (default:
$PORTICO_API_KEY), and --tls / --ca-file / --cert-file / --key-file.

Exit codes: 0 success; 1 the call failed (or, for `health`, the service is not
SERVING); 2 bad usage (an empty prompt, an unreadable certificate file, ...) or a bad
configuration file. Failures print one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, TextIO

# gRPC's C core reads this once, when it is imported. Unset, it logs each failed TLS
# handshake on stderr at INFO level, beside the command's own one-line error.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc
import portico

DEFAULT_ADDRESS = "127.0.0.1:50051"

_HEALTH = {0: "unknown", 1: "serving", 2: "not serving"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except _UsageError as exc:
        print(f"portico: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# -- serve ----------------------------------------------------------------------------------


SERVER_INSTALL_HINT = "pip install 'portico[server]'"


def _serve(args: argparse.Namespace) -> int:
    # Imported here so the client commands work with the client-only install; the
    # provider modules import their own libraries while the configuration loads.
    try:
        from .app import serve

        return serve(args.config, args.address, args.workers)
    except ModuleNotFoundError as exc:
        print(
            f"portico: serve needs the gateway's dependencies, and {exc.name or 'one'} is not installed; "
            f"install them with: {SERVER_INSTALL_HINT}",
            file=sys.stderr,
        )
        return 2


# -- keys ----------------------------------------------------------------------------------


def _keys_hash(args: argparse.Namespace) -> int:
    from .auth import hash_key  # the gateway's own hashing, so the digest always matches

    if sys.stdin.isatty():
        import getpass

        key = getpass.getpass("key (not echoed): ")
    else:
        key = sys.stdin.read().rstrip("\r\n")
    if not key:
        print("portico: keys hash: no key on stdin", file=sys.stderr)
        return 2
    if key != key.strip() or any(c.isspace() or not c.isprintable() for c in key):
        print("portico: keys hash: the key has whitespace or a control character; "
              "a caller could not send it as metadata", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


# -- client commands -------------------------------------------------------------------------


def _chat(args: argparse.Namespace) -> int:
    prompt = _prompt(args.prompt)
    messages = [{"role": "user", "content": prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    out = sys.stdout
    wrote = False
    try:
        with (
            _client(args) as client,
            client.stream(
                messages,
                provider=args.provider,
                model=args.model,
                temperature=args.temperature,
                max_tokens=args.max_tokens,
            ) as stream,
        ):
            for text in stream.text_stream:
                out.write(text)
                out.flush()
                wrote = True
            final = stream.get_final_response()
    except portico.PorticoError as exc:
        if wrote:
            out.write("\n")  # end the partial answer before the error line
            out.flush()
        return _fail(exc, args.address)
    if wrote:
        out.write("\n")
    for call in final.tool_calls:
        out.write(f"[tool call] {call.name}({call.arguments})\n")
    return 0


def _prompt(given: str | None) -> str:
    """The prompt from the argument, or from stdin for none or '-'. The newline that ends
    a piped or typed prompt is not part of it; an empty prompt is a usage error."""
    if given not in (None, "-"):
        prompt = given
    else:
        if sys.stdin.isatty():
            print("portico: reading the prompt from standard input; end it with Ctrl-D", file=sys.stderr)
        prompt = sys.stdin.read().rstrip("\r\n")
    if not prompt.strip():
        raise _UsageError("the prompt is empty: give it as an argument, or pipe it to standard input")
    return prompt


def _embed(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            response = client.embed(
                args.texts, provider=args.provider, model=args.model, dimensions=args.dimensions
            )
    except portico.PorticoError as exc:
        return _fail(exc, args.address)
    # One JSON array per input, in input order: easy to read with jq or a script.
    for embedding in response.embeddings:
        print(json.dumps([round(v, 7) for v in embedding.values]))
    return 0


def _providers(args: argparse.Namespace) -> int:
    try:
        with _client(args) as client:
            providers = client.providers()
    except portico.PorticoError as exc:
        return _fail(exc, args.address)
    if args.json:
        rows = [
            {
                "name": p.name,
                "kind": p.kind,
                "health": _HEALTH.get(p.health, "unknown"),
                "default_model": p.default_model,
                "models": list(p.models),
            }
            for p in providers
        ]
        print(json.dumps(rows, indent=2))
    else:
        _table(
            ["NAME", "KIND", "HEALTH", "DEFAULT MODEL", "MODELS"],
            [
                [p.name, p.kind, _HEALTH.get(p.health, "unknown"), p.default_model, ", ".join(p.models)]
                for p in providers
            ],
            sys.stdout,
        )
    return 0


def _health(args: argparse.Namespace) -> int:
    try:
        from grpc_health.v1 import health_pb2, health_pb2_grpc
    except ImportError:
        print("portico: error: `health` needs the server extra: pip install 'portico[server]'", file=sys.stderr)
        return 2
    with _client(args) as client:
        stub = health_pb2_grpc.HealthStub(client.channel)
        try:
            response = stub.Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout,
                metadata=client.metadata or None,
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return _fail_line(f"NOT_FOUND: the gateway has no health entry {args.service!r}")
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                return _fail_line(f"cannot reach the gateway at {args.address}: {exc.details()}")
            return _fail_line(f"{exc.code().name}: {exc.details()}")
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


# -- admin -----------------------------------------------------------------------------------

_BREAKER = {0: "-", 1: "closed", 2: "open", 3: "half-open"}
_EVENT = {1: "switch", 2: "reload", 3: "breaker reset"}


def _admin_call(args: argparse.Namespace, call: Callable[[Any], Any]) -> Any:
    """Run `call(stub)`; a failure prints one line and raises _Failed."""
    from portico.v1 import admin_service_pb2_grpc

    with _client(args) as client:
        try:
            return call(_WithMetadata(admin_service_pb2_grpc.AdminServiceStub(client.channel), client.metadata))
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNAVAILABLE and "connect" in (exc.details() or "").lower():
                raise _Failed(f"cannot reach the gateway at {args.address}: {exc.details()}") from None
            raise _Failed(f"{code.name}: {exc.details()}") from None


class _Failed(Exception):
    pass


class _WithMetadata:
    """A stub whose every method sends `metadata` (the caller key) unless given its own."""

    def __init__(self, stub: Any, metadata: list[tuple[str, str | bytes]]) -> None:
        self._stub = stub
        self._metadata = metadata or None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("metadata", self._metadata)
            return method(request, **kwargs)

        return call


def _admin(command: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            command(args)
        except _Failed as exc:
            return _fail_line(str(exc))
        return 0

    return run


def _when(stamp: Any) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return str(stamp.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


def _breaker_rows(breakers: Sequence[Any]) -> list[list[str]]:
    return [
        [b.key, _BREAKER.get(b.state, "?"), str(b.consecutive_failures), _when(b.opened_at),
         _when(b.next_trial_at), str(b.times_opened), str(b.successes), str(b.failures), str(b.rejections)]
        for b in breakers
    ]


_BREAKER_HEADER = ["BREAKER", "STATE", "FAILURES IN A ROW", "OPENED AT", "NEXT TRIAL",
                   "TIMES OPENED", "OK", "FAILED", "REFUSED"]


@_admin
def _admin_breakers(args: argparse.Namespace) -> None:
    from portico.v1 import admin_service_pb2 as pb

    response = _admin_call(args, lambda stub: stub.ListBreakers(pb.ListBreakersRequest(), timeout=args.timeout))
    _table(_BREAKER_HEADER, _breaker_rows(response.breakers), sys.stdout)


@_admin
def _admin_reset(args: argparse.Namespace) -> None:
    from portico.v1 import admin_service_pb2 as pb

    request = pb.ResetBreakerRequest(provider=args.provider, reason=args.reason)
    response = _admin_call(args, lambda stub: stub.ResetBreaker(request, timeout=args.timeout))
    print(f"reset the circuit breaker of {args.provider}")
    if response.breakers:
        _table(_BREAKER_HEADER, _breaker_rows(response.breakers), sys.stdout)


@_admin
def _admin_switch(args: argparse.Namespace) -> None:
    from portico.v1 import admin_service_pb2 as pb

    request = pb.SwitchRouteRequest(route=args.route, target=args.target, reason=args.reason)
    response = _admin_call(args, lambda stub: stub.SwitchRoute(request, timeout=args.timeout))
    was = response.previous_target or "its configured targets"
    now = response.target or "its configured targets"
    print(f"route {response.route}: {now} (was {was})")


@_admin
def _admin_reload(args: argparse.Namespace) -> None:
    from portico.v1 import admin_service_pb2 as pb

    request = pb.ReloadConfigRequest(reason=args.reason)
    response = _admin_call(args, lambda stub: stub.ReloadConfig(request, timeout=args.timeout))
    print(f"reloaded {response.config_path}; providers: {', '.join(response.providers) or 'none'}")


@_admin
def _admin_history(args: argparse.Namespace) -> None:
    from portico.v1 import admin_service_pb2 as pb

    request = pb.ListAdminEventsRequest(page_size=args.limit)
    response = _admin_call(args, lambda stub: stub.ListAdminEvents(request, timeout=args.timeout))
    _table(
        ["TIME", "KIND", "SUBJECT", "REASON", "RESULT", "DETAIL"],
        [[_when(e.time), _EVENT.get(e.kind, "?"), e.subject, e.reason or "-", "ok" if e.ok else "refused",
          " ".join(e.detail.split())] for e in response.events],
        sys.stdout,
    )


# -- helpers ---------------------------------------------------------------------------------


class _UsageError(Exception):
    """Bad input from the command line: one line on stderr, exit 2."""


def _client(args: argparse.Namespace) -> portico.Client:
    """A client with the command's address, deadline, caller key and TLS settings."""
    settings: dict[str, Any] = {
        "api_key": args.api_key,  # None: the client reads $PORTICO_API_KEY
        "tls": args.tls,
        "ca_file": args.ca_file,
        "cert_file": args.cert_file,
        "key_file": args.key_file,
    }
    if args.timeout is not None:
        settings["timeout"] = args.timeout
    try:
        return portico.Client(args.address, **settings)
    except OSError as exc:  # an unreadable certificate or key file
        raise _UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise _UsageError(str(exc)) from None


def _fail(exc: portico.PorticoError, address: str) -> int:
    if isinstance(exc, portico.ConnectionFailedError):
        return _fail_line(f"cannot reach the gateway at {address}: {exc.message}")
    return _fail_line(str(exc))


def _fail_line(message: str) -> int:
    # One line, so scripts and logs get the whole error in one record.
    print(f"portico: error: {' '.join(message.split())}", file=sys.stderr)
    return 1


def _table(header: list[str], rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        out.write("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portico", description="Portico: one gRPC API in front of many LLM providers."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway until SIGTERM or Ctrl-C")
    serve.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get("PORTICO_CONFIG") or None,
        help="YAML configuration (default: $PORTICO_CONFIG, else the embedded one)",
    )
    serve.add_argument("--address", metavar="HOST:PORT", help="listen here instead of server.address")
    serve.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="gateway processes sharing the port (default: server.workers, else one per core); 1 runs in-process",
    )
    serve.set_defaults(command=_serve)

    # Options every client command shares.
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--address",
        metavar="HOST:PORT",
        default=os.environ.get("PORTICO_ADDRESS") or DEFAULT_ADDRESS,
        help="the gateway (default: $PORTICO_ADDRESS or %(default)s)",
    )
    client.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="deadline of the call")
    client.add_argument(
        "--api-key",
        metavar="KEY",
        help="the caller key, sent as 'authorization: Bearer KEY' (default: $PORTICO_API_KEY, "
        "which keeps the key out of the process list)",
    )
    client.add_argument(
        "--tls",
        action="store_true",
        help="connect with TLS, verifying the gateway against the system's root certificates "
        "(implied by --ca-file, --cert-file and --key-file)",
    )
    client.add_argument(
        "--ca-file", metavar="PEM", help="verify the gateway's certificate against this CA instead (implies --tls)"
    )
    client.add_argument(
        "--cert-file", metavar="PEM", help="a client certificate, for a gateway that asks for one (with --key-file)"
    )
    client.add_argument("--key-file", metavar="PEM", help="the client certificate's private key (with --cert-file)")

    chat = commands.add_parser("chat", parents=[client], help="stream an answer to the terminal")
    chat.add_argument("prompt", nargs="?", help="the user message; '-' or none reads stdin")
    chat.add_argument("--provider", default="", help="a configured provider name")
    chat.add_argument("--model", default="", help="a model name or alias")
    chat.add_argument("--system", default="", help="a system message")
    chat.add_argument("--temperature", type=float, metavar="T", help="sampling temperature, e.g. 0.2")
    chat.add_argument(
        "--max-tokens", type=_positive_int, dest="max_tokens", metavar="N", help="at most N tokens in the answer"
    )
    chat.set_defaults(command=_chat)

    embed = commands.add_parser("embed", parents=[client], help="print one JSON vector per text")
    embed.add_argument("texts", nargs="+", metavar="TEXT", help="one vector is printed for each")
    embed.add_argument("--provider", default="", help="a configured provider name")
    embed.add_argument("--model", default="", help="an embedding model name or alias")
    embed.add_argument(
        "--dimensions", type=_positive_int, metavar="N", help="shorten each vector to N values (if the model can)"
    )
    embed.set_defaults(command=_embed)

    providers = commands.add_parser("providers", parents=[client], help="list the configured providers")
    providers.add_argument("--json", action="store_true", help="print JSON instead of a table")
    providers.set_defaults(command=_providers)

    health = commands.add_parser(
        "health", parents=[client], help="exit 0 if the gateway (or --service) is SERVING, else 1"
    )
    health.add_argument(
        "--service",
        default="",
        help="a grpc.health.v1 service: '' (default), portico.v1.LLMService, portico.provider.NAME",
    )
    health.set_defaults(command=_health, timeout=5.0)

    admin = commands.add_parser("admin", help="operate a running gateway (AdminService)")
    admin_commands = admin.add_subparsers(title="admin commands", required=True, metavar="ADMIN_COMMAND")
    breakers = admin_commands.add_parser("breakers", parents=[client], help="circuit breakers and their figures")
    breakers.set_defaults(command=_admin_breakers)
    reset = admin_commands.add_parser("reset-breaker", parents=[client], help="close a provider's circuit breaker")
    reset.add_argument("provider", metavar="PROVIDER", help="a configured provider name")
    reset.add_argument("--reason", default="", help="recorded in the history")
    reset.set_defaults(command=_admin_reset)
    switch = admin_commands.add_parser(
        "switch", parents=[client], help="pin a model group or alias ('default': the default route) to a target"
    )
    switch.add_argument("route", metavar="ROUTE", help="a model group, an alias, or 'default'")
    switch.add_argument(
        "target", metavar="TARGET", nargs="?", default="",
        help="provider or provider/model; omit it to restore the configured targets",
    )
    switch.add_argument("--reason", default="", help="recorded in the history")
    switch.set_defaults(command=_admin_switch)
    reload = admin_commands.add_parser("reload", parents=[client], help="reload the gateway's configuration file")
    reload.add_argument("--reason", default="", help="recorded in the history")
    reload.set_defaults(command=_admin_reload)
    history = admin_commands.add_parser("history", parents=[client], help="switches, resets and reloads, newest first")
    history.add_argument("--limit", type=_positive_int, default=0, metavar="N", help="the newest N only")
    history.set_defaults(command=_admin_history)
    keys = commands.add_parser("keys", help="caller keys for the auth section of the configuration")
    keys_commands = keys.add_subparsers(title="keys commands", required=True, metavar="KEYS_COMMAND")
    key_hash = keys_commands.add_parser(
        "hash", help="print the SHA-256 of a key read from stdin (one trailing newline is ignored)")
    key_hash.set_defaults(command=_keys_hash)
    from . import cli_vectors

    cli_vectors.add_commands(commands, client)
    for sub in (breakers, reset, switch, reload, history):
        sub.set_defaults(timeout=sub.get_default("timeout") or 30.0)
    return parser
