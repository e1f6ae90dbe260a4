/**
 * The gateway's attempt trace, from trailing metadata: `portico-attempts` (a JSON array,
 * one object per attempt) and `portico-overhead-ms` (the gateway's own time). Chat and
 * Embed answers, errors and the end of every stream carry it.
 */

const ATTEMPTS_KEY = "portico-attempts";
const OVERHEAD_KEY = "portico-overhead-ms";

/** One try at one target, in the order the gateway made them. */
export interface Attempt {
  readonly provider: string;
  readonly model: string;
  /** "ok", "error" or "skipped" (an open breaker, a target too slow for the deadline, ...). */
  readonly outcome: string;
  /** "OK" or the gRPC code name the attempt ended with, e.g. "UNAVAILABLE". */
  readonly status: string;
  /** The `ErrorReason` name of a failed attempt, else "". */
  readonly reason: string;
  readonly durationMs: number;
  /** Retry backoff or queue wait spent before this attempt. */
  readonly waitMs: number;
}

/** What the gateway says about one call. */
export interface Trace {
  /** Each attempt, in order; empty when the gateway sent none. */
  readonly attempts: readonly Attempt[];
  /** The gateway's own milliseconds (total minus time waiting on upstreams); undefined when not sent. */
  readonly overheadMs: number | undefined;
}

export const NO_TRACE: Trace = Object.freeze({ attempts: Object.freeze([]), overheadMs: undefined });

/**
 * The trace in a call's trailers. A missing or malformed entry gives an empty list (or
 * undefined): the trace describes an answer and must never hide one.
 */
export function traceFromHeaders(headers: Headers | undefined): Trace {
  if (headers === undefined) {
    return NO_TRACE;
  }
  const overhead = Number.parseFloat(headers.get(OVERHEAD_KEY) ?? "");
  return Object.freeze({
    attempts: Object.freeze(parseAttempts(headers.get(ATTEMPTS_KEY))),
    overheadMs: Number.isFinite(overhead) ? overhead : undefined,
  });
}

function parseAttempts(text: string | null): Attempt[] {
  if (text === null) {
    return [];
  }
  let items: unknown;
  try {
    items = JSON.parse(text);
  } catch {
    return [];
  }
  if (!Array.isArray(items)) {
    return [];
  }
  return items
    .filter((item): item is Record<string, unknown> => typeof item === "object" && item !== null)
    .map((item) =>
      Object.freeze({
        provider: str(item["provider"]),
        model: str(item["model"]),
        outcome: str(item["outcome"]),
        status: str(item["status"]),
        reason: str(item["reason"]),
        durationMs: num(item["duration_ms"]),
        waitMs: num(item["wait_ms"]),
      }),
    );
}

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function num(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}
