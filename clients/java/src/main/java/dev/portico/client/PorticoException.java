package dev.portico.client;

import dev.portico.v1.ErrorReason;
import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A failed call, with the gateway's {@code google.rpc.Status} details decoded.
 *
 * <p>Every error the gateway sends carries an {@code ErrorInfo} whose {@link #reason()} is
 * an {@link ErrorReason} value name such as {@code ERROR_REASON_UPSTREAM_RATE_LIMITED};
 * {@link #retryAfter()} is set where waiting helps, and {@link #fieldViolations()} names
 * the invalid fields of a rejected request. Failures that never reached the gateway (it is
 * down, the deadline passed on the client side, the call was cancelled) have only a
 * {@link #code()}: their reason is empty and the other details are absent.
 */
public final class PorticoException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final Status.Code code;
  private final String statusMessage;
  private final String reason;
  private final String domain;
  private final Map<String, String> metadata;
  private final Duration retryAfter;
  private final List<FieldViolation> fieldViolations;
  // Set once by the retry loop before the exception is thrown, from the thread that throws it.
  private Trace trace;

  PorticoException(
      Status.Code code,
      String statusMessage,
      String reason,
      String domain,
      Map<String, String> metadata,
      Duration retryAfter,
      List<FieldViolation> fieldViolations,
      Trace trace,
      String summary,
      Throwable cause) {
    super(summary.isEmpty() ? describe(code, statusMessage, reason) : summary, cause);
    this.code = code;
    this.statusMessage = statusMessage;
    this.reason = reason;
    this.domain = domain;
    this.metadata = Map.copyOf(metadata);
    this.retryAfter = retryAfter;
    this.fieldViolations = List.copyOf(fieldViolations);
    this.trace = trace;
  }

  private static String describe(Status.Code code, String statusMessage, String reason) {
    StringBuilder text = new StringBuilder(code.name());
    if (!reason.isEmpty()) {
      text.append(" (").append(reason).append(')');
    }
    if (!statusMessage.isEmpty()) {
      text.append(": ").append(statusMessage);
    }
    return text.toString();
  }

  /** The gRPC status code, for example {@code INVALID_ARGUMENT}. */
  public Status.Code code() {
    return code;
  }

  /** The status message the server (or the gRPC library) gave; may be empty. */
  public String statusMessage() {
    return statusMessage;
  }

  /** The {@code ErrorInfo.reason}, an {@link ErrorReason} value name; empty when absent. */
  public String reason() {
    return reason;
  }

  /**
   * The reason as the generated enum: {@code ERROR_REASON_UNSPECIFIED} when the error has no
   * reason, {@code UNRECOGNIZED} when the gateway is newer than this client.
   */
  public ErrorReason errorReason() {
    if (reason.isEmpty()) {
      return ErrorReason.ERROR_REASON_UNSPECIFIED;
    }
    try {
      return ErrorReason.valueOf(reason);
    } catch (IllegalArgumentException unknown) {
      return ErrorReason.UNRECOGNIZED;
    }
  }

  /** The {@code ErrorInfo.domain}: {@code "portico"} for the gateway's errors. */
  public String domain() {
    return domain;
  }

  /** The {@code ErrorInfo.metadata}, such as {@code provider} or {@code upstream_status}. */
  public Map<String, String> metadata() {
    return metadata;
  }

  /**
   * Whether the gateway said that sending the same call again cannot start a second
   * generation at a provider ({@code ErrorInfo} metadata {@code retry_safe} = {@code "true"}):
   * the request never left the gateway, or the provider refused it before doing work. An
   * upstream 500, a malformed or cut-off answer, a failure after a stream's first chunk, or a
   * status without the gateway's details is not retry-safe. The client has already retried a
   * retry-safe failure that waiting may cure as far as its {@link RetryPolicy} allows.
   */
  public boolean retrySafe() {
    return "portico".equals(domain) && "true".equals(metadata.get("retry_safe"));
  }

  /** How long to wait before trying again, from {@code RetryInfo}; empty when waiting won't help. */
  public Optional<Duration> retryAfter() {
    return Optional.ofNullable(retryAfter);
  }

  /** The invalid fields, from {@code BadRequest}; empty unless the request was rejected. */
  public List<FieldViolation> fieldViolations() {
    return fieldViolations;
  }

  /** The gateway's attempt trace of the failed call ({@code portico-attempts}); may be empty. */
  public Trace trace() {
    return trace;
  }

  /** How many times this client sent the call before giving up: 1, plus its own retries. */
  public int clientAttempts() {
    return trace.clientAttempts();
  }

  void setClientAttempts(int count) {
    trace = trace.withClientAttempts(count);
  }

  /** Each attempt the gateway made before giving up, in order. */
  public List<Attempt> attempts() {
    return trace.attempts();
  }
}
