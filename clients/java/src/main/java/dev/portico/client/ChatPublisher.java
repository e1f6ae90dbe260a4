package dev.portico.client;

import dev.portico.v1.ChatRequest;
import dev.portico.v1.LLMServiceGrpc.LLMServiceStub;
import dev.portico.v1.StreamChunk;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.time.Duration;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;

/**
 * A streamed answer as a {@link Flow.Publisher}, from {@link PorticoClient#streamAsync(ChatRequest)}:
 * the non-blocking counterpart of {@link ChatStream}.
 *
 * <p>It takes one subscriber, and the call starts when it subscribes. The subscriber's demand
 * is the call's gRPC flow control: the gateway sends no more chunks than were requested (plus
 * what the HTTP/2 window holds), so a slow subscriber slows the stream down instead of filling
 * memory. Signals arrive on a gRPC thread, one at a time. A failure arrives as a {@link
 * PorticoException} in {@code onError}; a retry-safe failure before the first chunk starts the
 * call again (see {@link RetryPolicy}), after it never. Cancelling the subscription, or {@link
 * #cancel()}, cancels the call and the gateway stops generating.
 */
public final class ChatPublisher implements Flow.Publisher<StreamChunk> {
  /** How many chunks are asked of the gateway ahead of delivery, at most. */
  private static final int WINDOW = 32;

  private final Function<Attempts, LLMServiceStub> stubFor;
  private final ChatRequest request;
  private final Attempts attempts;
  private final String target;
  private final CompletableFuture<Trace> trace = new CompletableFuture<>();
  private final AtomicBoolean subscribed = new AtomicBoolean();

  // Guarded by this.
  private Flow.Subscriber<? super StreamChunk> subscriber;
  private ClientCallStreamObserver<ChatRequest> call; // the attempt in flight, once started
  private long demand; // requested by the subscriber and not yet delivered
  private long askedOnCall; // requested from the current attempt
  private long deliveredOnCall; // delivered from the current attempt
  private boolean received; // a chunk was delivered: no more retries
  private boolean done; // completed, failed or cancelled: no more signals

  ChatPublisher(
      Function<Attempts, LLMServiceStub> stubFor, ChatRequest request, Attempts attempts, String target) {
    this.stubFor = stubFor;
    this.request = request;
    this.attempts = attempts;
    this.target = target;
  }

  @Override
  public void subscribe(Flow.Subscriber<? super StreamChunk> subscriber) {
    Objects.requireNonNull(subscriber, "subscriber");
    if (!subscribed.compareAndSet(false, true)) {
      subscriber.onSubscribe(new Flow.Subscription() {
        @Override
        public void request(long n) {}

        @Override
        public void cancel() {}
      });
      subscriber.onError(new IllegalStateException(
          "a ChatPublisher takes one subscriber: call streamAsync again for another stream"));
      return;
    }
    synchronized (this) {
      this.subscriber = subscriber;
    }
    subscriber.onSubscribe(new Flow.Subscription() {
      @Override
      public void request(long n) {
        ChatPublisher.this.request(n);
      }

      @Override
      public void cancel() {
        ChatPublisher.this.cancel();
      }
    });
    attempt();
  }

  /**
   * The gateway's attempt trace with the client's count of attempts, once the stream has ended
   * normally; on a failure the future completes with the same exception as the stream, whose
   * {@link PorticoException#trace()} has it, and with a {@link java.util.concurrent.CancellationException}
   * if the stream is cancelled.
   */
  public CompletableFuture<Trace> trace() {
    return trace.copy();
  }

  /** Cancels the call if it is still running. Safe to call more than once, from any thread. */
  public void cancel() {
    ClientCallStreamObserver<ChatRequest> running;
    synchronized (this) {
      if (done) {
        return;
      }
      done = true;
      running = call;
      call = null;
    }
    if (running != null) {
      running.cancel("cancelled by the subscriber", null);
    }
    trace.cancel(false);
  }

  private void request(long n) {
    if (n <= 0) {
      Flow.Subscriber<? super StreamChunk> to;
      synchronized (this) {
        to = done ? null : subscriber;
      }
      cancel();
      if (to != null) {
        to.onError(new IllegalArgumentException("request(" + n + "): demand must be positive"));
      }
      return;
    }
    synchronized (this) {
      if (done) {
        return;
      }
      demand = demand + n < 0 ? Long.MAX_VALUE : demand + n;
      askForMore();
    }
  }

  /** Asks the current attempt for what the subscriber wants, up to the window. Holds this. */
  private void askForMore() {
    if (call == null) {
      return;
    }
    long more = Math.min(demand, WINDOW) - (askedOnCall - deliveredOnCall);
    if (more > 0) {
      askedOnCall += more;
      call.request((int) more);
    }
  }

  private void attempt() {
    synchronized (this) {
      if (done) {
        return; // cancelled while waiting to retry
      }
    }
    AtomicReference<Metadata> trailers = new AtomicReference<>();
    Attempt observer = new Attempt(trailers);
    stubFor.apply(attempts).withInterceptors(PorticoClient.captureTrailers(trailers)).streamChat(request, observer);
    boolean cancelNow;
    synchronized (this) {
      cancelNow = done;
      if (!done && !observer.ended) {
        call = observer.call;
        askedOnCall = 0;
        deliveredOnCall = 0;
        askForMore();
      }
    }
    if (cancelNow) {
      observer.call.cancel("cancelled by the subscriber", null);
    }
  }

  /** One attempt's observer; it asks for nothing until the subscriber's demand says so. */
  private final class Attempt implements ClientResponseObserver<ChatRequest, StreamChunk> {
    private final AtomicReference<Metadata> trailers;
    private ClientCallStreamObserver<ChatRequest> call;
    private boolean ended; // guarded by the publisher

    Attempt(AtomicReference<Metadata> trailers) {
      this.trailers = trailers;
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<ChatRequest> call) {
      this.call = call;
      call.disableAutoRequestWithInitial(0);
    }

    @Override
    public void onNext(StreamChunk chunk) {
      Flow.Subscriber<? super StreamChunk> to;
      synchronized (ChatPublisher.this) {
        if (done) {
          return;
        }
        deliveredOnCall++;
        demand--;
        received = true;
        to = subscriber;
      }
      to.onNext(chunk);
      synchronized (ChatPublisher.this) {
        if (!done) {
          askForMore();
        }
      }
    }

    @Override
    public void onError(Throwable error) {
      StatusRuntimeException status = error instanceof StatusRuntimeException s
          ? s
          : Status.fromThrowable(error).asRuntimeException();
      PorticoException failure = ErrorDecoder.decode(status, target);
      failure.setClientAttempts(attempts.made());
      Optional<Duration> delay;
      Flow.Subscriber<? super StreamChunk> to;
      synchronized (ChatPublisher.this) {
        ended = true;
        if (ChatPublisher.this.call == call) {
          ChatPublisher.this.call = null;
        }
        if (done) {
          return;
        }
        // Before the first chunk a retry-safe failure is retried like a unary call; after it,
        // a retry would repeat text the subscriber already has.
        delay = received ? Optional.empty() : attempts.delayBeforeNext(failure);
        done = delay.isEmpty();
        to = subscriber;
      }
      if (delay.isPresent()) {
        CompletableFuture.delayedExecutor(delay.get().toNanos(), TimeUnit.NANOSECONDS)
            .execute(ChatPublisher.this::attempt);
        return;
      }
      trace.completeExceptionally(failure);
      to.onError(failure);
    }

    @Override
    public void onCompleted() {
      Flow.Subscriber<? super StreamChunk> to;
      synchronized (ChatPublisher.this) {
        ended = true;
        ChatPublisher.this.call = null;
        if (done) {
          return;
        }
        done = true;
        to = subscriber;
      }
      trace.complete(Trace.from(trailers.get()).withClientAttempts(attempts.made()));
      to.onComplete();
    }
  }
}
