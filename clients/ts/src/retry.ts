/**
 * When the client sends a failed call again, and how long it waits first.
 *
 * A call is sent again only when the gateway said it is safe: the status is UNAVAILABLE
 * and `ErrorInfo.metadata.retry_safe` is "true", which the gateway sets only when the
 * request certainly started no generation at a provider. Every other failure (an
 * upstream 500, a cut-off answer, a stream that already produced chunks) may have been
 * billed once already, so it goes to the caller on the first attempt.
 */

import { Code, ConnectError } from "@connectrpc/connect";

import { PorticoError } from "./errors.js";

/** How often and how patiently a retry-safe failure is retried; a field left out keeps its default. */
export interface RetryPolicy {
  /** Attempts in all, the first included; 1 turns retries off. Default 3. */
  readonly maxAttempts?: number;
  /** Wait before the first retry, before jitter. Default 200 ms. */
  readonly initialBackoffMs?: number;
  /** Upper bound of the computed wait (a RetryInfo delay may be longer). Default 5 s. */
  readonly maxBackoffMs?: number;
  /** Growth of the wait from one retry to the next. Default 2. */
  readonly multiplier?: number;
}

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
    if (error.code !== Code.Unavailable || !error.retrySafe || this.made >= this.policy.maxAttempts) {
      return undefined;
    }
    const delay = error.retryAfterMs ?? this.backoff();
    if (this.deadline !== undefined && performance.now() + delay >= this.deadline) {
      return undefined;
    }
    this.made += 1;
    return delay;
  }

  /** A random point in the upper half of the exponential wait before the next retry. */
  private backoff(): number {
    const { initialBackoffMs, maxBackoffMs, multiplier } = this.policy;
    const ceiling = Math.min(maxBackoffMs, initialBackoffMs * multiplier ** (this.made - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }
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
