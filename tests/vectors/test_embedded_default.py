"""`portico serve` with no configuration (what `make serve` runs) offers VectorService:
the `fake` provider embeds, the embedded backend stores under the default data directory,
and its worker processes share what they store."""

from __future__ import annotations

import os
from pathlib import Path

import portico
from harness import spawned_gateway


def test_the_embedded_default_serves_vectors_end_to_end(tmp_path: Path) -> None:
    with spawned_gateway(None, tmp_path, "--workers", "2") as (_, address):
        # One connection per write: the kernel spreads connections over both workers,
        # so each later query reads what other processes wrote.
        for i in range(6):
            with portico.Client(address) as client:
                if i == 0:
                    client.vectors.create_collection("notes", 64, embedding_provider="fake")
                client.vectors.upsert("notes", [portico.VectorRecord(f"n{i}", text=f"note number {i}")])
        for i in range(6):
            with portico.Client(address) as client:
                assert client.vectors.count("notes") == 6
                (best,) = client.vectors.query("notes", text=f"note number {i}", top_k=1)
                assert best.id == f"n{i}" and best.text == f"note number {i}"
    # It outlives the gateway: a new one on the same data directory still has it.
    with spawned_gateway(None, tmp_path) as (_, address), portico.Client(address) as client:
        assert client.vectors.count("notes") == 6
        client.vectors.delete_collection("notes")
    assert (Path(os.environ["PORTICO_DATA_DIR"]) / "vectors" / "vectors.sqlite3").exists()
