package dev.portico.client;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import io.grpc.Metadata;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The gateway's account of one call: each attempt in order, and its own time (the call's
 * total minus the time spent waiting on upstreams), from the {@code portico-attempts} and
 * {@code portico-overhead-ms} trailers.
 *
 * @param attempts each attempt of the gateway, in order; empty when it sent none
 * @param overhead the gateway's own time; empty when it sent none
 * @param clientAttempts how many times this client sent the call: 1, plus its own retries (see
 *     {@link RetryPolicy}); the gateway's attempts describe the last of them. 0 when unknown.
 */
public record Trace(List<Attempt> attempts, Optional<Duration> overhead, int clientAttempts) {
  static final Metadata.Key<String> ATTEMPTS_KEY =
      Metadata.Key.of("portico-attempts", Metadata.ASCII_STRING_MARSHALLER);
  static final Metadata.Key<String> OVERHEAD_KEY =
      Metadata.Key.of("portico-overhead-ms", Metadata.ASCII_STRING_MARSHALLER);

  /** No trace: the gateway sent none, or the call has not ended yet. */
  public static final Trace EMPTY = new Trace(List.of(), Optional.empty(), 0);

  public Trace {
    attempts = List.copyOf(attempts);
  }

  /**
   * The trace in a call's trailers. A missing or malformed entry leaves its part empty: the
   * trace describes an answer and must never hide one.
   */
  static Trace from(Metadata trailers) {
    if (trailers == null) {
      return EMPTY;
    }
    return new Trace(attempts(trailers.get(ATTEMPTS_KEY)), overhead(trailers.get(OVERHEAD_KEY)), 0);
  }

  /** This trace, with the client's count of attempts. */
  Trace withClientAttempts(int count) {
    return new Trace(attempts, overhead, count);
  }

  private static List<Attempt> attempts(String text) {
    List<Attempt> out = new ArrayList<>();
    if (text == null) {
      return out;
    }
    JsonElement parsed;
    try {
      parsed = JsonParser.parseString(text);
    } catch (JsonParseException malformed) {
      return out;
    }
    if (!parsed.isJsonArray()) {
      return out;
    }
    JsonArray items = parsed.getAsJsonArray();
    for (JsonElement item : items) {
      if (item.isJsonObject()) {
        JsonObject o = item.getAsJsonObject();
        out.add(new Attempt(
            string(o, "provider"), string(o, "model"), string(o, "outcome"), string(o, "status"),
            string(o, "reason"), millis(number(o, "duration_ms")), millis(number(o, "wait_ms"))));
      }
    }
    return out;
  }

  private static Optional<Duration> overhead(String text) {
    if (text == null) {
      return Optional.empty();
    }
    try {
      double ms = Double.parseDouble(text.trim());
      return Double.isFinite(ms) ? Optional.of(millis(ms)) : Optional.empty();
    } catch (NumberFormatException malformed) {
      return Optional.empty();
    }
  }

  private static String string(JsonObject o, String name) {
    JsonElement value = o.get(name);
    return value instanceof JsonPrimitive p && p.isString() ? p.getAsString() : "";
  }

  private static double number(JsonObject o, String name) {
    JsonElement value = o.get(name);
    if (value instanceof JsonPrimitive p && p.isNumber()) {
      double n = p.getAsDouble();
      return Double.isFinite(n) ? n : 0;
    }
    return 0;
  }

  private static Duration millis(double ms) {
    return Duration.ofNanos(Math.round(ms * 1_000_000));
  }
}
