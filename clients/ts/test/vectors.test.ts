/**
 * `client.vectors` against a real gateway on its default vector store, with the fake
 * provider embedding text: the same text always gets the same vector, so a query with a
 * stored text finds that record with score 1.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { Code, Distance, PorticoClient, PorticoError, where } from "../src/index.js";
import { type RunningGateway, startGateway } from "./gateway.js";

const CONFIG = {
  server: { health_probe_interval: 0, shutdown_grace: 1 },
  providers: [
    {
      name: "fake",
      kind: "fake",
      retry: { enabled: false },
      breaker: { enabled: false },
      models: ["fake-chat", "fake-embed"],
      default_model: "fake-chat",
      embedding_model: "fake-embed",
      options: { embedding_dimensions: 16 },
    },
  ],
};

describe("client.vectors", () => {
  let gateway: RunningGateway;
  let client: PorticoClient;

  before(async () => {
    gateway = await startGateway(CONFIG);
    client = new PorticoClient(gateway.address, { apiKey: "", timeoutMs: 30_000 });
  });

  after(async () => {
    client?.close();
    await gateway?.stop();
  });

  it("creates a collection, upserts text, queries it and deletes", async () => {
    // Unique per run: the default store may outlive the gateway.
    const name = `ts-test-${process.pid}`;
    const vectors = client.vectors;

    const created = await vectors.createCollection({
      name,
      dimensions: 16,
      distance: Distance.COSINE,
      embeddingProvider: "fake",
    });
    assert.equal(created.name, name);
    assert.equal(created.dimensions, 16);
    await assert.rejects(
      vectors.createCollection({ name, dimensions: 16, distance: Distance.COSINE }),
      (error: unknown) => error instanceof PorticoError && error.code === Code.AlreadyExists,
    );

    const upserted = await vectors.upsert(name, [
      { id: "paris", text: "Paris is the capital of France", metadata: { lang: "en", year: 2024 } },
      { id: "berlin", text: "Berlin is the capital of Germany", metadata: { lang: "en", year: 2019 } },
      { id: "rom", text: "Rom ist die Hauptstadt Italiens", metadata: { lang: "de", year: 2024 } },
    ]);
    assert.deepEqual([upserted.upsertedCount, upserted.embeddedCount], [3, 3]);

    const matches = await vectors.query(name, { text: "Paris is the capital of France", topK: 2 });
    assert.equal(matches.length, 2);
    assert.equal(matches[0]!.id, "paris");
    assert.ok(Math.abs(matches[0]!.score - 1) < 1e-5, `score ${matches[0]!.score}`);
    assert.equal(matches[0]!.text, "Paris is the capital of France");
    assert.deepEqual(matches[0]!.metadata, { lang: "en", year: 2024 });

    const filtered = await vectors.query(name, {
      text: "Paris is the capital of France",
      filter: where.all(where.eq("lang", "en"), where.range("year", { lt: 2020 })),
    });
    assert.deepEqual(filtered.map((m) => m.id), ["berlin"]);

    await assert.rejects(vectors.query(name, { vector: [1, 2, 3] }), (error: unknown) => {
      assert.ok(error instanceof PorticoError);
      assert.equal(error.code, Code.InvalidArgument);
      assert.ok(
        error.fieldViolations.some((v) => v.field === "vector"),
        JSON.stringify(error.fieldViolations),
      );
      return true;
    });

    assert.equal(await vectors.delete(name, ["paris", "nobody"]), 1);
    assert.equal(await vectors.deleteWhere(name, where.eq("lang", "de")), 1);
    const left = await vectors.get(name, ["paris", "berlin", "rom"]);
    assert.deepEqual(left.map((r) => r.id), ["berlin"]);
    assert.equal(left[0]!.vector.length, 16);
    assert.equal(await vectors.count(name), 1);

    await vectors.deleteCollection(name);
    await assert.rejects(
      vectors.getCollection(name),
      (error: unknown) => error instanceof PorticoError && error.code === Code.NotFound,
    );
  });
});
