/**
 * The retry decision on its own, for the cases the gateway tests cannot pin down in
 * numbers: the full-jitter bounds of the backoff, and the exact RetryInfo delay. The
 * errors are built as Connect builds them from a gateway's status details.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Code, ConnectError } from "@connectrpc/connect";

import { PorticoError } from "../src/index.js";
import { ErrorInfoSchema, RetryInfoSchema } from "../src/gen-googleapis/google/rpc/error_details_pb.js";
import { Attempts, DEFAULT_RETRY_POLICY, resolveRetryPolicy } from "../src/retry.js";

function gatewayError(code: Code, retrySafe: boolean, retryAfterMs?: number): PorticoError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    {
      desc: ErrorInfoSchema,
      value: { reason: "ERROR_REASON_UPSTREAM_OVERLOADED", domain: "portico", metadata: { retry_safe: String(retrySafe) } },
    },
  ];
  if (retryAfterMs !== undefined) {
    const seconds = Math.floor(retryAfterMs / 1000);
    details.push({
      desc: RetryInfoSchema,
      value: { retryDelay: { seconds: BigInt(seconds), nanos: (retryAfterMs - seconds * 1000) * 1e6 } },
    });
  }
  return PorticoError.from(new ConnectError("failed", code, undefined, details));
}

describe("the retry decision", () => {
  it("backs off with full jitter under 200 ms, 400 ms, 800 ms, ... capped at 5 s", () => {
    const policy = resolveRetryPolicy({ maxAttempts: 10 });
    const unavailable = gatewayError(Code.Unavailable, true);
    const waits: number[][] = [];
    for (let run = 0; run < 200; run++) {
      const attempts = new Attempts(policy, undefined);
      const these: number[] = [];
      for (let retry = 0; retry < 9; retry++) {
        these.push(attempts.delayBeforeNext(unavailable)!);
      }
      assert.equal(attempts.delayBeforeNext(unavailable), undefined, "10 attempts in all");
      waits.push(these);
    }
    const ceilings = [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000];
    ceilings.forEach((ceiling, retry) => {
      const column = waits.map((w) => w[retry]!);
      assert.ok(column.every((w) => w >= 0 && w <= ceiling), `retry ${retry + 1}: a wait outside 0..${ceiling}`);
      // Full jitter spreads over the whole range, the lower half included.
      assert.ok(column.some((w) => w < ceiling / 2), `retry ${retry + 1}: never below half the ceiling`);
    });
  });

  it("waits exactly the RetryInfo delay, for UNAVAILABLE and RESOURCE_EXHAUSTED alike", () => {
    for (const code of [Code.Unavailable, Code.ResourceExhausted]) {
      const attempts = new Attempts(DEFAULT_RETRY_POLICY, undefined);
      assert.equal(attempts.delayBeforeNext(gatewayError(code, true, 1_250)), 1_250);
      assert.equal(attempts.delayBeforeNext(gatewayError(code, true, 60_000)), 60_000);
      assert.equal(attempts.delayBeforeNext(gatewayError(code, true, 300)), undefined, "3 attempts in all by default");
    }
  });

  it("gives up on what is unsafe, not waitable, too far off, or past the deadline", () => {
    const refusals: [string, PorticoError, number | undefined][] = [
      ["not retry-safe", gatewayError(Code.Unavailable, false), undefined],
      ["RESOURCE_EXHAUSTED without RetryInfo", gatewayError(Code.ResourceExhausted, true), undefined],
      ["another code", gatewayError(Code.Internal, true, 100), undefined],
      ["a hint over 60 s", gatewayError(Code.ResourceExhausted, true, 60_001), undefined],
      ["a hint past the deadline", gatewayError(Code.Unavailable, true, 2_000), 1_000],
    ];
    for (const [why, error, timeoutMs] of refusals) {
      assert.equal(new Attempts(DEFAULT_RETRY_POLICY, timeoutMs).delayBeforeNext(error), undefined, why);
    }
  });
});
