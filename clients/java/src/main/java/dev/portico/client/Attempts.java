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

  /**
   * The wait before sending the call again, or empty to give up with {@code failure}: it is
   * not retry-safe, the attempts are used up, or the wait would pass the deadline.
   */
  Optional<Duration> delayBeforeNext(PorticoException failure) {
    if (failure.code() != Status.Code.UNAVAILABLE || !failure.retrySafe() || made >= policy.maxAttempts()) {
      return Optional.empty();
    }
    Duration delay = failure.retryAfter().orElseGet(() -> policy.backoff(made));
    if (hasDeadline && System.nanoTime() + delay.toNanos() - deadlineNanos >= 0) {
      return Optional.empty();
    }
    made++;
    return Optional.of(delay);
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
