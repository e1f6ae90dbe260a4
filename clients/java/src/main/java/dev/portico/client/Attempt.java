package dev.portico.client;

import java.time.Duration;

/**
 * One try at one target, as the gateway reports it in the {@code portico-attempts} trailer
 * of answers, errors and the end of streams.
 *
 * @param provider the provider tried
 * @param model the model tried
 * @param outcome {@code "ok"}, {@code "error"} or {@code "skipped"} (an open breaker, a target
 *     too slow for the deadline, ...)
 * @param status {@code "OK"} or the gRPC code name the attempt ended with, e.g. {@code
 *     "UNAVAILABLE"}
 * @param reason the {@code ErrorReason} name of a failed attempt, else empty
 * @param duration how long the attempt took
 * @param waitBefore the retry backoff or queue wait spent before the attempt
 */
public record Attempt(
    String provider,
    String model,
    String outcome,
    String status,
    String reason,
    Duration duration,
    Duration waitBefore) {}
