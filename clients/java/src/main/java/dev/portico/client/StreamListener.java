package dev.portico.client;

import dev.portico.v1.StreamChunk;

/**
 * Callbacks for a stream read without blocking ({@link PorticoClient#streamAsync(
 * dev.portico.v1.ChatRequest, StreamListener)}). They are called one at a time, in order, on a
 * gRPC thread: keep them short, and hand long work to an executor of your own.
 */
public interface StreamListener {
  /** A chunk, in the order the gateway sent them; the last one has {@code final} set. */
  void onChunk(StreamChunk chunk);

  /** The stream ended normally; {@code trace} is the gateway's attempt trace. */
  default void onComplete(Trace trace) {}

  /** The stream failed; nothing follows. {@link PorticoException#trace()} holds its trace. */
  default void onError(PorticoException error) {}
}
