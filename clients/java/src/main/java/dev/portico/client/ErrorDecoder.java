package dev.portico.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Turns a failed gRPC call into a {@link PorticoException}, reading the status details. */
final class ErrorDecoder {
  private ErrorDecoder() {}

  /**
   * The exception for a failed call to the gateway at {@code target}. A failure that never
   * reached the gateway's error handling names the target and the underlying cause (refused
   * connection, unknown host, TLS handshake), which gRPC's own "io exception" does not.
   */
  static PorticoException decode(StatusRuntimeException error, String target) {
    Status status = error.getStatus();
    String message = status.getDescription() == null ? "" : status.getDescription();
    String reason = "";
    String domain = "";
    Map<String, String> metadata = Map.of();
    Duration retryAfter = null;
    List<FieldViolation> violations = new ArrayList<>();

    // Null when the trailers carry no grpc-status-details-bin: a failure that did not come
    // from the gateway's error handling (connection refused, client-side deadline, cancel).
    com.google.rpc.Status details = StatusProto.fromThrowable(error);
    if (details != null) {
      for (Any detail : details.getDetailsList()) {
        try {
          if (detail.is(ErrorInfo.class)) {
            ErrorInfo info = detail.unpack(ErrorInfo.class);
            reason = info.getReason();
            domain = info.getDomain();
            metadata = info.getMetadataMap();
          } else if (detail.is(RetryInfo.class)) {
            com.google.protobuf.Duration delay = detail.unpack(RetryInfo.class).getRetryDelay();
            retryAfter = Duration.ofSeconds(delay.getSeconds(), delay.getNanos());
          } else if (detail.is(BadRequest.class)) {
            for (BadRequest.FieldViolation v : detail.unpack(BadRequest.class).getFieldViolationsList()) {
              violations.add(new FieldViolation(v.getField(), v.getDescription()));
            }
          }
        } catch (InvalidProtocolBufferException malformed) {
          // A detail that does not parse must not hide the error itself; skip it.
        }
      }
    }
    // No ErrorInfo: the gateway's error handling never saw the call.
    String summary = domain.isEmpty() && status.getCode() == Status.Code.UNAVAILABLE
        ? unreachable(target, message, error)
        : "";
    return new PorticoException(
        status.getCode(), message, reason, domain, metadata, retryAfter, violations,
        Trace.from(error.getTrailers()), summary, error);
  }

  private static String unreachable(String target, String statusMessage, Throwable error) {
    Throwable root = error;
    while (root.getCause() != null && root.getCause() != root) {
      root = root.getCause();
    }
    StringBuilder text = new StringBuilder("UNAVAILABLE: cannot reach the Portico gateway at ").append(target);
    if (root != error) {
      String why = root.getMessage();
      text.append(": ").append(why == null || why.isBlank() ? root.getClass().getSimpleName() : why);
    }
    if (!statusMessage.isEmpty()) {
      text.append(" (").append(statusMessage).append(')');
    }
    return text.toString();
  }
}
