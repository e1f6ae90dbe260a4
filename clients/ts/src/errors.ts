/**
 * Errors the gateway returns, decoded.
 *
 * Every failed call rejects (or ends a stream) with a `PorticoError`. The gateway sends a
 * `google.rpc.Status` in the `grpc-status-details-bin` trailer; Connect parses that
 * trailer, and this module reads the three details Portico uses out of it:
 * `ErrorInfo` (reason, metadata), `RetryInfo` (how long to wait) and `BadRequest`
 * (which fields were wrong). Failures that never reached the gateway (connection
 * refused, deadline, cancellation) become a `PorticoError` too, with an empty `reason`.
 */

import { Code, ConnectError } from "@connectrpc/connect";

import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen-googleapis/google/rpc/error_details_pb.js";
import { type Attempt, traceFromHeaders } from "./trace.js";

export { Code };

/** The domain of every `ErrorInfo` Portico sends. */
export const PORTICO_ERROR_DOMAIN = "portico";

/** One invalid field of a request, from a `google.rpc.BadRequest` detail. */
export interface FieldViolation {
  /** A path into the request, e.g. "temperature" or "messages[0].role". */
  readonly field: string;
  /** Why the value is not accepted. */
  readonly description: string;
}

/** A failed call: the gRPC status plus Portico's decoded error details. */
export class PorticoError extends Error {
  override name = "PorticoError";
  /** The gRPC status code (Connect's `Code` uses the gRPC numbers: 3 = INVALID_ARGUMENT). */
  readonly code: Code;
  /** The status code's gRPC name, e.g. "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** `ErrorInfo.reason`, an `ErrorReason` value name such as "ERROR_REASON_INVALID_REQUEST"; "" when absent. */
  readonly reason: string;
  /** `ErrorInfo.domain`: "portico" for errors the gateway made; "" when absent. */
  readonly domain: string;
  /** `ErrorInfo.metadata`: dynamic values such as `provider` or `upstream_status`. */
  readonly metadata: Readonly<Record<string, string>>;
  /** From `RetryInfo`: how long to wait before trying again; undefined when waiting does not help. */
  readonly retryAfterMs: number | undefined;
  /** From `BadRequest`: each field the gateway refused. */
  readonly fieldViolations: readonly FieldViolation[];
  /** The status message as the gateway sent it, without the code prefix. */
  readonly rawMessage: string;
  /** The gateway's attempt trace of the failed call (the `portico-attempts` trailer). */
  readonly attempts: readonly Attempt[];
  /** The gateway's own milliseconds on the call (`portico-overhead-ms`); undefined when not sent. */
  readonly overheadMs: number | undefined;

  constructor(cause: ConnectError) {
    const codeName = grpcCodeName(cause.code);
    super(`${codeName}: ${cause.rawMessage}`, { cause });
    this.code = cause.code;
    this.codeName = codeName;
    this.rawMessage = cause.rawMessage;
    const trace = traceFromHeaders(cause.metadata);
    this.attempts = trace.attempts;
    this.overheadMs = trace.overheadMs;

    const info = cause.findDetails(ErrorInfoSchema)[0];
    this.reason = info?.reason ?? "";
    this.domain = info?.domain ?? "";
    this.metadata = Object.freeze({ ...(info?.metadata ?? {}) });

    const delay = cause.findDetails(RetryInfoSchema)[0]?.retryDelay;
    // Whole milliseconds: the server's float seconds arrive as e.g. 0s + 299999999ns.
    this.retryAfterMs =
      delay === undefined ? undefined : Math.round(Number(delay.seconds) * 1000 + delay.nanos / 1e6);

    this.fieldViolations = Object.freeze(
      cause
        .findDetails(BadRequestSchema)
        .flatMap((bad) => bad.fieldViolations)
        .map((v) => Object.freeze({ field: v.field, description: v.description })),
    );
  }

  /**
   * Whether the gateway said that sending the same call again cannot start a second
   * generation at a provider (`ErrorInfo.metadata.retry_safe` is "true"): the request
   * never left the gateway, or the provider refused it before doing work. An upstream
   * 500, a malformed or cut-off answer, a failure after a stream's first chunk, or a
   * status without the gateway's details is not retry-safe.
   */
  get retrySafe(): boolean {
    return this.domain === PORTICO_ERROR_DOMAIN && this.metadata["retry_safe"] === "true";
  }

  /**
   * Whether repeating the same call is safe (`retrySafe`) and may succeed: the status is
   * UNAVAILABLE, or the gateway said how long to wait. The client has already retried
   * such a failure as far as its retry policy and the call's deadline allow.
   */
  get retryable(): boolean {
    return this.retrySafe && (this.retryAfterMs !== undefined || this.code === Code.Unavailable);
  }

  /** Wraps anything a Connect call threw; a `PorticoError` passes through unchanged. */
  static from(reason: unknown): PorticoError {
    if (reason instanceof PorticoError) {
      return reason;
    }
    return new PorticoError(ConnectError.from(reason));
  }
}

/** "INVALID_ARGUMENT" for Code.InvalidArgument, the names gRPC documents. */
export function grpcCodeName(code: Code): string {
  // Connect names its enum members in PascalCase ("InvalidArgument"); gRPC and the
  // other Portico clients use UPPER_SNAKE, and so do logs and grpcurl.
  const name = Code[code] as string | undefined;
  if (name === undefined) {
    return `CODE_${code}`;
  }
  return name === "Canceled" ? "CANCELLED" : name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
