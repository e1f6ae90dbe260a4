package dev.portico.client;

import io.grpc.Status;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * One call's attempts: the deadline each gets (what is left of the call's), and whether to
 * try again after a failure.
 */
final class Attempts {
  private final RetryPolicy policy;
  private final long deadlineNanos; // System.nanoTime() value; meaningful only if hasDeadline
  private final boolean hasDeadline;
  private int made = 1;

  Attempts(RetryPolicy policy, Duration deadline) {
    this.policy = policy;
    this.hasDeadline = deadline != null;
    this.deadlineNanos = deadline == null ? 0 : System.nanoTime() + deadline.toNanos();
  }

  /** What is left of the call's deadline for the attempt about to start; empty without one. */
  Optional<Duration> remaining() {
    if (!hasDeadline) {
      return Optional.empty();
    }
    return Optional.of(Duration.ofNanos(Math.max(1, deadlineNanos - System.nanoTime())));
  }

  /** How many attempts have started so far. */
  int made() {
    return made;
  }

  /**
   * The wait before sending the call again, or empty to give up with {@code failure}: it is
   * not worth retrying (see {@link RetryPolicy}), the attempts are used up, the gateway asked
   * for too long a wait, or the wait would pass the deadline. Either way the failure learns
   * how many attempts the client made.
   */
  Optional<Duration> delayBeforeNext(PorticoException failure) {
    failure.setClientAttempts(made);
    if (!worthRetrying(failure) || made >= policy.maxAttempts()) {
      return Optional.empty();
    }
    Optional<Duration> hinted = failure.retryAfter();
    if (hinted.isPresent() && hinted.get().compareTo(RetryPolicy.MAX_RETRY_INFO_DELAY) > 0) {
      return Optional.empty();
    }
    Duration delay = hinted.orElseGet(() -> policy.backoff(made));
    if (hasDeadline && System.nanoTime() + delay.toNanos() - deadlineNanos >= 0) {
      return Optional.empty();
    }
    made++;
    return Optional.of(delay);
  }

  private static boolean worthRetrying(PorticoException failure) {
    if (!failure.retrySafe()) {
      return false;
    }
    return failure.code() == Status.Code.UNAVAILABLE
        || (failure.code() == Status.Code.RESOURCE_EXHAUSTED && failure.retryAfter().isPresent());
  }

  /**
   * Sleeps before the next attempt. An interrupted thread keeps its interrupt flag and gets
   * {@code failure} back, the last word on the call.
   */
  static void waitBeforeRetry(Duration delay, PorticoException failure) {
    try {
      TimeUnit.NANOSECONDS.sleep(delay.toNanos());
    } catch (InterruptedException interrupted) {
      Thread.currentThread().interrupt();
      throw failure;
    }
  }
}
