"""The shared behaviour suite against the `embedded` backend, plus what only it does:
the graph path on collections past the exact-search size, snapshots, several processes
on one data directory."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from portico_server.vectors.embedded import EmbeddedBackend
from portico_server.vectors.memory import MemoryBackend
from portico_server.vectors.model import And, Collection, Distance, Eq, In, Range, Record, VectorBackend

from vectors.behaviour import *  # noqa: F403  (the shared behaviour tests)
from vectors.behaviour import Subject


@pytest.fixture
async def subject(tmp_path: Path) -> AsyncIterator[Subject]:
    # exact_below=0: every query goes through the graph and the over-fetching filter path,
    # so the suite proves those give the memory backend's answers.
    backends: list[VectorBackend] = [EmbeddedBackend(tmp_path, exact_below=0)]

    async def reopen() -> VectorBackend:
        await backends[-1].close()
        backends.append(EmbeddedBackend(tmp_path, exact_below=0))
        return backends[-1]

    yield Subject(backends[0], reopen=reopen)
    await backends[-1].close()


def clustered(count: int, dimensions: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dimensions)).astype(np.float32)
    points = centres[rng.integers(0, 50, count)] + 0.5 * rng.standard_normal((count, dimensions)).astype(np.float32)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def library(count: int) -> list[Record]:
    vectors = clustered(3_000, 32, 3)
    return [Record(f"r{i}", vectors[i], {"shelf": i % 10, "lang": "en" if i % 3 else "de"}) for i in range(count)]


async def test_graph_search_with_filters_agrees_with_exact_search(tmp_path: Path) -> None:
    records = library(3_000)
    embedded, memory = EmbeddedBackend(tmp_path), MemoryBackend()
    for backend in (embedded, memory):
        await backend.create_collection(Collection("lib", 32, Distance.COSINE))
        await backend.upsert("lib", records)
    queries = clustered(20, 32, 11)
    # Unfiltered (graph), a loose filter (over-fetch), a filter keeping 1 in 1,000 (exact fallback).
    for filter in (None, Eq("lang", "en"), And((Eq("shelf", 7), Range("shelf", gte=7)))):
        found = overlap = 0
        for q in queries:
            got = await embedded.query("lib", q, 10, filter)
            want = await memory.query("lib", q, 10, filter)
            assert all(filter is None or _allowed(filter, m.metadata) for m in got)
            exact = {m.id: m.score for m in want}
            # Scores are recomputed from the stored vectors: any match both report scores alike.
            assert all(abs(m.score - exact[m.id]) < 1e-5 for m in got if m.id in exact)
            found += len(got)
            overlap += len({m.id for m in got} & set(exact))
        assert found == 10 * len(queries)
        assert overlap / found >= 0.95, (filter, overlap / found)
    selective = In("shelf", (3,))
    assert await embedded.count("lib", selective) == await memory.count("lib", selective) == 300
    await embedded.close()


def _allowed(filter: object, metadata: dict[str, object] | None) -> bool:
    from portico_server.vectors.matching import matches
    return metadata is not None and matches(filter, metadata)  # type: ignore[arg-type]


async def test_a_restart_after_changes_uses_the_snapshot_and_what_came_after(tmp_path: Path) -> None:
    records = library(2_000)
    first = EmbeddedBackend(tmp_path)
    await first.create_collection(Collection("lib", 32, Distance.COSINE))
    await first.upsert("lib", records)
    await first.query("lib", records[0].vector, 1)
    await first.close()
    assert list((tmp_path / "snapshots").glob("*.usearch"))

    # A second process writes after the snapshot was taken, and dies without saving one.
    _run_child(tmp_path, """
        await backend.upsert("lib", [Record("r5", -vectors[5], {"shelf": 99})])
        await backend.delete("lib", ids=["r6"])
    """)
    second = EmbeddedBackend(tmp_path)
    (best,) = await second.query("lib", -records[5].vector, 1)
    assert (best.id, best.metadata) == ("r5", {"shelf": 99})
    assert await second.get("lib", ["r6"]) == []
    assert [m.id for m in await second.query("lib", records[6].vector, 10)].count("r6") == 0
    assert await second.count("lib") == 1_999
    await second.close()


async def test_two_processes_on_one_data_directory_see_each_others_writes(tmp_path: Path) -> None:
    ours = EmbeddedBackend(tmp_path)
    await ours.create_collection(Collection("lib", 32, Distance.COSINE))
    await ours.upsert("lib", library(1_500)[:1_400])
    assert await ours.count("lib") == 1_400
    _run_child(tmp_path, """
        await backend.upsert("lib", [Record(f"r{i}", vectors[i], {"shelf": i % 10}) for i in range(1_400, 1_500)])
        await backend.delete("lib", filter=Eq("shelf", 0))
    """)
    assert await ours.count("lib") == 1_350
    (best,) = await ours.query("lib", library(1_500)[1_401].vector, 1)
    assert best.id == "r1401"
    await ours.close()


async def test_concurrent_queries_and_writes_in_one_process(tmp_path: Path) -> None:
    records = library(2_000)
    backend = EmbeddedBackend(tmp_path)
    await backend.create_collection(Collection("lib", 32, Distance.DOT))

    async def write(start: int) -> None:
        await backend.upsert("lib", records[start : start + 100])

    async def read(i: int) -> None:
        await backend.query("lib", records[i].vector, 5)

    await asyncio.gather(*(write(s) for s in range(0, 2_000, 100)), *(read(i) for i in range(50)))
    assert await backend.count("lib") == 2_000
    for i in (0, 777, 1_999):
        (best,) = await backend.query("lib", records[i].vector, 1)
        assert best.id == f"r{i}"
    await backend.close()


def _run_child(data_dir: Path, body: str) -> None:
    """Run `body` against the same data directory in another Python process."""
    script = textwrap.dedent("""
        import asyncio, sys
        import numpy as np
        from portico_server.vectors.embedded import EmbeddedBackend
        from portico_server.vectors.model import Eq, Record
        sys.path.insert(0, {tests!r})
        from vectors.test_embedded_backend import clustered

        async def main() -> None:
            backend = EmbeddedBackend({data!r})
            vectors = clustered(3_000, 32, 3)
        {body}
        asyncio.run(main())
    """).format(tests=str(Path(__file__).parent.parent), data=str(data_dir),
                body=textwrap.indent(textwrap.dedent(body), "    "))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
