"""`postgres`: collections in PostgreSQL with the pgvector extension, so several gateway
replicas share one store.

Layout, in one schema (`portico_vectors` unless configured):
- `collections`: one row per collection (name, dimensions, distance, embedding provider
  and model, create time) and a numeric id;
- `records_<id>`: one table per collection — `id text` primary key, `embedding
  vector(N)`, `metadata jsonb`, `text` — with an HNSW index using the operator class of
  the collection's distance. The table is named by the collection's id, never its name,
  so no user text reaches a statement's text.

Every value, including filter field names, is a bind parameter; filters compile in
`pg_filters.py`. Scores mean what the `memory` backend's mean: cosine similarity is
1 - `<=>`, the dot product is -`<#>`, the negated Euclidean distance is -`<->`.

Queries run with `hnsw.iterative_scan = strict_order`: when a filter rejects many of the
nearest rows, the index scan goes on until `top_k` rows pass, in exact distance order,
instead of returning fewer.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

from pydantic import BaseModel, ConfigDict, Field

from .. import paging
from ..errors import AlreadyExists, InvalidRequest, NotFound, UpstreamConnection
from . import checks
from .model import Collection, Distance, Filter, Match, Record, Vector
from .pg_filters import compile_filter
from .registry import options, register

#: pgvector's `vector` holds at most this many dimensions ...
MAX_VECTOR_DIMENSIONS = 16_000
#: ... and its HNSW index covers at most this many; larger collections are searched exactly.
MAX_INDEXED_DIMENSIONS = 2_000
DEFAULT_SCHEMA = "portico_vectors"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
#: Serialises the one-time setup (extension, schema, table) of replicas starting at once.
_SETUP_LOCK = 0x706F727469636F  # "portico"
#: Candidates an HNSW scan keeps (pgvector's default is 40): more is better recall, slower.
DEFAULT_EF_SEARCH = 100


@dataclass(frozen=True)
class _Metric:
    operator: str
    opclass: str
    #: The score as SQL, from the operator's result in a column named `distance`.
    score: str


_METRICS = {
    Distance.COSINE: _Metric("<=>", "vector_cosine_ops", "1 - distance"),
    Distance.DOT: _Metric("<#>", "vector_ip_ops", "-distance"),
    Distance.EUCLIDEAN: _Metric("<->", "vector_l2_ops", "-distance"),
}

#: The driver's errors that mean the store cannot be reached (or was lost mid-call).
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)

#: ... and, when connecting, a refused login (a wrong password or user: the password is
#: never in the driver's message, but the error is still reported as unreachable).
_CONNECT_FAILURES: tuple[type[BaseException], ...] = (
    *_UNREACHABLE, asyncpg.exceptions.InvalidAuthorizationSpecificationError)

T = TypeVar("T")
#: A pooled connection.
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


def redact_dsn(dsn: str) -> str:
    """The DSN with its password replaced by `***`, for logs and error messages: both the
    URL form (`postgresql://user:secret@host/db`) and the key/value form (`password=secret`)."""
    redacted = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", dsn)
    redacted = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", redacted)
    return re.sub(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", redacted)


def _has_nul(value: Any) -> bool:
    """Does a JSON value hold a NUL character anywhere (Postgres text and jsonb cannot)?"""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _encode_storable(records: list[Record]) -> list[str]:
    """Each record's metadata as JSON text for `jsonb`, after refusing what Postgres cannot
    store: NUL characters, and NaN or infinite numbers (which are not JSON)."""
    encoded = []
    for i, record in enumerate(records):
        if "\x00" in record.id:
            raise InvalidRequest([(f"records[{i}].id", "holds a NUL character")])
        if record.text is not None and "\x00" in record.text:
            raise InvalidRequest([(f"records[{i}].text", "holds a NUL character, which Postgres cannot store")])
        if _has_nul(record.metadata):
            raise InvalidRequest([(f"records[{i}].metadata", "holds a NUL character, which Postgres cannot store")])
        try:
            encoded.append(json.dumps(record.metadata, allow_nan=False))
        except ValueError:
            raise InvalidRequest([(f"records[{i}].metadata", "holds NaN or an infinite number, which JSON has not")]
                                 ) from None
    return encoded


class PostgresBackend:
    """Connects on first use (so a gateway starts while its database is still coming up,
    and a failed connect is retried by the next call); `connect()` opens it at once."""

    def __init__(self, dsn: str, *, schema: str = DEFAULT_SCHEMA, min_size: int = 1, max_size: int = 10,
                 timeout: float = 10.0, ef_search: int = DEFAULT_EF_SEARCH) -> None:
        if not _IDENTIFIER.fullmatch(schema):
            raise InvalidRequest([("vectors.options.schema", "must be a lowercase SQL identifier")])
        self._dsn = dsn
        self._schema = schema
        self._sizes = (min_size, max_size)
        self._timeout = timeout
        if not 1 <= ef_search <= 1000:
            raise InvalidRequest([("vectors.options.ef_search", "must be from 1 to 1000")])
        self._ef_search = int(ef_search)
        self._where = redact_dsn(dsn)
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @classmethod
    async def connect(cls, dsn: str, **settings: Any) -> PostgresBackend:
        """A backend with its pool open. Raises `UpstreamConnection` (the password
        redacted) when the server cannot be reached."""
        backend = cls(dsn, **settings)
        await backend._open()
        return backend

    async def _open(self) -> asyncpg.Pool:
        """The pool, after creating the extension, schema and collections table if missing."""
        async with self._opening:
            if self._pool is not None:
                return self._pool
            try:
                await self._set_up(self._dsn, self._schema, self._timeout)
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=self._sizes[0], max_size=self._sizes[1], timeout=self._timeout,
                    command_timeout=self._timeout * 3, init=self._init_connection)
            except _CONNECT_FAILURES as exc:
                raise _unreachable(self._where, exc, self._dsn) from None
            except (ValueError, asyncpg.exceptions.ClientConfigurationError) as exc:
                # A DSN the driver cannot read: a configuration mistake, reported as such.
                raise UpstreamConnection(
                    f"the vector store DSN {self._where} is not valid: {_scrub(str(exc), self._dsn)}",
                    metadata={"store": "postgres"}) from None
            return self._pool

    @staticmethod
    async def _set_up(dsn: str, schema: str, timeout: float) -> None:
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SETUP_LOCK)
                try:
                    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except asyncpg.exceptions.InsufficientPrivilegeError:
                    raise UpstreamConnection(
                        "the pgvector extension is not installed in this database and this user may not "
                        "create it: run CREATE EXTENSION vector as its owner") from None
                # Checked first: even with IF NOT EXISTS, Postgres wants the CREATE privilege,
                # which a user limited to an existing schema does not have.
                if await conn.fetchval("SELECT to_regclass($1)", f"{schema}.collections") is not None:
                    return
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                await conn.execute(
                    f"""CREATE TABLE IF NOT EXISTS {schema}.collections (
                        id bigserial PRIMARY KEY,
                        name text NOT NULL UNIQUE,
                        dimensions integer NOT NULL,
                        distance text NOT NULL,
                        embedding_provider text NOT NULL DEFAULT '',
                        embedding_model text NOT NULL DEFAULT '',
                        create_time double precision NOT NULL)""")
        finally:
            await conn.close()

    # -- plumbing ---------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        pool = self._pool or await self._open()
        try:
            conn = await pool.acquire(timeout=self._timeout)
        except TimeoutError:
            raise self._error(f"no connection to the vector store at {self._where} within {self._timeout:g} s "
                              "(the server is slow or unreachable, or every pooled connection is busy)") from None
        except _UNREACHABLE as exc:
            raise _unreachable(self._where, exc, self._dsn) from None
        try:
            yield conn
        except TimeoutError:
            raise self._error(f"the vector store at {self._where} did not answer within "
                              f"{self._timeout * 3:g} s") from None
        except _UNREACHABLE as exc:
            raise _unreachable(self._where, exc, self._dsn) from None
        finally:
            await pool.release(conn)

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        await register_vector(conn)
        await conn.execute(f"SET hnsw.iterative_scan = strict_order; SET hnsw.ef_search = {self._ef_search:d}")

    @staticmethod
    def _error(message: str) -> UpstreamConnection:
        return UpstreamConnection(message, metadata={"store": "postgres"})

    async def _call(self, name: str, work: Callable[[Connection, Collection, str], Awaitable[T]]) -> T:
        """Run `work(conn, collection, table)` in one transaction on the named collection;
        NotFound when it is not there, or was deleted by another replica meanwhile."""
        async with self._connection() as conn:
            try:
                async with conn.transaction():
                    collection, table = await self._lookup(conn, name)
                    return await work(conn, collection, table)
            except asyncpg.exceptions.UndefinedTableError:
                raise NotFound("collection", name) from None

    async def _lookup(self, conn: Connection, name: str) -> tuple[Collection, str]:
        row = await conn.fetchrow(f"SELECT * FROM {self._schema}.collections WHERE name = $1", name)
        if row is None:
            raise NotFound("collection", name)
        return _collection(row), self._table(row["id"])

    def _table(self, collection_id: int) -> str:
        return f"{self._schema}.records_{int(collection_id)}"

    # -- collections --------------------------------------------------------------------

    async def create_collection(self, collection: Collection) -> Collection:
        checks.check_collection(collection)
        if collection.dimensions > MAX_VECTOR_DIMENSIONS:
            raise InvalidRequest([("collection.dimensions",
                                   f"the postgres backend stores at most {MAX_VECTOR_DIMENSIONS} dimensions")])
        metric = _METRICS[collection.distance]
        async with self._connection() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""INSERT INTO {self._schema}.collections
                    (name, dimensions, distance, embedding_provider, embedding_model, create_time)
                    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING *""",
                collection.name, collection.dimensions, collection.distance.value, collection.embedding_provider,
                collection.embedding_model, time.time())
            if row is None:
                raise AlreadyExists("collection", collection.name)
            table = self._table(row["id"])
            await conn.execute(f"""CREATE TABLE {table} (
                id text PRIMARY KEY,
                embedding vector({int(collection.dimensions)}) NOT NULL,
                metadata jsonb NOT NULL,
                text text)""")
            if collection.dimensions <= MAX_INDEXED_DIMENSIONS:
                await conn.execute(f"CREATE INDEX ON {table} USING hnsw (embedding {metric.opclass})")
            return _collection(row)

    async def get_collection(self, name: str) -> Collection:
        async with self._connection() as conn:
            collection, _ = await self._lookup(conn, name)
            return collection

    async def list_collections(self, page_size: int, page_token: str) -> tuple[list[Collection], str]:
        start = paging.decode_token(page_token)
        async with self._connection() as conn:
            rows = await conn.fetch(f"SELECT * FROM {self._schema}.collections ORDER BY name OFFSET $1 LIMIT $2",
                                    start, page_size + 1)
        page = [_collection(row) for row in rows[:page_size]]
        return page, paging.encode_token(start + page_size) if len(rows) > page_size else ""

    async def delete_collection(self, name: str) -> None:
        async with self._connection() as conn, conn.transaction():
            collection_id = await conn.fetchval(
                f"DELETE FROM {self._schema}.collections WHERE name = $1 RETURNING id", name)
            if collection_id is None:
                raise NotFound("collection", name)
            await conn.execute(f"DROP TABLE IF EXISTS {self._table(collection_id)}")

    # -- records ------------------------------------------------------------------------

    async def upsert(self, name: str, records: list[Record]) -> int:
        metadata = _encode_storable(records)

        async def work(conn: Connection, collection: Collection, table: str) -> int:
            checks.check_records(collection, records)
            await conn.executemany(
                f"""INSERT INTO {table} (id, embedding, metadata, text) VALUES ($1, $2, $3::jsonb, $4)
                    ON CONFLICT (id) DO UPDATE
                    SET embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata, text = EXCLUDED.text""",
                [(r.id, r.vector, m, r.text) for r, m in zip(records, metadata, strict=True)])
            return len(records)

        return await self._call(name, work)

    async def query(
        self, name: str, vector: Vector, top_k: int, filter: Filter | None = None,
        min_score: float | None = None, include_vectors: bool = False, include_metadata: bool = True,
    ) -> list[Match]:
        async def work(conn: Connection, collection: Collection, table: str) -> list[Match]:
            checks.check_vector(collection, vector, "vector")
            checks.check_top_k(top_k)
            metric = _METRICS[collection.distance]
            params: list[object] = [vector, top_k]
            where = ""
            if filter is not None:
                condition, filter_params = compile_filter(filter, "metadata", len(params) + 1)
                where, params = f"WHERE {condition}", params + filter_params
            outer = ""
            if min_score is not None:
                params.append(float(min_score))
                outer = f"WHERE {metric.score} >= ${len(params)}"
            # Only the columns asked for leave the server (a 1,536-dimension vector is 6 KB).
            columns = (", embedding" if include_vectors else "") + (", metadata, text" if include_metadata else "")
            # The index yields rows by distance; rows at equal distance go by id, as in `memory`.
            rows = await conn.fetch(
                f"""SELECT id, {metric.score} AS score{columns} FROM (
                        SELECT id{columns}, embedding {metric.operator} $1 AS distance
                        FROM {table} {where} ORDER BY embedding {metric.operator} $1, id LIMIT $2
                    ) AS nearest {outer} ORDER BY distance, id""",
                *params)
            return [Match(row["id"], float(row["score"]),
                          _vector(row["embedding"]) if include_vectors else None,
                          json.loads(row["metadata"]) if include_metadata else None,
                          row["text"] if include_metadata else None)
                    for row in rows]

        return await self._call(name, work)

    async def get(self, name: str, ids: list[str]) -> list[Record]:
        async def work(conn: Connection, collection: Collection, table: str) -> list[Record]:
            rows = await conn.fetch(f"SELECT * FROM {table} WHERE id = ANY($1::text[])",
                                    [i for i in ids if "\x00" not in i])
            found = {row["id"]: Record(row["id"], _vector(row["embedding"]), json.loads(row["metadata"]), row["text"])
                     for row in rows}
            return [found[i] for i in ids if i in found]

        return await self._call(name, work)

    async def delete(self, name: str, ids: list[str] | None = None, filter: Filter | None = None) -> int:
        if (ids is None) == (filter is None):
            raise InvalidRequest([("ids", "give either ids or a filter")])

        async def work(conn: Connection, collection: Collection, table: str) -> int:
            if filter is not None:
                condition, params = compile_filter(filter, "metadata")
                status = await conn.execute(f"DELETE FROM {table} WHERE {condition}", *params)
            else:
                status = await conn.execute(f"DELETE FROM {table} WHERE id = ANY($1::text[])",
                                            [i for i in ids or () if "\x00" not in i])
            return int(status.split()[-1])

        return await self._call(name, work)

    async def count(self, name: str, filter: Filter | None = None) -> int:
        async def work(conn: Connection, collection: Collection, table: str) -> int:
            if filter is None:
                return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            condition, params = compile_filter(filter, "metadata")
            return int(await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {condition}", *params))

        return await self._call(name, work)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def _collection(row: asyncpg.Record) -> Collection:
    return Collection(row["name"], row["dimensions"], Distance(row["distance"]), row["embedding_provider"],
                      row["embedding_model"], row["create_time"])


def _vector(value: Any) -> Vector:
    return np.array(value.to_numpy(), dtype=np.float32)


def _unreachable(where: str, exc: BaseException, dsn: str) -> UpstreamConnection:
    reason = _scrub(str(exc), dsn) or type(exc).__name__
    return UpstreamConnection(f"the vector store at {where} cannot be reached: {reason}",
                              metadata={"store": "postgres"})


def _scrub(text: str, dsn: str) -> str:
    """`text` (a driver's message) with any DSN in it redacted and the DSN's password
    itself, in any spelling, replaced by `***`."""
    text = redact_dsn(text)
    for secret in _passwords(dsn):
        text = text.replace(secret, "***")
    return text


def _passwords(dsn: str) -> set[str]:
    found: set[str] = set()
    try:
        password = urllib.parse.urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        found |= {password, urllib.parse.unquote(password)}
    for match in re.finditer(r"(?i)password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&#]+)", dsn):
        value = match.group(1)
        found |= {value, value.strip("'"), urllib.parse.unquote(value)}
    return {p for p in found if p}


class PostgresOptions(BaseModel):
    """`vectors.options` for `backend: postgres`."""

    model_config = ConfigDict(extra="forbid")

    #: `postgresql://user:password@host:port/database` (or key=value form); the password
    #: may instead come from PGPASSWORD. Logged and reported only with the password hidden.
    dsn: str = Field(min_length=1)
    #: The schema holding the collections table and one records table per collection.
    schema_name: str = Field(default=DEFAULT_SCHEMA, pattern=f"^{_IDENTIFIER.pattern}$")
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)
    #: Seconds to connect or to wait for a pooled connection; statements get three times this.
    timeout: float = Field(default=10.0, gt=0)
    #: HNSW candidates per query (pgvector's `hnsw.ef_search`, 1 to 1,000).
    ef_search: int = Field(default=DEFAULT_EF_SEARCH, ge=1, le=1000)


@register("postgres")
def _create(given: dict[str, Any], where: str) -> PostgresBackend:
    settings = options(PostgresOptions, given, where)
    return PostgresBackend(settings.dsn, schema=settings.schema_name, timeout=settings.timeout,
                           min_size=min(settings.pool_min, settings.pool_max), max_size=settings.pool_max,
                           ef_search=settings.ef_search)
