"""`portico vectors ...` as a user runs it: subprocesses against a real gateway on its
default vector store, the fake provider embedding text (the same text always gets the
same vector, so a query with a stored text finds that record with score 1)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import PORTICO_BIN, spawned_gateway
from portico.v1 import vector_service_pb2 as pb
from portico_server import cli
from portico_server.cli_vectors import filter_from_json

CONFIG = """\
server: {address: "127.0.0.1:0", health_probe_interval: 0}
providers:
  - name: fake
    kind: fake
    models: [fake-chat, fake-embed]
    default_model: fake-chat
    embedding_model: fake-embed
    options: {embedding_dimensions: 8}
"""

NOWHERE = "127.0.0.1:1"  # nothing listens there: a command that calls fails with exit 1


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # One worker, as the clients' test gateways run: a test reads its writes straight back.
    with spawned_gateway(CONFIG, tmp_path_factory.mktemp("vectors-cli"), "--workers", "1") as (_, address):
        yield address


@pytest.fixture
def collection(gateway: str, request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.node.name.lower().replace("_", "-")[:60]
    created = vectors("create", name, "--dimensions", "8", "--embedding-provider", "fake", address=gateway)
    assert created.returncode == 0, created.stderr
    yield name
    vectors("delete", name, "--collection", address=gateway)


def vectors(*args: str, address: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PORTICO_BIN, "vectors", args[0], *args[1:], "--address", address],
        input=stdin, capture_output=True, text=True, timeout=60,
    )


def jsonl(*records: dict[str, object]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


CITIES = jsonl(
    {"id": "paris", "text": "Paris is the capital of France", "metadata": {"lang": "en", "year": 2024}},
    {"id": "berlin", "text": "Berlin is the capital of Germany", "metadata": {"lang": "en", "year": 2019}},
    {"id": "rom", "text": "Rom ist die Hauptstadt Italiens", "metadata": {"lang": "de", "year": 2024}},
    {"id": "origin", "vector": [1, 0, 0, 0, 0, 0, 0, 0], "metadata": {"lang": "none"}},
)


def test_create_upsert_query_delete_round_trip(gateway: str, tmp_path: Path) -> None:
    name = "round-trip"
    created = vectors("create", name, "--dimensions", "8", "--distance", "cosine",
                      "--embedding-provider", "fake", address=gateway)
    assert (created.returncode, created.stdout) == (0, "created collection round-trip (8 dimensions, cosine)\n")

    again = vectors("create", name, "--dimensions", "8", address=gateway)
    assert again.returncode == 1 and again.stderr.startswith("portico: error: ALREADY_EXISTS")

    listed = vectors("list", "--json", address=gateway)
    assert listed.returncode == 0
    row = next(r for r in json.loads(listed.stdout) if r["name"] == name)
    assert (row["dimensions"], row["distance"], row["embedding_provider"]) == (8, "cosine", "fake")

    source = tmp_path / "cities.jsonl"
    source.write_text(CITIES)
    upserted = vectors("upsert", name, str(source), address=gateway)
    assert upserted.returncode == 0
    assert upserted.stdout == f"upserted 4 records into {name} (3 embedded from their text)\n"
    assert upserted.stderr == ""  # no terminal, a small file: no progress bar

    query = vectors("query", name, "--text", "Paris is the capital of France", "--top-k", "2", "--json",
                    address=gateway)
    assert query.returncode == 0, query.stderr
    matches = [json.loads(line) for line in query.stdout.splitlines()]
    assert len(matches) == 2 and matches[0]["id"] == "paris"
    assert matches[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert matches[0]["text"] == "Paris is the capital of France"
    assert matches[0]["metadata"] == {"lang": "en", "year": 2024}

    filtered = vectors("query", name, "--text", "Paris is the capital of France", "--json",
                       "--filter", '{"lang": "en", "year": {"lt": 2020}}', address=gateway)
    assert [json.loads(line)["id"] for line in filtered.stdout.splitlines()] == ["berlin"]

    by_vector = vectors("query", name, "--vector", "[1, 0, 0, 0, 0, 0, 0, 0]", "--top-k", "1", address=gateway)
    table = by_vector.stdout.splitlines()
    assert table[0].split() == ["SCORE", "ID", "TEXT", "METADATA"]
    assert table[1].split()[:3] == ["1.0000", "origin", "-"]

    count = vectors("count", name, "--filter", '{"lang": ["en", "de"]}', address=gateway)
    assert (count.returncode, count.stdout) == (0, "3\n")

    by_id = vectors("delete", name, "--id", "paris", "--id", "nobody", address=gateway)
    assert (by_id.returncode, by_id.stdout) == (0, f"deleted 1 records from {name}\n")
    by_filter = vectors("delete", name, "--filter", '{"$not": {"lang": "en"}}', address=gateway)
    assert (by_filter.returncode, by_filter.stdout) == (0, f"deleted 2 records from {name}\n")

    got = vectors("get", name, "berlin", address=gateway)
    record = json.loads(got.stdout)
    assert (got.returncode, record["id"], len(record["vector"]), record["metadata"]["year"]) == (0, "berlin", 8, 2019)
    missing = vectors("get", name, "berlin", "paris", address=gateway)
    assert missing.returncode == 1 and [json.loads(line)["id"] for line in missing.stdout.splitlines()] == ["berlin"]

    dropped = vectors("delete", name, "--collection", address=gateway)
    assert (dropped.returncode, dropped.stdout) == (0, f"deleted collection {name}\n")
    gone = vectors("query", name, "--text", "anything", address=gateway)
    assert gone.returncode == 1 and gone.stderr.startswith("portico: error: NOT_FOUND")


def test_upsert_reads_stdin_in_batches_with_a_progress_bar(gateway: str, collection: str) -> None:
    lines = jsonl(*({"id": f"r{i}", "text": f"record number {i}", "metadata": {"i": i}} for i in range(250)))
    result = vectors("upsert", collection, "-", "--batch-size", "40", "--progress", address=gateway, stdin=lines)

    assert result.returncode == 0
    assert result.stdout == f"upserted 250 records into {collection} (250 embedded from their text)\n"
    assert f"upsert {collection}" in result.stderr and "250 lines" in result.stderr
    assert vectors("count", collection, "--filter", '{"i": {"gte": 200}}', address=gateway).stdout == "50\n"


def test_upsert_stops_at_a_bad_line_and_says_what_was_written(gateway: str, collection: str) -> None:
    good = jsonl({"id": "a", "text": "one"}, {"id": "b", "text": "two"})
    lines = good + "{not json\n" + jsonl({"id": "c", "text": "x"})
    result = vectors("upsert", collection, "--batch-size", "1", address=gateway, stdin=lines)

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("portico: error: line 3: not valid JSON")
    assert "the 2 records before it were upserted" in result.stderr
    assert vectors("count", collection, address=gateway).stdout == "2\n"


def test_the_gateway_refusing_a_record_names_the_field(gateway: str, collection: str) -> None:
    result = vectors("upsert", collection, address=gateway, stdin=jsonl({"id": "short", "vector": [1, 2, 3]}))

    assert result.returncode == 1
    assert result.stderr.startswith("portico: error: INVALID_ARGUMENT")
    assert "records[0].vector" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('{"text": "no id"}', 'line 1: "id" must be a non-empty string'),
        ('{"id": "x"}', 'line 1: a record needs a "vector" or a "text" to embed'),
        ('{"id": "x", "text": "t", "meta": {}}',
         "line 1: unknown key 'meta' (a record has id, vector, text and metadata)"),
        ('{"id": "x", "vector": [1, "2"]}', 'line 1: "vector" must be a list of finite numbers'),
        ('["x"]', "line 1: each line is a JSON object"),
    ],
)
def test_malformed_lines_are_refused_before_any_call(line: str, says: str) -> None:
    result = vectors("upsert", "any", address=NOWHERE, stdin=line + "\n")
    assert (result.returncode, result.stderr) == (2, f"portico: error: {says}\n")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["delete", "any"], "exactly one of --id, --filter and --collection"),
        (["delete", "any", "--id", "a", "--collection"], "(got --id and --collection)"),
        (["query", "any", "--text", "t", "--filter", "{"], "--filter is not valid JSON"),
        (["query", "any", "--text", "t", "--filter", '{"year": {"above": 1}}'], "a range takes gt, gte, lt and lte"),
        (["query", "any", "--vector", '["a"]'], "--vector must be a JSON list of numbers"),
        (["upsert", "any", "/nonexistent/records.jsonl"], "cannot read /nonexistent/records.jsonl"),
    ],
)
def test_usage_errors_exit_2_without_calling(args: list[str], says: str) -> None:
    result = vectors(*args, address=NOWHERE)
    assert result.returncode == 2 and says in result.stderr, result.stderr


def test_an_unreachable_gateway_is_one_line_and_exit_1() -> None:
    result = vectors("list", address=NOWHERE)
    assert result.returncode == 1
    assert result.stderr.startswith(f"portico: error: cannot reach the gateway at {NOWHERE}")
    assert result.stderr.count("\n") == 1


def test_every_vectors_option_has_help() -> None:
    parser = cli._parser()
    vectors_parser = parser._subparsers._group_actions[0].choices["vectors"]  # type: ignore[union-attr]
    for name, sub in vectors_parser._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        for action in sub._actions:
            assert action.help, f"portico vectors {name}: {action.dest} has no help text"


def test_the_compact_filter_syntax() -> None:
    parsed = filter_from_json('{"lang": "en", "tags": ["a", 2, true], "year": {"gte": 2020}, '
                              '"$any": [{"draft": false}, {"$not": {"author.name": "x"}}]}')
    clauses = parsed.all.filters
    assert clauses[0] == pb.Filter(equals=pb.FieldEquals(field="lang", value=pb.FilterValue(string_value="en")))
    assert [v.WhichOneof("kind") for v in getattr(clauses[1], "in").values] == [
        "string_value", "number_value", "bool_value"]
    assert clauses[2].range.field == "year" and clauses[2].range.gte == 2020 and not clauses[2].range.HasField("lt")
    assert clauses[3].any.filters[1].negate.equals.field == "author.name"
