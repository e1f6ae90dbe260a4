/**
 * Retries against a real gateway of their own. Each fake provider answers from a script
 * consumed one reply per request the gateway receives, so what the next call gets shows
 * how many requests the previous one made.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { Code, PorticoClient, PorticoError, type RetryPolicy, Role, type StreamChunk } from "../src/index.js";
import { type RunningGateway, startGateway } from "./gateway.js";

const UNSAFE = { error: { reason: "UPSTREAM_UNAVAILABLE", message: "upstream said 500" } };
const OVERLOADED = { error: { reason: "UPSTREAM_OVERLOADED", message: "upstream said 529" } };
const SHUTTING_DOWN = { error: { reason: "SHUTTING_DOWN", message: "draining" } };
const REFUSED = { error: { reason: "UPSTREAM_CONNECTION", message: "connection refused", retry_safe: true } };

function scripted(name: string, replies: unknown[]): Record<string, unknown> {
  return {
    name, kind: "fake", models: ["m"], options: { chunk_size: 4, replies },
    retry: { enabled: false }, breaker: { enabled: false },
  };
}

const CONFIG = {
  server: { address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1 },
  providers: [
    scripted("unsafe", [UNSAFE, { content: "one" }, UNSAFE, { content: "two" }]),
    scripted("safe", [OVERLOADED, REFUSED, { content: "third time lucky" }, { content: "next" }]),
    scripted("capped", [
      SHUTTING_DOWN, SHUTTING_DOWN, SHUTTING_DOWN, { content: "fourth" }, SHUTTING_DOWN, { content: "after" },
    ]),
    scripted("streams", [
      OVERLOADED,
      { content: "streamed" },
      { content: "partial answer", error: { reason: "UPSTREAM_OVERLOADED", message: "midway", after_chunks: 1 } },
      { content: "still queued" },
    ]),
    scripted("patient", [
      { error: { reason: "UPSTREAM_OVERLOADED", message: "busy", retry_after: 30 } },
      { content: "too late" },
    ]),
  ],
};

/** Fast retries keep the tests quick; the rule under test does not depend on timing. */
const QUICK: RetryPolicy = { initialBackoffMs: 10, maxBackoffMs: 50 };

function request(provider: string): { provider: string; messages: { role: Role; content: string }[] } {
  return { provider, messages: [{ role: Role.USER, content: "hi" }] };
}

async function failure(call: () => Promise<unknown>): Promise<PorticoError> {
  try {
    await call();
  } catch (error) {
    assert.ok(error instanceof PorticoError, `expected a PorticoError, got ${String(error)}`);
    return error;
  }
  assert.fail("the call succeeded but should have failed");
}

async function text(chunks: AsyncIterable<StreamChunk>, seen: string[] = []): Promise<string> {
  for await (const chunk of chunks) {
    seen.push(chunk.content);
  }
  return seen.join("");
}

describe("retries", () => {
  let gateway: RunningGateway;
  const clients: PorticoClient[] = [];
  const connect = (retry: RetryPolicy | false, timeoutMs = 20_000): PorticoClient => {
    const client = new PorticoClient(gateway.address, { retry, timeoutMs });
    clients.push(client);
    return client;
  };

  before(async () => {
    gateway = await startGateway(CONFIG);
  });

  after(async () => {
    for (const client of clients) {
      client.close();
    }
    await gateway?.stop();
  });

  it("attempts an UNAVAILABLE that is not retry-safe once, unary or streamed", async () => {
    const client = connect(QUICK);
    const error = await failure(() => client.chat(request("unsafe")));
    assert.equal(error.code, Code.Unavailable);
    assert.equal(error.metadata["retry_safe"], "false");
    assert.equal(error.retrySafe, false);
    // Had the client retried, the failed call would have consumed "one".
    assert.equal((await client.chat(request("unsafe"))).content, "one");
    await failure(() => text(client.stream(request("unsafe"))));
    assert.equal((await client.chat(request("unsafe"))).content, "two");
  });

  it("retries a retry-safe UNAVAILABLE until it succeeds", async () => {
    const client = connect(QUICK);
    assert.equal((await client.chat(request("safe"))).content, "third time lucky");
    // Exactly three requests: the fourth reply is still queued.
    assert.equal((await client.chat(request("safe"))).content, "next");
  });

  it("stops at the policy's maxAttempts, and `retry: false` makes one attempt", async () => {
    const twice = connect({ ...QUICK, maxAttempts: 2 });
    const error = await failure(() => twice.chat(request("capped")));
    assert.equal(error.reason, "ERROR_REASON_SHUTTING_DOWN");
    assert.equal(error.retrySafe, true);
    // Two attempts used two of the three failures, so a single attempt meets the third.
    const once = connect(false);
    await failure(() => once.chat(request("capped")));
    assert.equal((await once.chat(request("capped"))).content, "fourth");
    await failure(() => once.chat(request("capped")));
    assert.equal((await once.chat(request("capped"))).content, "after");
  });

  it("retries a stream before its first chunk and never after", async () => {
    const client = connect(QUICK);
    assert.equal(await text(client.stream(request("streams"))), "streamed");
    const seen: string[] = [];
    const error = await failure(() => text(client.stream(request("streams")), seen));
    assert.deepEqual(seen, ["part"]);
    assert.equal(error.reason, "ERROR_REASON_UPSTREAM_OVERLOADED");
    assert.equal(error.retrySafe, false);
    assert.equal((await client.chat(request("streams"))).content, "still queued");
  });

  it("honours a RetryInfo delay but never waits past the deadline", async () => {
    const client = connect(QUICK, 2_000);
    const started = performance.now();
    const error = await failure(() => client.chat(request("patient")));
    const elapsed = performance.now() - started;
    assert.equal(error.code, Code.Unavailable);
    assert.equal(error.retryAfterMs, 30_000);
    assert.ok(elapsed < 2_000, `the call took ${elapsed} ms: it waited past its deadline`);
    assert.equal((await client.chat(request("patient"))).content, "too late");
  });

  it("refuses a retry policy that makes no sense", () => {
    assert.throws(() => new PorticoClient("127.0.0.1:1", { retry: { maxAttempts: 0 } }), RangeError);
    assert.throws(() => new PorticoClient("127.0.0.1:1", { retry: { initialBackoffMs: 0 } }), RangeError);
  });
});
