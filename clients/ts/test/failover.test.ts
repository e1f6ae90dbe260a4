/**
 * Mid-stream failover markers and the attempt trace against a real gateway. The fake
 * provider acts out a target failing after three chunks ("one ", "two ", "thre") and
 * "backup" taking over; the request's `streamFailover` decides what the gateway does.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { Code, PorticoClient, PorticoError, Role, StreamFailover } from "../src/index.js";
import { type RunningGateway, startGateway } from "./gateway.js";

const ATTEMPTS = [
  { provider: "primary", model: "big", outcome: "error", status: "UNAVAILABLE",
    reason: "ERROR_REASON_UPSTREAM_UNAVAILABLE", duration_ms: 41.5, wait_ms: 0 },
  { provider: "backup", model: "small", outcome: "ok", status: "OK", reason: "", duration_ms: 120.25, wait_ms: 500 },
];
const EXPECTED = [
  { provider: "primary", model: "big", outcome: "error", status: "UNAVAILABLE",
    reason: "ERROR_REASON_UPSTREAM_UNAVAILABLE", durationMs: 41.5, waitMs: 0 },
  { provider: "backup", model: "small", outcome: "ok", status: "OK", reason: "", durationMs: 120.25, waitMs: 500 },
];

const CONFIG = {
  server: { address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1 },
  providers: [
    {
      name: "fake",
      kind: "fake",
      retry: { enabled: false },
      breaker: { enabled: false },
      models: ["fake-chat"],
      options: {
        chunk_size: 4,
        rules: [
          {
            when_contains: "fail over please",
            content: "one two three four five six",
            failover: { after_chunks: 3, provider: "backup", model: "small", then: { content: "the backup answer" } },
            attempts: ATTEMPTS,
            overhead_ms: 3,
          },
          {
            when_contains: "trace my failure",
            error: { reason: "UPSTREAM_BAD_REQUEST", message: "refused" },
            attempts: ATTEMPTS.slice(0, 1),
            overhead_ms: 0.5,
          },
          { when_contains: "trace me", content: "traced", attempts: ATTEMPTS, overhead_ms: 1.25 },
        ],
      },
    },
  ],
};

function request(prompt: string, streamFailover?: StreamFailover) {
  return { messages: [{ role: Role.USER, content: prompt }], ...(streamFailover === undefined ? {} : { streamFailover }) };
}

describe("stream failover and the attempt trace", () => {
  let gateway: RunningGateway;
  let client: PorticoClient;

  before(async () => {
    gateway = await startGateway(CONFIG);
    client = new PorticoClient(gateway.address, { timeoutMs: 20_000 });
  });

  after(async () => {
    client?.close();
    await gateway?.stop();
  });

  it("restart: the marker is visible and the final response holds only the second answer", async () => {
    const stream = client.stream(request("fail over please", StreamFailover.RESTART));
    const texts: string[] = [];
    const markers: number[] = [];
    for await (const chunk of stream) {
      texts.push(chunk.content);
      if (chunk.failover !== undefined) markers.push(texts.length - 1);
    }
    assert.deepEqual(texts.slice(0, 3), ["one ", "two ", "thre"]);
    assert.deepEqual(markers, [3]);
    const response = await stream.finalResponse();
    assert.equal(response.content, "the backup answer");
    assert.equal(stream.text, "the backup answer");
    assert.equal(response.model, "small");
    assert.equal(stream.failovers.length, 1);
    assert.equal(stream.failovers[0]!.mode, StreamFailover.RESTART);
    assert.equal(stream.failovers[0]!.provider, "backup");
    assert.equal(stream.failovers[0]!.reason, "ERROR_REASON_UPSTREAM_UNAVAILABLE");
    assert.deepEqual(response.attempts, EXPECTED);
    assert.equal(response.overheadMs, 3);
    assert.deepEqual(stream.trace.attempts, EXPECTED);
  });

  it("continue: the text goes on from where the first target stopped", async () => {
    const stream = client.stream(request("fail over please", StreamFailover.CONTINUE));
    const response = await stream.finalResponse();
    assert.equal(response.content, "one two thre" + "the backup answer");
    assert.equal(stream.failovers[0]!.mode, StreamFailover.CONTINUE);
  });

  it("without opting in, the stream fails with UNAVAILABLE after three chunks", async () => {
    const stream = client.stream(request("fail over please"));
    await assert.rejects(stream.finalResponse(), (error: unknown) => {
      assert.ok(error instanceof PorticoError);
      assert.equal(error.code, Code.Unavailable);
      return true;
    });
    assert.equal(stream.text, "one two thre");
    assert.deepEqual(stream.failovers, []);
  });

  it("chat answers carry the attempt trace", async () => {
    const reply = await client.chat(request("trace me"));
    assert.equal(reply.content, "traced");
    assert.deepEqual(reply.attempts, EXPECTED);
    assert.equal(reply.overheadMs, 1.25);
  });

  it("errors carry the attempt trace, unary and streamed", async () => {
    const errors: PorticoError[] = [];
    for (const call of [() => client.chat(request("trace my failure")),
                        () => client.stream(request("trace my failure")).finalResponse()]) {
      try {
        await call();
        assert.fail("the call succeeded");
      } catch (error) {
        assert.ok(error instanceof PorticoError);
        errors.push(error);
      }
    }
    for (const error of errors) {
      assert.equal(error.code, Code.InvalidArgument);
      assert.deepEqual(error.attempts, EXPECTED.slice(0, 1));
      assert.equal(error.overheadMs, 0.5);
    }
  });
});
