"""`portico vectors ...`: the VectorService from a shell.

    portico vectors create NAME --dimensions N [--distance cosine|dot|euclidean]
                                [--embedding-provider P] [--embedding-model M]
    portico vectors list [--json]
    portico vectors upsert NAME [FILE]        (JSON lines; FILE '-' or none reads stdin)
    portico vectors query NAME (--text T | --vector JSON) [--top-k K] [--filter JSON] ...
    portico vectors get NAME ID...
    portico vectors count NAME [--filter JSON]
    portico vectors delete NAME (--id ID... | --filter JSON | --collection)

Filters are written as a compact JSON object (see `filter_from_json`) rather than the
proto's JSON form, which needs four levels of nesting for `lang == "en"`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

import grpc
from portico._status import error_from_rpc
from portico.v1 import vector_service_pb2 as pb
from portico.v1 import vector_service_pb2_grpc

from . import cli

DEFAULT_BATCH = 100
DEFAULT_TIMEOUT = 60.0
# Progress shows only once an upsert has run this long, so small inputs stay quiet.
PROGRESS_DELAY = 1.0

_DISTANCES = {
    "cosine": pb.DISTANCE_COSINE,
    "dot": pb.DISTANCE_DOT,
    "euclidean": pb.DISTANCE_EUCLIDEAN,
}
_DISTANCE_NAMES = {value: name for name, value in _DISTANCES.items()}
_RANGE_BOUNDS = ("gt", "gte", "lt", "lte")
_RECORD_KEYS = {"id", "vector", "text", "metadata"}


class _Failed(Exception):
    """A call failed; the message is the one line to print."""


# -- filters ---------------------------------------------------------------------------------


def filter_from_json(text: str) -> pb.Filter:
    """The compact filter syntax, as JSON text:

    - `{"lang": "en"}`: equals (a string, number or boolean);
    - `{"lang": ["en", "de"]}`: in;
    - `{"year": {"gte": 2020, "lt": 2025}}`: a numeric range (gt, gte, lt, lte);
    - several keys in one object: all of them;
    - `{"$any": [F, ...]}`, `{"$all": [F, ...]}`, `{"$not": F}`: or, and, not.

    Keys are metadata fields; a dotted path such as `author.name` reaches into objects.
    """
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as exc:
        raise cli._UsageError(f"--filter is not valid JSON: {exc}") from None
    return _filter(tree, "--filter")


def _filter(tree: Any, where: str) -> pb.Filter:
    if not isinstance(tree, dict) or not tree:
        raise cli._UsageError(f"{where}: a filter is a non-empty JSON object")
    clauses = [_clause(key, value, f"{where}.{key}") for key, value in tree.items()]
    if len(clauses) == 1:
        return clauses[0]
    return pb.Filter(all=pb.FilterList(filters=clauses))


def _clause(key: str, value: Any, where: str) -> pb.Filter:
    if key in ("$any", "$all"):
        if not isinstance(value, list) or not value:
            raise cli._UsageError(f"{where}: a non-empty list of filters")
        filters = pb.FilterList(filters=[_filter(item, f"{where}[{i}]") for i, item in enumerate(value)])
        return pb.Filter(any=filters) if key == "$any" else pb.Filter(all=filters)
    if key == "$not":
        return pb.Filter(negate=_filter(value, where))
    if key.startswith("$"):
        raise cli._UsageError(f"{where}: unknown operator {key!r} (use $any, $all or $not)")
    if isinstance(value, list):
        if not value:
            raise cli._UsageError(f"{where}: a list of values needs at least one")
        values = [_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
        clause = pb.Filter()
        getattr(clause, "in").CopyFrom(pb.FieldIn(field=key, values=values))  # `in` is a keyword
        return clause
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(_RANGE_BOUNDS))
        if unknown or not value:
            raise cli._UsageError(f"{where}: a range takes gt, gte, lt and lte" +
                                  (f", not {', '.join(unknown)}" if unknown else ""))
        bounds = {}
        for bound, number in value.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise cli._UsageError(f"{where}.{bound}: a range bound is a number")
            bounds[bound] = float(number)
        return pb.Filter(range=pb.FieldRange(field=key, **bounds))
    return pb.Filter(equals=pb.FieldEquals(field=key, value=_value(value, where)))


def _value(value: Any, where: str) -> pb.FilterValue:
    # bool first: in Python it is also an int.
    if isinstance(value, bool):
        return pb.FilterValue(bool_value=value)
    if isinstance(value, int | float):
        return pb.FilterValue(number_value=float(value))
    if isinstance(value, str):
        return pb.FilterValue(string_value=value)
    raise cli._UsageError(f"{where}: a value is a string, a number or true/false")


# -- records -----------------------------------------------------------------------------------


def record_from_line(line: str, number: int) -> pb.Record | None:
    """One JSON line: `{"id": ..., "vector": [...], "text": ..., "metadata": {...}}`.
    Blank lines are skipped (None); anything else malformed is a usage error naming the line."""
    if not line.strip():
        return None
    where = f"line {number}"
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise cli._UsageError(f"{where}: not valid JSON: {exc.msg}") from None
    if not isinstance(item, dict):
        raise cli._UsageError(f"{where}: each line is a JSON object")
    unknown = sorted(set(item) - _RECORD_KEYS)
    if unknown:
        raise cli._UsageError(f"{where}: unknown key {unknown[0]!r} (a record has id, vector, text and metadata)")
    record_id = item.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise cli._UsageError(f"{where}: \"id\" must be a non-empty string")
    record = pb.Record(id=record_id)
    vector = item.get("vector")
    if vector is not None:
        if not isinstance(vector, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in vector
        ):
            raise cli._UsageError(f"{where}: \"vector\" must be a list of finite numbers")
        record.vector.extend(vector)
    text = item.get("text")
    if text is not None:
        if not isinstance(text, str):
            raise cli._UsageError(f"{where}: \"text\" must be a string")
        record.text = text
    if not record.vector and text is None:
        raise cli._UsageError(f"{where}: a record needs a \"vector\" or a \"text\" to embed")
    metadata = item.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise cli._UsageError(f"{where}: \"metadata\" must be a JSON object")
        record.metadata_json = json.dumps(metadata, ensure_ascii=False)
    return record


def _batches(source: IO[str], size: int, advance: Callable[[int], object]) -> Iterator[tuple[list[pb.Record], int]]:
    """Records of `source` in lists of `size`, each with the last line number it read."""
    batch: list[pb.Record] = []
    number = 0
    for number, line in enumerate(source, start=1):
        record = record_from_line(line, number)
        advance(1)
        if record is not None:
            batch.append(record)
        if len(batch) == size:
            yield batch, number
            batch = []
    if batch:
        yield batch, number


# -- commands --------------------------------------------------------------------------------


def _call(args: argparse.Namespace, run: Callable[[Any, dict[str, Any]], Any]) -> Any:
    """Runs `run(stub, call_options)`; a failure raises _Failed with its one line."""
    with cli._client(args) as client:
        stub = vector_service_pb2_grpc.VectorServiceStub(client.channel)
        options = {"timeout": args.timeout, "metadata": client.metadata or None}
        try:
            return run(stub, options)
        except grpc.RpcError as exc:
            raise _Failed(_describe(error_from_rpc(exc), args.address)) from None


def _describe(error: Any, address: str) -> str:
    import portico

    if isinstance(error, portico.ConnectionFailedError):
        return f"cannot reach the gateway at {address}: {error.message}"
    if error.code == grpc.StatusCode.UNIMPLEMENTED:
        return f"UNIMPLEMENTED: the gateway at {address} does not offer the vector service ({error.message})"
    line = str(error)
    # The field a refused request names, when the message does not already say it.
    for violation in error.field_violations:
        if violation.field not in line:
            line += f" [{violation.field}: {violation.description}]"
    return line


def _command(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except _Failed as exc:
            return cli._fail_line(str(exc))

    return command


@_command
def _create(args: argparse.Namespace) -> int:
    collection = pb.Collection(
        name=args.name,
        dimensions=args.dimensions,
        distance=_DISTANCES[args.distance],
        embedding_provider=args.embedding_provider,
        embedding_model=args.embedding_model,
    )
    created = _call(
        args, lambda stub, o: stub.CreateCollection(pb.CreateCollectionRequest(collection=collection), **o)
    )
    print(f"created collection {created.name} ({created.dimensions} dimensions, "
          f"{_DISTANCE_NAMES.get(created.distance, '?')})")
    return 0


def _collection_row(c: pb.Collection) -> dict[str, Any]:
    created = c.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC") if c.HasField("create_time") else ""
    return {
        "name": c.name,
        "dimensions": c.dimensions,
        "distance": _DISTANCE_NAMES.get(c.distance, "?"),
        "embedding_provider": c.embedding_provider,
        "embedding_model": c.embedding_model,
        "create_time": created,
    }


@_command
def _list(args: argparse.Namespace) -> int:
    def every_page(stub: Any, options: dict[str, Any]) -> list[pb.Collection]:
        collections: list[pb.Collection] = []
        token = ""
        while True:
            page = stub.ListCollections(pb.ListCollectionsRequest(page_token=token), **options)
            collections.extend(page.collections)
            token = page.next_page_token
            if not token:
                return collections

    collections: list[pb.Collection] = _call(args, every_page)
    rows = [_collection_row(c) for c in collections]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cli._table(
        ["NAME", "DIMENSIONS", "DISTANCE", "EMBEDDING", "CREATED"],
        [[r["name"], str(r["dimensions"]), r["distance"],
          "/".join(p for p in (r["embedding_provider"], r["embedding_model"]) if p) or "-", r["create_time"] or "-"]
         for r in rows],
        sys.stdout,
    )
    return 0


def _open_input(path: str | None) -> tuple[IO[str], int | None]:
    """The JSON lines to read and, for a regular file, how many lines it has (for the bar)."""
    if path in (None, "-"):
        return sys.stdin, None
    assert path is not None
    try:
        with open(path, "rb") as counting:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: counting.read(1 << 20), b""))
        return open(path, encoding="utf-8"), lines
    except OSError as exc:
        raise cli._UsageError(f"cannot read {path}: {exc.strerror}") from None


@_command
def _upsert(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    source, total = _open_input(args.file)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    upserted = embedded = 0
    try:
        with (
            cli._client(args) as client,
            tqdm(total=total, unit=" lines", file=sys.stderr, disable=not show, dynamic_ncols=True,
                 delay=PROGRESS_DELAY if args.progress is None else 0, desc=f"upsert {args.name}") as bar,
        ):
            stub = vector_service_pb2_grpc.VectorServiceStub(client.channel)
            for batch, last_line in _batches(source, args.batch_size, bar.update):
                request = pb.UpsertRequest(collection=args.name, records=batch)
                try:
                    response = stub.Upsert(request, timeout=args.timeout, metadata=client.metadata or None)
                except grpc.RpcError as exc:
                    # records[i] in the message counts from this batch's first record.
                    raise _Failed(
                        f"{_describe(error_from_rpc(exc), args.address)} (the batch of {len(batch)} records "
                        f"ending at line {last_line}; the {upserted} records before it were upserted)"
                    ) from None
                upserted += response.upserted_count
                embedded += response.embedded_count
    except cli._UsageError as exc:
        if upserted:
            raise cli._UsageError(f"{exc}; the {upserted} records before it were upserted") from None
        raise
    finally:
        if source is not sys.stdin:
            source.close()
    print(f"upserted {upserted} records into {args.name} ({embedded} embedded from their text)")
    return 0


@_command
def _query(args: argparse.Namespace) -> int:
    request = pb.QueryRequest(collection=args.name, top_k=args.top_k, include_vectors=args.include_vectors)
    if args.text is not None:
        request.text = args.text
    else:
        request.vector.extend(_vector_argument(args.vector))
    if args.filter is not None:
        request.filter.CopyFrom(filter_from_json(args.filter))
    if args.min_score is not None:
        request.min_score = args.min_score
    if not args.include_metadata:
        request.include_metadata = False
    response = _call(args, lambda stub, o: stub.Query(request, **o))
    matches = [_match_row(m, args.include_vectors) for m in response.matches]
    if args.json:
        for match in matches:
            print(json.dumps(match, ensure_ascii=False))
        return 0
    cli._table(
        ["SCORE", "ID", "TEXT", "METADATA"],
        [[f"{m['score']:.4f}", m["id"], _short(m.get("text") or "-"),
          json.dumps(m["metadata"], ensure_ascii=False) if m.get("metadata") else "-"] for m in matches],
        sys.stdout,
    )
    return 0


def _match_row(match: pb.Match, vectors: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"id": match.id, "score": match.score}
    if match.metadata_json:
        row["metadata"] = json.loads(match.metadata_json)
    if match.HasField("text"):
        row["text"] = match.text
    if vectors:
        row["vector"] = list(match.vector)
    return row


def _short(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _vector_argument(text: str) -> list[float]:
    try:
        vector = json.loads(text)
    except json.JSONDecodeError as exc:
        raise cli._UsageError(f"--vector is not valid JSON: {exc.msg}") from None
    if not isinstance(vector, list) or not vector or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in vector
    ):
        raise cli._UsageError("--vector must be a JSON list of numbers, e.g. [0.1, 0.2]")
    return [float(v) for v in vector]


@_command
def _get(args: argparse.Namespace) -> int:
    request = pb.GetRequest(collection=args.name, ids=args.ids)
    response = _call(args, lambda stub, o: stub.Get(request, **o))
    for record in response.records:
        row: dict[str, Any] = {"id": record.id, "vector": list(record.vector)}
        row["metadata"] = json.loads(record.metadata_json) if record.metadata_json else {}
        if record.HasField("text"):
            row["text"] = record.text
        print(json.dumps(row, ensure_ascii=False))
    missing = len(set(args.ids)) - len(response.records)
    return 0 if missing == 0 else 1


@_command
def _count(args: argparse.Namespace) -> int:
    request = pb.CountRequest(collection=args.name)
    if args.filter is not None:
        request.filter.CopyFrom(filter_from_json(args.filter))
    print(_call(args, lambda stub, o: stub.Count(request, **o)).count)
    return 0


@_command
def _delete(args: argparse.Namespace) -> int:
    chosen = [flag for flag, given in (("--id", bool(args.ids)), ("--filter", args.filter is not None),
                                         ("--collection", args.collection)) if given]
    if len(chosen) != 1:
        raise cli._UsageError(
            "say what to delete with exactly one of --id, --filter and --collection"
            + (f" (got {' and '.join(chosen)})" if chosen else "")
        )
    if args.collection:
        _call(args, lambda stub, o: stub.DeleteCollection(pb.DeleteCollectionRequest(name=args.name), **o))
        print(f"deleted collection {args.name}")
        return 0
    request = pb.DeleteRequest(collection=args.name, ids=args.ids or [])
    if args.filter is not None:
        request.filter.CopyFrom(filter_from_json(args.filter))
    response = _call(args, lambda stub, o: stub.Delete(request, **o))
    print(f"deleted {response.deleted_count} records from {args.name}")
    return 0


# -- the parser ------------------------------------------------------------------------------

_FILTER_HELP = (
    'a metadata filter as JSON: {"lang": "en"} equals, {"lang": ["en", "de"]} in, '
    '{"year": {"gte": 2020}} a range; several keys: all; {"$any": [...]}, {"$not": {...}}'
)


def add_commands(commands: Any, client: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Adds `vectors` and its subcommands; returns the parsers that connect to a gateway."""
    vectors = commands.add_parser("vectors", help="collections of vectors searched by similarity (VectorService)")
    sub = vectors.add_subparsers(title="vectors commands", required=True, metavar="VECTORS_COMMAND")
    name_help = "the collection's name"

    create = sub.add_parser("create", parents=[client], help="create a collection")
    create.add_argument("name", metavar="NAME", help="1-63 characters: lowercase letters, digits, '-', '_'")
    create.add_argument("--dimensions", type=cli._positive_int, required=True, metavar="N",
                        help="the length of every vector (that of the embedding model, for text)")
    create.add_argument("--distance", choices=sorted(_DISTANCES), default="cosine",
                        help="how similarity is measured (default: %(default)s)")
    create.add_argument("--embedding-provider", default="", metavar="P",
                        help="the provider that embeds text (default: the model name routes)")
    create.add_argument("--embedding-model", default="", metavar="M",
                        help="the embedding model for text (default: the provider's)")
    create.set_defaults(command=_create)

    listing = sub.add_parser("list", parents=[client], help="list the collections")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(command=_list)

    upsert = sub.add_parser(
        "upsert", parents=[client],
        help='insert or replace records read as JSON lines: {"id": ..., "vector": [...] or "text": ..., '
             '"metadata": {...}}',
    )
    upsert.add_argument("name", metavar="NAME", help=name_help)
    upsert.add_argument("file", metavar="FILE", nargs="?", help="JSON lines to read; '-' or none reads stdin")
    upsert.add_argument("--batch-size", type=cli._positive_int, default=DEFAULT_BATCH, metavar="N",
                        help="records per call (default: %(default)s)")
    upsert.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="a progress bar on stderr (default: when stderr is a terminal and the upsert "
                             f"takes over {PROGRESS_DELAY:g} s)")
    upsert.set_defaults(command=_upsert)

    query = sub.add_parser("query", parents=[client], help="the records most similar to a text or a vector")
    query.add_argument("name", metavar="NAME", help=name_help)
    given = query.add_mutually_exclusive_group(required=True)
    given.add_argument("--text", metavar="TEXT", help="a text, embedded with the collection's model")
    given.add_argument("--vector", metavar="JSON", help="a vector as a JSON list, e.g. [0.1, 0.2]")
    query.add_argument("--top-k", type=cli._positive_int, default=10, metavar="K",
                       help="how many matches at most (default: %(default)s)")
    query.add_argument("--filter", metavar="JSON", help=_FILTER_HELP)
    query.add_argument("--min-score", type=float, metavar="S",
                       help="only matches scoring at least S (higher is more similar)")
    query.add_argument("--include-vectors", action="store_true", help="return each match's vector (with --json)")
    query.add_argument("--no-metadata", dest="include_metadata", action="store_false",
                       help="leave out metadata and stored text")
    query.add_argument("--json", action="store_true", help="print one JSON object per match instead of a table")
    query.set_defaults(command=_query)

    get = sub.add_parser("get", parents=[client], help="print records by id as JSON lines (exit 1 if any is missing)")
    get.add_argument("name", metavar="NAME", help=name_help)
    get.add_argument("ids", metavar="ID", nargs="+", help="a record id")
    get.set_defaults(command=_get)

    count = sub.add_parser("count", parents=[client], help="count the records, or those a filter matches")
    count.add_argument("name", metavar="NAME", help=name_help)
    count.add_argument("--filter", metavar="JSON", help=_FILTER_HELP)
    count.set_defaults(command=_count)

    delete = sub.add_parser("delete", parents=[client],
                            help="delete records by id or filter, or (--collection) the collection itself")
    delete.add_argument("name", metavar="NAME", help=name_help)
    delete.add_argument("--id", dest="ids", action="append", metavar="ID",
                        help="a record id to delete (repeat it for several)")
    delete.add_argument("--filter", metavar="JSON", help="delete every record it matches: " + _FILTER_HELP)
    delete.add_argument("--collection", action="store_true",
                        help="delete the collection and every record in it")
    delete.set_defaults(command=_delete)

    connecting = [create, listing, upsert, query, get, count, delete]
    for parser in connecting:
        parser.set_defaults(timeout=parser.get_default("timeout") or DEFAULT_TIMEOUT)
    return connecting


__all__ = ["add_commands", "filter_from_json", "record_from_line"]
