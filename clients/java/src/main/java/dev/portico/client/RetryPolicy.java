package dev.portico.client;

import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.ThreadLocalRandom;

/**
 * How a {@link PorticoClient} sends a call again after a failure the gateway marked
 * retry-safe ({@code ErrorInfo} metadata {@code retry_safe} = {@code "true"}, which the gateway
 * sets only when the request certainly started no generation at a provider) and that waiting
 * may cure:
 *
 * <ul>
 *   <li>{@code UNAVAILABLE}: the gateway is draining, a provider's connection failed before the
 *       request was written, every target's breaker is open, ...;
 *   <li>{@code RESOURCE_EXHAUSTED} with a {@code RetryInfo} delay: a provider's 429, the
 *       gateway's own rate limits, or load shedding.
 * </ul>
 *
 * <p>Every other failure (an upstream 500, a cut-off answer, a stream that already produced
 * chunks, a quota with no known reset) is thrown on the first attempt, so one call is never
 * billed twice.
 *
 * <p>The wait before retry n (n = 1, 2, ...) is a random time between zero and {@code
 * initialBackoff * 2^(n-1)}, capped at {@code maxBackoff} ("full jitter"). A {@code RetryInfo}
 * delay from the gateway replaces it exactly. No retry starts when the wait would pass the
 * call's deadline, or when the gateway asks for more than {@link #MAX_RETRY_INFO_DELAY}.
 */
public final class RetryPolicy {
  /** The longest {@code RetryInfo} delay a client waits for by itself; a longer one is thrown. */
  public static final Duration MAX_RETRY_INFO_DELAY = Duration.ofSeconds(60);

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

  /** What a client uses unless told otherwise: 3 attempts, waits up to 200 ms doubling up to 5 s. */
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
    return Duration.ofNanos((long) (ThreadLocalRandom.current().nextDouble() * ceiling));
  }

  @Override
  public String toString() {
    return "RetryPolicy{maxAttempts=" + maxAttempts + ", initialBackoff=" + initialBackoff
        + ", maxBackoff=" + maxBackoff + "}";
  }
}
