/**
 * When the client sends a failed call again, and how long it waits first.
 *
 * A call is sent again only when the gateway said it is safe: `ErrorInfo.metadata.retry_safe`
 * is "true", which the gateway sets only when the request certainly started no generation
 * at a provider, and the status is UNAVAILABLE, or RESOURCE_EXHAUSTED with a RetryInfo
 * (a provider's 429, the gateway's own limits, load shedding). Every other failure (an
 * upstream 500, a cut-off answer, a stream that already produced chunks, a spent budget
 * with no time to wait for) goes to the caller on the first attempt, so nothing is billed twice.
 * The same rules and defaults hold in the Python, Go and Java clients.
 */

import { Code, ConnectError } from "@connectrpc/connect";

import { PorticoError } from "./errors.js";

/** How often and how patiently a retry-safe failure is retried; a field left out keeps its default. */
export interface RetryPolicy {
  /** Attempts in all, the first included; 1 turns retries off. Default 3. */
  readonly maxAttempts?: number;
  /** Upper bound of the wait before the first retry (the wait is jittered below it). Default 200 ms. */
  readonly initialBackoffMs?: number;
  /** Upper bound of the computed wait (a RetryInfo delay, up to 60 s, may be longer). Default 5 s. */
  readonly maxBackoffMs?: number;
  /** Growth of the wait from one retry to the next. Default 2. */
  readonly multiplier?: number;
}

/** A RetryInfo delay longer than this is not waited for: the error goes to the caller. */
export const MAX_RETRY_INFO_DELAY_MS = 60_000;

/** The policy a client uses unless its `retry` option says otherwise. */
export const DEFAULT_RETRY_POLICY: Readonly<Required<RetryPolicy>> = Object.freeze({
  maxAttempts: 3,
  initialBackoffMs: 200,
  maxBackoffMs: 5_000,
  multiplier: 2,
});

/** The complete policy for a client's `retry` option (`false`: one attempt). */
export function resolveRetryPolicy(retry: RetryPolicy | false | undefined): Required<RetryPolicy> {
  if (retry === false) {
    return { ...DEFAULT_RETRY_POLICY, maxAttempts: 1 };
  }
  const policy = { ...DEFAULT_RETRY_POLICY, ...retry };
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new RangeError(`retry.maxAttempts must be a whole number of at least 1, got ${policy.maxAttempts}`);
  }
  if (!(policy.initialBackoffMs > 0 && policy.initialBackoffMs <= policy.maxBackoffMs)) {
    throw new RangeError("retry needs 0 < initialBackoffMs <= maxBackoffMs");
  }
  if (!(policy.multiplier >= 1)) {
    throw new RangeError(`retry.multiplier must be at least 1, got ${policy.multiplier}`);
  }
  return policy;
}

/** One call's attempts: the timeout each gets, and whether to try again after a failure. */
export class Attempts {
  private made = 1;
  private readonly deadline: number | undefined;

  constructor(
    private readonly policy: Required<RetryPolicy>,
    timeoutMs: number | undefined,
  ) {
    this.deadline = timeoutMs === undefined ? undefined : performance.now() + timeoutMs;
  }

  /** What is left of the call's deadline, for the attempt about to start. */
  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : Math.max(1, Math.round(this.deadline - performance.now()));
  }

  /** Milliseconds to wait before sending the call again, or undefined to give up with `error`. */
  delayBeforeNext(error: PorticoError): number | undefined {
    if (!isRetrySafe(error) || this.made >= this.policy.maxAttempts) {
      return undefined;
    }
    // The gateway's hint is waited exactly: it knows when the window or the provider frees up.
    const delay = error.retryAfterMs ?? this.backoff();
    if (delay > MAX_RETRY_INFO_DELAY_MS) {
      return undefined;
    }
    if (this.deadline !== undefined && performance.now() + delay >= this.deadline) {
      return undefined;
    }
    this.made += 1;
    return delay;
  }

  /** Full jitter: a random wait up to the exponential ceiling of the next retry. */
  private backoff(): number {
    const { initialBackoffMs, maxBackoffMs, multiplier } = this.policy;
    const ceiling = Math.min(maxBackoffMs, initialBackoffMs * multiplier ** (this.made - 1));
    return Math.random() * ceiling;
  }
}

/** Whether the client may send the call that failed with `error` again by itself. */
export function isRetrySafe(error: PorticoError): boolean {
  if (!error.retrySafe) {
    return false;
  }
  return error.code === Code.Unavailable || (error.code === Code.ResourceExhausted && error.retryAfterMs !== undefined);
}

/** Waits `ms`; rejects with a CANCELLED `PorticoError` as soon as `signal` aborts. */
export function waitBeforeRetry(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const cancelled = (): void => {
      clearTimeout(timer);
      reject(PorticoError.from(new ConnectError("the call was cancelled while waiting to retry", Code.Canceled)));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", cancelled);
      resolve();
    }, ms);
    if (signal?.aborted === true) {
      cancelled();
      return;
    }
    signal?.addEventListener("abort", cancelled, { once: true });
  });
}
