package dev.portico.client;

import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * An answer with the gateway's attempt trace beside it, from the {@code ...WithTrace} methods of
 * {@link PorticoClient}.
 *
 * @param response the answer
 * @param trace what the gateway says about the call
 * @param <T> the response message type
 */
public record Traced<T>(T response, Trace trace) {
  /** Each attempt the gateway made, in order. */
  public List<Attempt> attempts() {
    return trace.attempts();
  }

  /** How many times this client sent the call: 1, plus its own retries. */
  public int clientAttempts() {
    return trace.clientAttempts();
  }

  /** The gateway's own time on the call, when it said. */
  public Optional<Duration> overhead() {
    return trace.overhead();
  }
}
