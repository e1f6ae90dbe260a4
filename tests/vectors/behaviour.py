"""The behaviour every vector backend shares.

A backend's test module imports these tests and defines the `subject` fixture:

    from vectors.behaviour import *  # noqa: F403  (the shared behaviour tests)

    @pytest.fixture
    async def subject(tmp_path):
        backend = MyBackend(tmp_path)
        yield Subject(backend, reopen=...)   # reopen: None when nothing persists
        await backend.close()

`reopen` closes the backend and opens a new one on the same store. A backend that keeps
nothing across a restart deletes the restart tests from its module after the star import
(`PERSISTENCE_TESTS` names them), so they are not collected for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import pytest
from portico_server.errors import AlreadyExists, InvalidRequest, NotFound
from portico_server.vectors.model import (
    And,
    Collection,
    Distance,
    Eq,
    In,
    Not,
    Or,
    Range,
    Record,
    VectorBackend,
)


@dataclass
class Subject:
    backend: VectorBackend
    #: Close the backend and open another on the same store; None when nothing persists.
    reopen: Callable[[], Awaitable[VectorBackend]] | None = None


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def unit(dimensions: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dimensions).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


BOOKS = [
    Record("a", vec(1, 0, 0), {"lang": "en", "year": 2020, "tags": {"genre": "poetry"}}, "first"),
    Record("b", vec(0.9, 0.1, 0), {"lang": "de", "year": 2021, "rating": 4.5}),
    Record("c", vec(0, 1, 0), {"lang": "en", "year": 2022, "draft": True}),
    Record("d", vec(0, 0, 1), {"lang": "fr", "year": 2023, "tags": {"genre": "prose"}}),
    Record("e", vec(-1, 0, 0), {"lang": "en", "year": "2024"}),
]


async def books(backend: VectorBackend, distance: Distance = Distance.COSINE, name: str = "books") -> None:
    await backend.create_collection(Collection(name, 3, distance))
    await backend.upsert(name, [Record(r.id, r.vector.copy(), dict(r.metadata), r.text) for r in BOOKS])


async def ids_of(backend: VectorBackend, query: np.ndarray, **options: object) -> list[str]:
    matches = await backend.query("books", query, options.pop("top_k", 10), **options)  # type: ignore[arg-type]
    return [m.id for m in matches]


# -- collections ------------------------------------------------------------------------

async def test_create_get_list_delete_collection(subject: Subject) -> None:
    backend = subject.backend
    created = await backend.create_collection(
        Collection("docs", 384, Distance.DOT, embedding_provider="fake", embedding_model="fake-embed"))
    assert created.create_time > 0
    got = await backend.get_collection("docs")
    assert (got.name, got.dimensions, got.distance, got.embedding_provider, got.embedding_model) == (
        "docs", 384, Distance.DOT, "fake", "fake-embed")
    assert got.create_time == pytest.approx(created.create_time, abs=1e-3)
    page, token = await backend.list_collections(10, "")
    assert [c.name for c in page] == ["docs"] and token == ""
    await backend.delete_collection("docs")
    with pytest.raises(NotFound):
        await backend.get_collection("docs")
    assert (await backend.list_collections(10, ""))[0] == []


async def test_creating_an_existing_collection_is_already_exists(subject: Subject) -> None:
    await subject.backend.create_collection(Collection("docs", 3, Distance.COSINE))
    with pytest.raises(AlreadyExists):
        await subject.backend.create_collection(Collection("docs", 8, Distance.DOT))
    assert (await subject.backend.get_collection("docs")).dimensions == 3


async def test_list_collections_pages_through_every_name_in_order(subject: Subject) -> None:
    names = [f"c{i:02d}" for i in range(7)]
    for name in reversed(names):
        await subject.backend.create_collection(Collection(name, 2, Distance.EUCLIDEAN))
    seen, token = [], ""
    for _ in range(10):
        page, token = await subject.backend.list_collections(3, token)
        assert len(page) <= 3
        seen += [c.name for c in page]
        if not token:
            break
    assert seen == names


async def test_unknown_collection_is_not_found_everywhere(subject: Subject) -> None:
    backend = subject.backend
    calls = [
        backend.get_collection("nope"), backend.delete_collection("nope"),
        backend.upsert("nope", [Record("x", vec(1, 0, 0), {})]),
        backend.query("nope", vec(1, 0, 0), 3), backend.get("nope", ["x"]),
        backend.delete("nope", ids=["x"]), backend.count("nope"),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            await call


async def test_a_deleted_collection_takes_its_records_with_it(subject: Subject) -> None:
    await books(subject.backend)
    await subject.backend.delete_collection("books")
    await subject.backend.create_collection(Collection("books", 3, Distance.COSINE))
    assert await subject.backend.count("books") == 0


# -- upsert, get, count ----------------------------------------------------------------

async def test_upsert_then_get_returns_what_was_stored(subject: Subject) -> None:
    await books(subject.backend)
    records = await subject.backend.get("books", ["d", "missing", "a"])
    assert [r.id for r in records] == ["d", "a"]
    d, a = records
    np.testing.assert_allclose(d.vector, [0, 0, 1])
    assert d.vector.dtype == np.float32
    assert d.metadata == {"lang": "fr", "year": 2023, "tags": {"genre": "prose"}} and d.text is None
    assert a.text == "first" and a.metadata["tags"] == {"genre": "poetry"}
    assert await subject.backend.count("books") == 5


async def test_upsert_overwrites_a_record_with_the_same_id_whole(subject: Subject) -> None:
    await books(subject.backend)
    written = await subject.backend.upsert("books", [Record("a", vec(0, 0, -1), {"lang": "la"})])
    assert written == 1
    assert await subject.backend.count("books") == 5
    (a,) = await subject.backend.get("books", ["a"])
    np.testing.assert_allclose(a.vector, [0, 0, -1])
    assert a.metadata == {"lang": "la"} and a.text is None
    assert await ids_of(subject.backend, vec(0, 0, -1), top_k=1) == ["a"]


async def test_wrong_dimension_is_invalid_and_names_the_record(subject: Subject) -> None:
    await books(subject.backend)
    good = Record("z", vec(1, 1, 1), {})
    with pytest.raises(InvalidRequest) as caught:
        await subject.backend.upsert("books", [good, Record("y", vec(1, 2), {})])
    assert caught.value.violations[0][0] == "records[1].vector"
    assert "3 dimensions" in caught.value.violations[0][1]
    assert await subject.backend.count("books") == 5  # nothing of a refused request is written
    with pytest.raises(InvalidRequest) as caught:
        await subject.backend.query("books", vec(1, 0, 0, 0), 3)
    assert caught.value.violations[0][0] == "vector"


async def test_repeated_ids_in_one_upsert_are_refused(subject: Subject) -> None:
    await subject.backend.create_collection(Collection("docs", 2, Distance.DOT))
    with pytest.raises(InvalidRequest) as caught:
        await subject.backend.upsert("docs", [Record("x", vec(1, 0), {}), Record("x", vec(0, 1), {})])
    assert caught.value.violations[0][0] == "records[1].id"


# -- query ---------------------------------------------------------------------------

async def test_cosine_query_orders_by_similarity_with_exact_scores(subject: Subject) -> None:
    await books(subject.backend)
    matches = await subject.backend.query("books", vec(2, 0, 0), 3)
    assert [m.id for m in matches] == ["a", "b", "c"]
    assert matches[0].score == pytest.approx(1.0, abs=1e-5)
    assert matches[1].score == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-5)
    assert matches[2].score == pytest.approx(0.0, abs=1e-5)
    assert matches[0].metadata == BOOKS[0].metadata and matches[0].text == "first"
    assert matches[0].vector is None


async def test_dot_and_euclidean_scores_are_higher_is_better(subject: Subject) -> None:
    backend = subject.backend
    await backend.create_collection(Collection("dot", 2, Distance.DOT))
    await backend.create_collection(Collection("l2", 2, Distance.EUCLIDEAN))
    records = [Record("short", vec(1, 0), {}), Record("long", vec(3, 0), {}), Record("away", vec(0, 5), {})]
    for name in ("dot", "l2"):
        await backend.upsert(name, [Record(r.id, r.vector.copy(), {}) for r in records])
    dot = await backend.query("dot", vec(1, 0), 3)
    assert [(m.id, round(m.score, 4)) for m in dot] == [("long", 3.0), ("short", 1.0), ("away", 0.0)]
    l2 = await backend.query("l2", vec(1, 0), 3)
    assert [(m.id, round(m.score, 4)) for m in l2] == [
        ("short", 0.0), ("long", -2.0), ("away", round(-float(np.hypot(1, 5)), 4))]


async def test_top_k_min_score_and_what_to_include(subject: Subject) -> None:
    await books(subject.backend)
    assert await ids_of(subject.backend, vec(1, 0, 0), top_k=2) == ["a", "b"]
    assert await ids_of(subject.backend, vec(1, 0, 0), min_score=0.5) == ["a", "b"]
    (bare,) = await subject.backend.query("books", vec(1, 0, 0), 1, include_vectors=True, include_metadata=False)
    assert bare.metadata is None and bare.text is None
    assert bare.vector is not None
    np.testing.assert_allclose(bare.vector, [1, 0, 0])


async def test_query_of_an_empty_collection_is_empty(subject: Subject) -> None:
    await subject.backend.create_collection(Collection("empty", 3, Distance.COSINE))
    assert await subject.backend.query("empty", vec(1, 0, 0), 5) == []


async def test_exact_top_10_of_random_unit_vectors(subject: Subject) -> None:
    """Small enough for any index to be exact: the order equals numpy's."""
    dims = 32
    await subject.backend.create_collection(Collection("rand", dims, Distance.COSINE))
    points = np.stack([unit(dims, seed) for seed in range(300)])
    await subject.backend.upsert("rand", [Record(f"r{i}", p, {"i": i}) for i, p in enumerate(points)])
    query = unit(dims, 10_000)
    expected = [f"r{i}" for i in np.argsort(-(points @ query))[:10]]
    matches = await subject.backend.query("rand", query, 10)
    assert [m.id for m in matches] == expected
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


# -- filters -------------------------------------------------------------------------

@pytest.mark.parametrize(("clause", "expected"), [
    (Eq("lang", "en"), ["a", "c", "e"]),
    (Eq("year", 2021), ["b"]),
    (Eq("year", 2021.0), ["b"]),
    (Eq("year", 2024), []),                      # "2024" is a string, never a number
    (Eq("draft", True), ["c"]),
    (Eq("tags.genre", "prose"), ["d"]),          # a dotted path reaches into objects
    (In("lang", ("de", "fr")), ["b", "d"]),
    (Range("year", gte=2021, lt=2023), ["b", "c"]),
    (Range("year", gt=2022), ["d"]),             # e's year is a string: no range matches it
    (Range("rating", lte=4.5), ["b"]),
    (And((Eq("lang", "en"), Range("year", lte=2021))), ["a"]),
    (Or((Eq("lang", "fr"), Eq("draft", True))), ["c", "d"]),
    (Not(Eq("lang", "en")), ["b", "d"]),
    (Not(Range("rating", gte=0)), ["a", "c", "d", "e"]),  # a missing field fails the range
    (Eq("lang", "en' OR '1'='1"), []),           # a value stays a value
    (Eq("lang'; DROP TABLE books; --", "en"), []),
])
async def test_filters(subject: Subject, clause: object, expected: list[str]) -> None:
    await books(subject.backend)
    got = await subject.backend.query("books", vec(1, 1, 1), 10, filter=clause)  # type: ignore[arg-type]
    assert sorted(m.id for m in got) == expected
    assert await subject.backend.count("books", clause) == len(expected)  # type: ignore[arg-type]
    assert await subject.backend.count("books") == 5


async def test_filter_keeps_the_best_matches_among_those_it_allows(subject: Subject) -> None:
    await books(subject.backend)
    assert await ids_of(subject.backend, vec(1, 0, 0), top_k=2, filter=Eq("lang", "en")) == ["a", "c"]


# -- delete --------------------------------------------------------------------------

async def test_delete_by_ids_counts_only_what_was_there(subject: Subject) -> None:
    await books(subject.backend)
    assert await subject.backend.delete("books", ids=["a", "zzz", "c"]) == 2
    assert sorted(await ids_of(subject.backend, vec(1, 1, 1))) == ["b", "d", "e"]
    assert await subject.backend.get("books", ["a"]) == []


async def test_delete_by_filter(subject: Subject) -> None:
    await books(subject.backend)
    assert await subject.backend.delete("books", filter=Eq("lang", "en")) == 3
    assert sorted(await ids_of(subject.backend, vec(1, 1, 1))) == ["b", "d"]
    assert await subject.backend.delete("books", filter=Eq("lang", "en")) == 0


async def test_deleted_ids_can_be_written_again(subject: Subject) -> None:
    await books(subject.backend)
    await subject.backend.delete("books", ids=["a"])
    await subject.backend.upsert("books", [Record("a", vec(0, 1, 1), {"again": True})])
    (a,) = await subject.backend.get("books", ["a"])
    assert a.metadata == {"again": True}
    assert await subject.backend.count("books") == 5


async def test_concurrent_upserts_all_land(subject: Subject) -> None:
    await subject.backend.create_collection(Collection("busy", 8, Distance.DOT))

    async def write(batch: int) -> int:
        records = [Record(f"{batch}-{i}", unit(8, batch * 100 + i), {"batch": batch}) for i in range(25)]
        return await subject.backend.upsert("busy", records)

    assert sum(await asyncio.gather(*(write(b) for b in range(8)))) == 200
    assert await subject.backend.count("busy") == 200
    assert await subject.backend.count("busy", Eq("batch", 3)) == 25


# -- restart ------------------------------------------------------------------------

async def test_records_survive_a_restart(subject: Subject) -> None:
    if subject.reopen is None:
        pytest.fail("persistent backends only: define `reopen`, or import the suite without this test")
    await books(subject.backend, Distance.EUCLIDEAN)
    reopened = await subject.reopen()
    collection = await reopened.get_collection("books")
    assert (collection.dimensions, collection.distance) == (3, Distance.EUCLIDEAN)
    assert await reopened.count("books") == 5
    (a,) = await reopened.get("books", ["a"])
    assert a.metadata == BOOKS[0].metadata and a.text == "first"
    assert [m.id for m in await reopened.query("books", vec(1, 0, 0), 1)] == ["a"]


PERSISTENCE_TESTS = ("test_records_survive_a_restart",)
