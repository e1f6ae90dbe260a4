package dev.portico.client;

import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;

/**
 * How a {@link PorticoClient} sends a call again after a failure the gateway marked
 * retry-safe: status {@code UNAVAILABLE} with {@code ErrorInfo} metadata {@code retry_safe}
 * = {@code "true"}, which the gateway sets only when the request certainly started no
 * generation at a provider. Every other failure (an upstream 500, a cut-off answer, a stream
 * that already produced chunks) is thrown on the first attempt, so one call is never billed
 * twice.
 *
 * <p>The wait before retry n (n = 1, 2, ...) is a random point in the upper half of {@code
 * initialBackoff * multiplier^(n-1)}, capped at {@code maxBackoff}; a {@code RetryInfo}
 * delay from the gateway replaces it. No retry starts when the wait would pass the call's
 * deadline.
 */
public final class RetryPolicy {
  private static final RetryPolicy DEFAULTS =
      new RetryPolicy(3, Duration.ofMillis(200), Duration.ofSeconds(5), 2.0);
  private static final RetryPolicy DISABLED =
      new RetryPolicy(1, DEFAULTS.initialBackoff, DEFAULTS.maxBackoff, DEFAULTS.multiplier);

  private final int maxAttempts;
  private final Duration initialBackoff;
  private final Duration maxBackoff;
  private final double multiplier;

  private RetryPolicy(int maxAttempts, Duration initialBackoff, Duration maxBackoff, double multiplier) {
    this.maxAttempts = maxAttempts;
    this.initialBackoff = initialBackoff;
    this.maxBackoff = maxBackoff;
    this.multiplier = multiplier;
  }

  /** What a client uses unless told otherwise: 3 attempts, waits from 200 ms doubling up to 5 s. */
  public static RetryPolicy defaults() {
    return DEFAULTS;
  }

  /** One attempt per call: no retries. */
  public static RetryPolicy disabled() {
    return DISABLED;
  }

  /**
   * A policy of {@code maxAttempts} attempts in all (the first included; 1 turns retries off),
   * waiting from {@code initialBackoff} and doubling up to {@code maxBackoff}.
   */
  public static RetryPolicy of(int maxAttempts, Duration initialBackoff, Duration maxBackoff) {
    Objects.requireNonNull(initialBackoff, "initialBackoff");
    Objects.requireNonNull(maxBackoff, "maxBackoff");
    if (maxAttempts < 1) {
      throw new IllegalArgumentException("maxAttempts must be at least 1, got " + maxAttempts);
    }
    if (initialBackoff.isNegative() || initialBackoff.isZero() || maxBackoff.compareTo(initialBackoff) < 0) {
      throw new IllegalArgumentException("need 0 < initialBackoff <= maxBackoff");
    }
    return new RetryPolicy(maxAttempts, initialBackoff, maxBackoff, DEFAULTS.multiplier);
  }

  /** Attempts in all, the first included. */
  public int maxAttempts() {
    return maxAttempts;
  }

  /** The wait before the first retry, before jitter. */
  public Duration initialBackoff() {
    return initialBackoff;
  }

  /** The longest computed wait (a {@code RetryInfo} delay may be longer). */
  public Duration maxBackoff() {
    return maxBackoff;
  }

  /** The jittered wait before retry number {@code retry} (1 for the first). */
  Duration backoff(int retry) {
    double ceiling = Math.min(
        (double) maxBackoff.toNanos(), initialBackoff.toNanos() * Math.pow(multiplier, retry - 1));
    return Duration.ofNanos((long) (ceiling / 2 + ThreadLocalRandom.current().nextDouble() * ceiling / 2));
  }

  @Override
  public String toString() {
    return "RetryPolicy{maxAttempts=" + maxAttempts + ", initialBackoff=" + initialBackoff
        + ", maxBackoff=" + maxBackoff + "}";
  }
}
