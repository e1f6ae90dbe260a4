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
/** A provider's 429 with Retry-After: 0.3 s, as the gateway passes it on (RetryInfo, retry-safe). */
const RATE_LIMITED = { error: { reason: "UPSTREAM_RATE_LIMITED", message: "slow down", retry_after: 0.3 } };
const HINTED_DELAY_MS = 300;

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
    scripted("limited", [RATE_LIMITED, { content: "ok" }, { content: "next" }]),
    scripted("limited-stream", [RATE_LIMITED, { content: "streamed ok" }, { content: "next" }]),
    scripted("limited-unsafe", [
      { error: { reason: "UPSTREAM_RATE_LIMITED", message: "slow down", retry_after: 0.3, retry_safe: false } },
      { content: "not retried" },
    ]),
    scripted("quota", [{ error: { reason: "UPSTREAM_QUOTA_EXCEEDED", message: "out of credit" } }, { content: "later" }]),
    scripted("far-off", [
      { error: { reason: "UPSTREAM_RATE_LIMITED", message: "come back tomorrow", retry_after: 61 } },
      { content: "queued" },
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

  it("retries a 429 with RetryInfo once, after the hinted delay, and the answer carries its trace", async () => {
    const client = connect({}); // the defaults: the hint, not the backoff, sets the wait
    const started = performance.now();
    const reply = await client.chat(request("limited"));
    const elapsed = performance.now() - started;
    assert.equal(reply.content, "ok");
    assert.ok(elapsed >= HINTED_DELAY_MS - 5, `retried after ${elapsed} ms, before the hinted ${HINTED_DELAY_MS} ms`);
    assert.ok(elapsed < HINTED_DELAY_MS + 1_500, `retried after ${elapsed} ms, long after the hint`);
    // One retry: the gateway got two requests, so the next call meets the third reply.
    assert.equal((await client.chat(request("limited"))).content, "next");
    // The trace is the gateway's view of the call that answered: one attempt, at "limited".
    assert.deepEqual(
      reply.attempts.map((a) => [a.provider, a.outcome, a.status]),
      [["limited", "ok", "OK"]],
    );
    assert.ok(reply.overheadMs !== undefined && reply.overheadMs >= 0, `overheadMs ${reply.overheadMs}`);
  });

  it("retries a stream refused with a 429 before its first chunk, and the stream carries its trace", async () => {
    const client = connect({});
    const started = performance.now();
    const stream = client.stream(request("limited-stream"));
    assert.equal(stream.attempts.length, 0, "no trace before the stream ends");
    const response = await stream.finalResponse();
    const elapsed = performance.now() - started;
    assert.equal(response.content, "streamed ok");
    assert.ok(elapsed >= HINTED_DELAY_MS - 5, `retried after ${elapsed} ms`);
    assert.deepEqual(
      stream.attempts.map((a) => [a.provider, a.outcome]),
      [["limited-stream", "ok"]],
    );
    assert.deepEqual(response.attempts, stream.attempts);
    assert.ok(stream.overheadMs !== undefined && stream.overheadMs >= 0);
    assert.equal((await client.chat(request("limited-stream"))).content, "next");
  });

  it("never retries what the gateway marks unsafe, even with a RetryInfo", async () => {
    const client = connect({});
    const error = await failure(() => client.chat(request("limited-unsafe")));
    assert.equal(error.code, Code.ResourceExhausted);
    assert.equal(error.retryAfterMs, HINTED_DELAY_MS);
    assert.equal(error.metadata["retry_safe"], "false");
    assert.equal((await client.chat(request("limited-unsafe"))).content, "not retried");
  });

  it("does not retry a RESOURCE_EXHAUSTED without RetryInfo, nor wait for a hint over 60 s", async () => {
    const client = connect({});
    const quota = await failure(() => client.chat(request("quota")));
    assert.equal(quota.code, Code.ResourceExhausted);
    assert.equal(quota.retrySafe, true);
    assert.equal(quota.retryAfterMs, undefined);
    // A retry would have met the gateway's quarantine of the provider, a different error.
    assert.equal(quota.rawMessage, "out of credit");

    const started = performance.now();
    const farOff = await failure(() => client.chat(request("far-off")));
    assert.equal(farOff.retryAfterMs, 61_000);
    assert.ok(performance.now() - started < 10_000, "the client waited for a hint over 60 s");
    assert.equal((await client.chat(request("far-off"))).content, "queued");
  });

  it("refuses a retry policy that makes no sense", () => {
    assert.throws(() => new PorticoClient("127.0.0.1:1", { retry: { maxAttempts: 0 } }), RangeError);
    assert.throws(() => new PorticoClient("127.0.0.1:1", { retry: { initialBackoffMs: 0 } }), RangeError);
  });
});
