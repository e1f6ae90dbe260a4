"""The vector store backends side by side: upsert throughput, query latency, recall@10.

For each size (10k and 100k vectors) and width (384 and 1,536 dimensions) every backend
gets the same records upserted in batches of 1,000, then answers the same queries one at a
time (top 10, cosine, no filter, then with a filter keeping about half the records).
Recall@10 is measured against the `memory` backend's exact answers. The embedded backend
is also closed and opened again, timing the reopen and its first query (the snapshot load).

The data are synthetic unit vectors around 1,000 random centres (embeddings of real text
cluster too; uniformly random vectors would be a harder and less realistic case for any
graph index). Backends are called in-process through the VectorBackend interface, so the
figures are the backends' own, without gRPC.

    python bench/vectors.py              # 10k and 100k x 384 and 1,536 (about 10 minutes on two cores)
    python bench/vectors.py --quick      # 10k x 384 and 1,536, 100k x 384 with fewer queries
    python bench/vectors.py --sizes 10000 --dims 384 --queries 50
    python bench/vectors.py --postgres postgresql://user@127.0.0.1:5432/db   # adds pgvector

Postgres joins only when `--postgres` (or PORTICO_BENCH_POSTGRES) names a server with
the pgvector extension and its backend module is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "server"))

from portico_server.vectors.embedded import EmbeddedBackend  # noqa: E402
from portico_server.vectors.memory import MemoryBackend  # noqa: E402
from portico_server.vectors.model import Collection, Distance, Eq, Record, VectorBackend  # noqa: E402

BATCH = 1_000
TOP_K = 10


@dataclass
class Point:
    backend: str
    size: int
    dims: int
    upsert_per_s: float
    #: Per second of the process's CPU time (all threads): what a busy machine does not distort.
    upsert_per_cpu_s: float
    p50_ms: float
    cpu_p50_ms: float
    p99_ms: float
    filtered_p50_ms: float
    recall: float | None
    filtered_recall: float | None
    reopen_s: float | None = None


def dataset(size: int, dims: int, queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1_000, dims), dtype=np.float32)

    def around(count: int) -> np.ndarray:
        points = centres[rng.integers(0, len(centres), count)]
        points += 0.6 * rng.standard_normal((count, dims), dtype=np.float32)
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        return points

    return around(size), around(queries)


async def upsert_all(backend: VectorBackend, vectors: np.ndarray) -> tuple[float, float]:
    """Records per second of wall time and of CPU time."""
    await backend.create_collection(Collection("bench", vectors.shape[1], Distance.COSINE))
    start, cpu = time.perf_counter(), time.process_time()
    for first in range(0, len(vectors), BATCH):
        chunk = vectors[first : first + BATCH]
        await backend.upsert("bench", [Record(f"v{first + i}", v, {"half": (first + i) % 2})
                                       for i, v in enumerate(chunk)])
    return len(vectors) / (time.perf_counter() - start), len(vectors) / (time.process_time() - cpu)


async def ask(backend: VectorBackend, queries: np.ndarray,
              filtered: bool) -> tuple[list[float], list[float], list[list[str]]]:
    seconds, cpu_seconds, answers = [], [], []
    where = Eq("half", 1) if filtered else None
    for q in queries:
        start, cpu = time.perf_counter(), time.process_time()
        matches = await backend.query("bench", q, TOP_K, where, include_metadata=False)
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu)
        answers.append([m.id for m in matches])
    return seconds, cpu_seconds, answers


def recall(found: list[list[str]], truth: list[list[str]]) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True) if t]))


def ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(seconds, q) * 1000)


Answers = tuple[list[list[str]], list[list[str]]]


async def measure(name: str, open_backend: Callable[[], Awaitable[VectorBackend]], vectors: np.ndarray,
                  queries: np.ndarray, truth: Answers | None,
                  reopen: Callable[[VectorBackend], Awaitable[VectorBackend]] | None = None) -> tuple[Point, Answers]:
    backend = await open_backend()
    try:
        rate, cpu_rate = await upsert_all(backend, vectors)
        await ask(backend, queries[:5], False)  # warm-up: first-use loading is not a query's cost
        plain, plain_cpu, plain_ids = await ask(backend, queries, False)
        filtered, _, filtered_ids = await ask(backend, queries, True)
        reopen_s = None
        if reopen is not None:
            start = time.perf_counter()
            backend = await reopen(backend)
            await backend.query("bench", queries[0], TOP_K)
            reopen_s = time.perf_counter() - start
    finally:
        await backend.close()
    point = Point(name, len(vectors), vectors.shape[1], rate, cpu_rate, ms(plain, 50), ms(plain_cpu, 50), ms(plain, 99),
                  ms(filtered, 50),
                  recall(plain_ids, truth[0]) if truth else None, recall(filtered_ids, truth[1]) if truth else None,
                  reopen_s)
    return point, (plain_ids, filtered_ids)


def postgres_opener(dsn: str) -> Callable[[], Awaitable[VectorBackend]] | None:
    try:
        from portico_server.vectors import postgres  # type: ignore[attr-defined]
    except ImportError as e:
        print(f"postgres: skipped, its backend is not importable ({e})", file=sys.stderr)
        return None

    async def open_backend() -> VectorBackend:
        backend_class = postgres.PostgresBackend
        connect = getattr(backend_class, "connect", None)
        backend: VectorBackend = await connect(dsn) if connect else backend_class(dsn)
        with contextlib.suppress(Exception):  # a previous run's collection (NotFound when there is none)
            await backend.delete_collection("bench")
        return backend
    return open_backend


async def run(sizes: list[int], dims: list[int], query_count: int, dsn: str | None) -> list[Point]:
    points: list[Point] = []
    for size in sizes:
        for width in dims:
            vectors, queries = dataset(size, width, query_count)
            print(f"-- {size:,} x {width}", file=sys.stderr, flush=True)

            async def memory() -> VectorBackend:
                return MemoryBackend()
            point, truth = await measure("memory", memory, vectors, queries, None)
            points.append(point)
            print(point, file=sys.stderr, flush=True)

            directory = Path(tempfile.mkdtemp(prefix="portico-vectors-bench-"))
            try:
                async def embedded(directory: Path = directory) -> VectorBackend:
                    return EmbeddedBackend(directory)

                async def reopen(backend: VectorBackend, directory: Path = directory) -> VectorBackend:
                    await backend.close()
                    return EmbeddedBackend(directory)
                point, _ = await measure("embedded", embedded, vectors, queries, truth, reopen)
                points.append(point)
                print(point, file=sys.stderr, flush=True)
            finally:
                shutil.rmtree(directory, ignore_errors=True)

            if dsn and (opener := postgres_opener(dsn)):
                point, _ = await measure("postgres", opener, vectors, queries, truth)
                points.append(point)
                print(point, file=sys.stderr, flush=True)
    return points


def table(points: list[Point]) -> str:
    lines = ["| backend | vectors | dims | upserts/s | upserts/CPU-s | query p50 | CPU p50 | query p99 | filtered p50 "
             "| recall@10 | filtered recall@10 | reopen + first query |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        lines.append(
            f"| {p.backend} | {p.size:,} | {p.dims:,} | {p.upsert_per_s:,.0f} | {p.upsert_per_cpu_s:,.0f} "
            f"| {p.p50_ms:.2f} ms | {p.cpu_p50_ms:.2f} ms | {p.p99_ms:.2f} ms "
            f"| {p.filtered_p50_ms:.2f} ms | {'exact' if p.recall is None else f'{p.recall:.3f}'} "
            f"| {'exact' if p.filtered_recall is None else f'{p.filtered_recall:.3f}'} "
            f"| {'' if p.reopen_s is None else f'{p.reopen_s:.2f} s'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k x 384 and 1,536, 100k x 384; 100 queries")
    parser.add_argument("--sizes", type=int, nargs="+", help="collection sizes (default 10000 100000)")
    parser.add_argument("--dims", type=int, nargs="+", help="dimensions (default 384 1536)")
    parser.add_argument("--queries", type=int, help="queries per point (default 200; 100 with --quick)")
    parser.add_argument("--postgres", default=os.environ.get("PORTICO_BENCH_POSTGRES"),
                        help="a PostgreSQL URL with pgvector, to measure the postgres backend too")
    args = parser.parse_args()
    query_count = args.queries or (100 if args.quick else 200)
    started = time.perf_counter()
    points: list[Point] = []
    if args.sizes or args.dims or not args.quick:
        sizes, dims = args.sizes or [10_000, 100_000], args.dims or [384, 1_536]
        points = asyncio.run(run(sizes, dims, query_count, args.postgres))
    else:
        points = asyncio.run(run([10_000], [384, 1_536], query_count, args.postgres))
        points += asyncio.run(run([100_000], [384], query_count, args.postgres))
    print(f"bench/vectors.py{' --quick' if args.quick else ''}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{time.perf_counter() - started:.0f} s; {os.cpu_count()} cores, {platform.machine()}, "
          f"python {platform.python_version()}; {query_count} queries per point, top {TOP_K}, cosine\n")
    print(table(points))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
