package dev.portico.client;

import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * An answer with the gateway's attempt trace beside it, from {@link
 * PorticoClient#chatWithTrace} and {@link PorticoClient#embedWithTrace}.
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

  /** The gateway's own time on the call, when it said. */
  public Optional<Duration> overhead() {
    return trace.overhead();
  }
}
