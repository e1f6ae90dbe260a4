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

  static PorticoException decode(StatusRuntimeException error) {
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
    return new PorticoException(
        status.getCode(), message, reason, domain, metadata, retryAfter, violations,
        Trace.from(error.getTrailers()), error);
  }
}
