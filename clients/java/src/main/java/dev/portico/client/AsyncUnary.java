package dev.portico.client;

import dev.portico.v1.LLMServiceGrpc.LLMServiceStub;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiConsumer;
import java.util.function.Function;

/**
 * One unary call made without blocking a thread: each attempt on grpc-java's async stub, a
 * retry scheduled after its delay instead of slept, the result in a {@link CompletableFuture}.
 * Cancelling the future cancels the attempt in flight and any retry still to come.
 */
final class AsyncUnary<T> {
  private final Function<Attempts, LLMServiceStub> stubFor;
  private final BiConsumer<LLMServiceStub, StreamObserver<T>> rpc;
  private final Attempts attempts;
  private final String target;
  private final CompletableFuture<Traced<T>> result = new CompletableFuture<>();
  private final AtomicReference<ClientCallStreamObserver<?>> inFlight = new AtomicReference<>();

  private AsyncUnary(
      Function<Attempts, LLMServiceStub> stubFor,
      BiConsumer<LLMServiceStub, StreamObserver<T>> rpc,
      Attempts attempts,
      String target) {
    this.stubFor = stubFor;
    this.rpc = rpc;
    this.attempts = attempts;
    this.target = target;
  }

  /** Starts the call; {@code stubFor} gives each attempt a stub with what is left of the deadline. */
  static <T> CompletableFuture<Traced<T>> start(
      Function<Attempts, LLMServiceStub> stubFor,
      BiConsumer<LLMServiceStub, StreamObserver<T>> rpc,
      Attempts attempts,
      String target) {
    AsyncUnary<T> call = new AsyncUnary<>(stubFor, rpc, attempts, target);
    call.result.whenComplete((value, error) -> {
      if (call.result.isCancelled()) {
        ClientCallStreamObserver<?> running = call.inFlight.get();
        if (running != null) {
          running.cancel("cancelled by the caller", null);
        }
      }
    });
    call.attempt();
    return call.result;
  }

  private void attempt() {
    if (result.isDone()) {
      return; // cancelled while waiting to retry
    }
    AtomicReference<Metadata> trailers = new AtomicReference<>();
    LLMServiceStub stub = stubFor.apply(attempts).withInterceptors(PorticoClient.captureTrailers(trailers));
    rpc.accept(stub, new ClientResponseObserver<Object, T>() {
      private T value;

      @Override
      public void beforeStart(ClientCallStreamObserver<Object> call) {
        inFlight.set(call);
      }

      @Override
      public void onNext(T response) {
        value = response;
      }

      @Override
      public void onError(Throwable error) {
        StatusRuntimeException status = error instanceof StatusRuntimeException s
            ? s
            : Status.fromThrowable(error).asRuntimeException();
        PorticoException failure = ErrorDecoder.decode(status, target);
        Optional<Duration> delay = attempts.delayBeforeNext(failure);
        if (delay.isEmpty() || result.isDone()) {
          result.completeExceptionally(failure);
          return;
        }
        CompletableFuture.delayedExecutor(delay.get().toNanos(), TimeUnit.NANOSECONDS)
            .execute(AsyncUnary.this::attempt);
      }

      @Override
      public void onCompleted() {
        result.complete(new Traced<>(value, Trace.from(trailers.get()).withClientAttempts(attempts.made())));
      }
    });
    if (result.isCancelled()) { // cancelled while this attempt was starting
      inFlight.get().cancel("cancelled by the caller", null);
    }
  }
}
