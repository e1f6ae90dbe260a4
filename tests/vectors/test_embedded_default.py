"""`portico serve` with no configuration (what `make serve` runs) offers VectorService:
the `fake` provider embeds, the default backend stores."""

from __future__ import annotations

from pathlib import Path

import portico
from harness import spawned_gateway


def test_the_embedded_default_serves_vectors_end_to_end(tmp_path: Path) -> None:
    with spawned_gateway(None, tmp_path, "--workers", "2") as (_, address), portico.Client(address) as client:
        client.vectors.create_collection("notes", 64, embedding_provider="fake")
        written = client.vectors.upsert("notes", [portico.VectorRecord("cat", text="the cat sat on the mat"),
                                                  portico.VectorRecord("sea", text="waves on a grey sea")])
        assert written.embedded == 2
        (best,) = client.vectors.query("notes", text="waves on a grey sea", top_k=1)
        assert best.id == "sea" and best.text == "waves on a grey sea"
        client.vectors.delete_collection("notes")
    (log,) = tmp_path.glob("gateway-*/serve.log")
    # The memory backend is per process: the operator is told so when there are several.
    assert "each of the 2 workers keeps its own collections" in log.read_text()
