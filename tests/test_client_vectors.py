"""`client.vectors`, blocking and asyncio, against a gateway on loopback over real gRPC."""

from __future__ import annotations

import asyncio
import datetime

import portico
import pytest
from harness import running_gateway
from portico import filters as f

CONFIG = {"providers": [{"name": "fake", "kind": "fake", "models": ["fake-chat"], "embedding_model": "fake-embed"}]}
BOOKS = [
    portico.VectorRecord("a", [1, 0, 0], {"lang": "en", "year": 2020}, text="first"),
    portico.VectorRecord("b", [0.9, 0.1, 0], {"lang": "de", "year": 2021}),
    {"id": "c", "vector": [0, 1, 0], "metadata": {"lang": "en", "year": 2022, "draft": True}},
]


async def test_async_vectors_round_trip_with_typed_records() -> None:
    async with running_gateway(CONFIG) as gw, portico.AsyncClient(gw.address) as client:
        created = await client.vectors.create_collection("books", 3, "cosine")
        assert (created.name, created.dimensions, created.distance) == ("books", 3, "cosine")
        assert created.create_time.tzinfo is datetime.UTC
        written = await client.vectors.upsert("books", BOOKS)
        assert (written.upserted, written.embedded) == (3, 0)
        matches = await client.vectors.query("books", [1, 0, 0], top_k=2)
        assert [m.id for m in matches] == ["a", "b"]
        assert matches[0].score == pytest.approx(1.0, abs=1e-6)
        assert matches[0].metadata == {"lang": "en", "year": 2020} and matches[0].text == "first"
        assert matches[0].vector == []
        english_recent = f.all_of({"lang": "en"}, f.between("year", gt=2020))
        matches = await client.vectors.query("books", [1, 0, 0], filter=english_recent, include_vectors=True,
                                             include_metadata=False)
        assert [(m.id, m.vector, m.metadata) for m in matches] == [("c", [0, 1, 0], None)]
        assert await client.vectors.count("books", f.is_in("lang", ["de", "fr"])) == 1
        assert await client.vectors.count("books", f.negate(f.eq("draft", True))) == 2
        (got,) = await client.vectors.get("books", ["c"])
        assert got == portico.VectorRecord("c", [0, 1, 0], {"lang": "en", "year": 2022, "draft": True})
        assert await client.vectors.delete("books", filter={"lang": "en"}) == 2
        assert await client.vectors.delete("books", ["b", "nope"]) == 1
        assert [c.name for c in await client.vectors.list_collections()] == ["books"]
        await client.vectors.delete_collection("books")
        with pytest.raises(portico.NotFoundError) as caught:
            await client.vectors.get_collection("books")
        assert caught.value.reason == "ERROR_REASON_NOT_FOUND"


async def test_sync_vectors_embed_text_and_raise_typed_errors() -> None:
    async with running_gateway(CONFIG) as gw:
        def work() -> None:
            with portico.Client(gw.address) as client:
                client.vectors.create_collection("notes", 32, "dot", embedding_provider="fake")
                with pytest.raises(portico.AlreadyExistsError):
                    client.vectors.create_collection("notes", 32)
                written = client.vectors.upsert("notes", [
                    portico.VectorRecord("cat", text="the cat sat on the mat", metadata={"kind": "pet"}),
                    portico.VectorRecord("sea", text="waves on a grey sea"),
                ])
                assert (written.upserted, written.embedded) == (2, 2)
                (best,) = client.vectors.query("notes", text="the cat sat on the mat", top_k=1)
                assert (best.id, best.text, best.metadata) == ("cat", "the cat sat on the mat", {"kind": "pet"})
                assert best.score == pytest.approx(1.0, abs=1e-5)  # unit vectors: the dot product of itself
                with pytest.raises(portico.InvalidArgumentError) as caught:
                    client.vectors.upsert("notes", [portico.VectorRecord("x", [1.0, 2.0])])
                assert caught.value.field_violations[0].field == "records[0].vector"
                assert client.vectors.count("notes") == 2

        await asyncio.to_thread(work)


def test_arguments_that_cannot_make_a_request_fail_before_sending() -> None:
    client = portico.Client("127.0.0.1:1")
    try:
        with pytest.raises(TypeError, match="exactly one"):
            client.vectors.query("x", [1.0], text="both")
        with pytest.raises(TypeError, match="exactly one"):
            client.vectors.delete("x")
        with pytest.raises(ValueError, match="distance"):
            client.vectors.create_collection("x", 3, "manhattan")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="at least one"):
            f.between("year")
    finally:
        client.close()
