package dev.portico.client;

import dev.portico.v1.CompletionResponse;
import dev.portico.v1.Failover;
import dev.portico.v1.Role;
import dev.portico.v1.StreamChunk;
import dev.portico.v1.StreamFailover;
import io.grpc.Context;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Supplier;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * The chunks of one {@code StreamChat} call, in the order the gateway sent them.
 *
 * <p>Iterate it once, with {@code for (StreamChunk chunk : stream)} or {@link #chunks()}.
 * The last chunk has {@code is_final} set and carries the stop reason, the usage and the
 * assembled tool calls; {@link #finalChunk()} keeps it. A failure, also one in the middle
 * of the answer, is thrown from {@link #hasNext()} as a {@link PorticoException}; a
 * retry-safe failure before the first chunk starts the call again (see {@link RetryPolicy}).
 *
 * <p>{@link #close()} cancels the call, so the gateway stops generating (use
 * try-with-resources). It may be called from any thread, also while another thread waits
 * in {@link #hasNext()}; that thread then sees the end of the stream.
 *
 * <p>With {@code stream_failover} set on the request, the gateway may move the stream to
 * another target after its first chunk; a chunk with {@code failover} set then says so. After
 * a {@code STREAM_FAILOVER_RESTART} marker everything received before it belonged to an
 * abandoned answer; after {@code STREAM_FAILOVER_CONTINUE} it stays. {@link #text()} and
 * {@link #response()} hold only the final answer; {@link #failovers()} lists the markers.
 * Once the stream has ended, {@link #trace()} is the gateway's attempt trace.
 */
public final class ChatStream implements Iterator<StreamChunk>, Iterable<StreamChunk>, AutoCloseable {
  private final Context.CancellableContext call;
  private final Supplier<Iterator<StreamChunk>> startCall;
  private final Attempts attempts;
  private final String target;
  private Iterator<StreamChunk> responses;
  private boolean received;
  private volatile boolean closed;
  private volatile StreamChunk finalChunk;
  private final AtomicReference<Metadata> trailers;
  private final List<Failover> failovers = new ArrayList<>();
  private final StringBuilder content = new StringBuilder();
  private final StringBuilder reasoning = new StringBuilder();
  private final Map<String, String> metadata = new HashMap<>();
  private String model = "";
  private String provider = "";

  private ChatStream(
      Context.CancellableContext call,
      Supplier<Iterator<StreamChunk>> startCall,
      Attempts attempts,
      AtomicReference<Metadata> trailers,
      String target) {
    this.call = call;
    this.startCall = startCall;
    this.attempts = attempts;
    this.trailers = trailers;
    this.target = target;
  }

  /**
   * Starts the call inside a cancellable context: grpc-java's blocking iterator has no
   * cancel method of its own, but a call cancels when the context it started in does. A
   * retry starts in the same context, so {@link #close()} reaches it too.
   */
  static ChatStream start(
      Supplier<Iterator<StreamChunk>> startCall,
      Attempts attempts,
      AtomicReference<Metadata> trailers,
      String target) {
    ChatStream stream =
        new ChatStream(Context.current().withCancellation(), startCall, attempts, trailers, target);
    stream.startAttempt();
    return stream;
  }

  private void startAttempt() {
    Context previous = call.attach();
    try {
      responses = startCall.get();
    } catch (StatusRuntimeException error) {
      call.cancel(null);
      PorticoException failure = ErrorDecoder.decode(error, target);
      failure.setClientAttempts(attempts.made());
      throw failure;
    } catch (RuntimeException error) {
      call.cancel(null);
      throw error;
    } finally {
      call.detach(previous);
    }
  }

  @Override
  public boolean hasNext() {
    while (!closed) {
      try {
        boolean more = responses.hasNext();
        if (!more) {
          release();
        }
        return more;
      } catch (StatusRuntimeException error) {
        if (closed) {
          // Our own close() cancelled the call: that is the end, not a failure.
          release();
          return false;
        }
        PorticoException failure = ErrorDecoder.decode(error, target);
        failure.setClientAttempts(attempts.made());
        // Before the first chunk a retry-safe failure is retried like a unary call; after
        // it, a retry would repeat text the caller already has, so the failure is final.
        Optional<Duration> delay = received ? Optional.empty() : attempts.delayBeforeNext(failure);
        if (delay.isEmpty()) {
          release();
          throw failure;
        }
        Attempts.waitBeforeRetry(delay.get(), failure);
        startAttempt();
      }
    }
    return false;
  }

  @Override
  public StreamChunk next() {
    if (!hasNext()) {
      throw new NoSuchElementException("the stream has ended");
    }
    StreamChunk chunk = responses.next();
    received = true;
    if (chunk.hasFailover()) {
      failOver(chunk.getFailover());
      return chunk;
    }
    content.append(chunk.getContent());
    reasoning.append(chunk.getReasoningContent());
    model = chunk.getModel().isEmpty() ? model : chunk.getModel();
    provider = chunk.getProvider().isEmpty() ? provider : chunk.getProvider();
    metadata.putAll(chunk.getMetadataMap());
    if (chunk.getFinal()) {
      finalChunk = chunk;
    }
    return chunk;
  }

  private void failOver(Failover marker) {
    failovers.add(marker);
    if (marker.getMode() == StreamFailover.STREAM_FAILOVER_RESTART) {
      // Everything so far belonged to an answer the gateway abandoned.
      content.setLength(0);
      reasoning.setLength(0);
      metadata.clear();
    }
    provider = marker.getProvider().isEmpty() ? provider : marker.getProvider();
    model = marker.getModel().isEmpty() ? model : marker.getModel();
  }

  /** This stream itself: it can be iterated once. */
  @Override
  public Iterator<StreamChunk> iterator() {
    return this;
  }

  /** The remaining chunks as a {@link Stream}; closing that stream cancels the call. */
  public Stream<StreamChunk> chunks() {
    Spliterator<StreamChunk> split =
        Spliterators.spliteratorUnknownSize(this, Spliterator.ORDERED | Spliterator.NONNULL);
    return StreamSupport.stream(split, false).onClose(this::close);
  }

  /**
   * Reads the rest of the stream and returns the answer's text: every chunk's content
   * concatenated, but after a {@code STREAM_FAILOVER_RESTART} marker only what followed it.
   */
  public String text() {
    readToEnd();
    return content.toString();
  }

  /**
   * Reads the rest of the stream and returns the whole answer as {@code chat} would have:
   * the text and reasoning (only the final answer's, after a failover), the final chunk's
   * tool calls, stop reason, usage and parts.
   *
   * @throws IllegalStateException if the stream was closed before its final chunk
   */
  public CompletionResponse response() {
    readToEnd();
    StreamChunk last = finalChunk;
    if (last == null) {
      throw new IllegalStateException("the stream ended without its final chunk");
    }
    return CompletionResponse.newBuilder()
        .setContent(content.toString())
        .setRole(Role.ROLE_ASSISTANT)
        .addAllToolCalls(last.getToolCallsList())
        .setStopReason(last.getStopReason())
        .setRawStopReason(last.getRawStopReason())
        .setUsage(last.getUsage())
        .setModel(model)
        .setProvider(provider)
        .setReasoningContent(reasoning.toString())
        .putAllMetadata(metadata)
        .addAllParts(last.getPartsList())
        .build();
  }

  /** The failover markers read so far, in order: each says another target took over. */
  public List<Failover> failovers() {
    return List.copyOf(failovers);
  }

  /**
   * The gateway's attempt trace, from the stream's trailers, with the client's own count of
   * attempts; empty until the stream ended.
   */
  public Trace trace() {
    Metadata ended = trailers.get();
    return ended == null ? Trace.EMPTY : Trace.from(ended).withClientAttempts(attempts.made());
  }

  private void readToEnd() {
    while (hasNext()) {
      next();
    }
  }

  /** The final chunk once it has been read; empty before that or if the stream was closed early. */
  public Optional<StreamChunk> finalChunk() {
    return Optional.ofNullable(finalChunk);
  }

  /** Whether {@link #close()} was called. */
  public boolean isClosed() {
    return closed;
  }

  /** Cancels the call if it is still running. Safe to call more than once. */
  @Override
  public void close() {
    closed = true;
    release();
  }

  private void release() {
    // Cancelling a context whose call has already finished only frees its listeners.
    call.cancel(null);
  }
}
