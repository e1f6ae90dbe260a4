package dev.portico.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.portico.v1.ChatRequest;
import dev.portico.v1.CompletionResponse;
import dev.portico.v1.StreamChunk;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Retries against a gateway of their own. Each fake provider answers from a script consumed
 * one reply per request the gateway receives, so what the next call gets shows how many
 * requests the previous one made.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class RetryIntegrationTest {
  private static final String CONFIG = """
      server: {address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1}
      providers:
        - name: unsafe
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [m]
          options:
            replies:
              - error: {reason: UPSTREAM_UNAVAILABLE, message: "upstream said 500"}
              - content: "one"
              - error: {reason: UPSTREAM_UNAVAILABLE, message: "upstream said 500"}
              - content: "two"
        - name: safe
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [m]
          options:
            replies:
              - error: {reason: UPSTREAM_OVERLOADED, message: "upstream said 529"}
              - error: {reason: UPSTREAM_CONNECTION, message: "connection refused", retry_safe: true}
              - content: "third time lucky"
              - content: "next"
        - name: capped
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [m]
          options:
            replies:
              - error: {reason: SHUTTING_DOWN, message: "draining"}
              - error: {reason: SHUTTING_DOWN, message: "draining"}
              - error: {reason: SHUTTING_DOWN, message: "draining"}
              - content: "fourth"
              - error: {reason: SHUTTING_DOWN, message: "draining"}
              - content: "after"
        - name: streams
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [m]
          options:
            chunk_size: 4
            replies:
              - error: {reason: UPSTREAM_OVERLOADED, message: "upstream said 529"}
              - content: "streamed"
              - content: "partial answer"
                error: {reason: UPSTREAM_OVERLOADED, message: "overloaded midway", after_chunks: 1}
              - content: "still queued"
        - name: patient
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [m]
          options:
            replies:
              - error: {reason: UPSTREAM_OVERLOADED, message: "busy", retry_after: 30}
              - content: "too late"
        - name: limited
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [m]
          options:
            replies:
              - error: {reason: UPSTREAM_RATE_LIMITED, message: "429 from upstream", retry_after: 0.3}
              - content: "ok"
              - error: {reason: UPSTREAM_RATE_LIMITED, message: "429 from upstream", retry_after: 0.3}
              - content: "ok without blocking"
              - error: {reason: UPSTREAM_RATE_LIMITED, message: "429 from upstream", retry_after: 0.3}
              - content: "published"
              - error: {reason: UPSTREAM_RATE_LIMITED, message: "429 from upstream", retry_after: 120}
              - content: "not waited for"
        - name: quota
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [m]
          options:
            replies:
              - error: {reason: UPSTREAM_QUOTA_EXCEEDED, message: "monthly quota used up"}
      """;

  private static final Duration HINTED = Duration.ofMillis(300);

  /** Fast retries keep the tests quick; the rule under test does not depend on timing. */
  private static final RetryPolicy QUICK = RetryPolicy.of(3, Duration.ofMillis(10), Duration.ofMillis(50));

  private static GatewayProcess gateway;
  private static PorticoClient client;

  @BeforeAll
  static void startGateway() throws Exception {
    gateway = GatewayProcess.start(CONFIG);
    client = PorticoClient.builder(gateway.address())
        .defaultDeadline(Duration.ofSeconds(20))
        .retryPolicy(QUICK)
        .build();
  }

  @AfterAll
  static void stopGateway() {
    try {
      if (client != null) {
        client.close();
      }
    } finally {
      if (gateway != null) {
        gateway.close();
      }
    }
  }

  private static ChatRequest ask(String provider) {
    return ChatRequest.newBuilder().setProvider(provider).addMessages(Messages.user("hi")).build();
  }

  private static String streamText(PorticoClient on, String provider, List<String> seen) {
    try (ChatStream stream = on.stream(ask(provider))) {
      for (StreamChunk chunk : stream) {
        seen.add(chunk.getContent());
      }
    }
    return String.join("", seen);
  }

  @Test
  void anUnavailableThatIsNotRetrySafeIsAttemptedOnce() {
    PorticoException error = assertThrows(PorticoException.class, () -> client.chat(ask("unsafe")));
    assertEquals(Status.Code.UNAVAILABLE, error.code());
    assertEquals("false", error.metadata().get("retry_safe"));
    assertFalse(error.retrySafe());
    assertEquals(1, error.clientAttempts());
    // Had the client retried, the failed call would have consumed "one".
    assertEquals("one", client.chat(ask("unsafe")).getContent());
    assertThrows(PorticoException.class, () -> streamText(client, "unsafe", new ArrayList<>()));
    assertEquals("two", client.chat(ask("unsafe")).getContent());
  }

  @Test
  void aRetrySafeUnavailableIsRetriedUntilItSucceeds() {
    assertEquals("third time lucky", client.chat(ask("safe")).getContent());
    // Exactly three requests: the fourth reply is still queued.
    assertEquals("next", client.chat(ask("safe")).getContent());
  }

  @Test
  void attemptsStopAtThePolicyLimitAndDisabledMakesOne() {
    PorticoClient twice = client.withRetryPolicy(RetryPolicy.of(2, Duration.ofMillis(10), Duration.ofMillis(50)));
    PorticoException error = assertThrows(PorticoException.class, () -> twice.chat(ask("capped")));
    assertEquals("ERROR_REASON_SHUTTING_DOWN", error.reason());
    assertTrue(error.retrySafe());
    // Two attempts used two of the three failures, so a single attempt meets the third.
    PorticoClient once = client.withRetryPolicy(RetryPolicy.disabled());
    assertThrows(PorticoException.class, () -> once.chat(ask("capped")));
    assertEquals("fourth", once.chat(ask("capped")).getContent());
    assertThrows(PorticoException.class, () -> once.chat(ask("capped")));
    assertEquals("after", once.chat(ask("capped")).getContent());
  }

  @Test
  void aStreamIsRetriedBeforeItsFirstChunkAndNeverAfter() {
    assertEquals("streamed", streamText(client, "streams", new ArrayList<>()));
    List<String> seen = new ArrayList<>();
    PorticoException error =
        assertThrows(PorticoException.class, () -> streamText(client, "streams", seen));
    assertEquals(List.of("part"), seen);
    assertEquals("ERROR_REASON_UPSTREAM_OVERLOADED", error.reason());
    assertFalse(error.retrySafe(), "the caller already holds part of an answer");
    assertEquals("still queued", client.chat(ask("streams")).getContent());
  }

  @Test
  void aRetryInfoDelayIsHonouredButNeverPastTheDeadline() {
    PorticoClient hurried = client.withDeadline(Duration.ofSeconds(2));
    long started = System.nanoTime();
    PorticoException error = assertThrows(PorticoException.class, () -> hurried.chat(ask("patient")));
    Duration elapsed = Duration.ofNanos(System.nanoTime() - started);
    assertEquals(Status.Code.UNAVAILABLE, error.code());
    assertEquals(Duration.ofSeconds(30), error.retryAfter().orElseThrow());
    assertTrue(elapsed.compareTo(Duration.ofSeconds(2)) < 0, "waited past the deadline: " + elapsed);
    assertEquals("too late", client.chat(ask("patient")).getContent());
  }

  @Test
  void a429WithRetryInfoIsRetriedOnceAfterTheHintedDelayBlockingAsyncAndStreamed() throws Exception {
    // The default policy: the hinted delay, not its backoff, decides the wait.
    PorticoClient defaults = client.withRetryPolicy(RetryPolicy.defaults());

    long started = System.nanoTime();
    Traced<CompletionResponse> answer = defaults.chatWithTrace(ask("limited"));
    assertWaitedTheHint(started);
    assertEquals("ok", answer.response().getContent());
    assertEquals(2, answer.clientAttempts(), "the 429, then the answer");
    Attempt last = answer.attempts().get(answer.attempts().size() - 1);
    assertEquals("limited", last.provider());
    assertEquals("ok", last.outcome());
    assertTrue(answer.overhead().isPresent(), "the gateway's overhead is read from the trailers");

    started = System.nanoTime();
    Traced<CompletionResponse> async = defaults.chatWithTraceAsync(ask("limited")).get(20, TimeUnit.SECONDS);
    assertWaitedTheHint(started);
    assertEquals("ok without blocking", async.response().getContent());
    assertEquals(2, async.clientAttempts());

    started = System.nanoTime();
    ChatPublisher publisher = defaults.streamAsync(ask("limited"));
    CollectingSubscriber chunks = new CollectingSubscriber(1);
    publisher.subscribe(chunks);
    assertEquals("published", chunks.text().get(20, TimeUnit.SECONDS));
    assertWaitedTheHint(started);
    Trace trace = publisher.trace().get(5, TimeUnit.SECONDS);
    assertEquals(2, trace.clientAttempts());
    assertTrue(trace.overhead().isPresent());

    // A hint over a minute is the caller's to act on: thrown at once.
    PorticoException longHint = assertThrows(PorticoException.class, () -> defaults.chat(ask("limited")));
    assertEquals(Duration.ofSeconds(120), longHint.retryAfter().orElseThrow());
    assertEquals(1, longHint.clientAttempts());
    assertEquals("not waited for", defaults.chat(ask("limited")).getContent());
  }

  @Test
  void anExhaustedQuotaWithoutRetryInfoIsNotRetried() {
    PorticoClient defaults = client.withRetryPolicy(RetryPolicy.defaults());
    PorticoException quota = assertThrows(PorticoException.class, () -> defaults.chat(ask("quota")));
    assertEquals(Status.Code.RESOURCE_EXHAUSTED, quota.code());
    assertEquals(1, quota.clientAttempts());
  }

  private static void assertWaitedTheHint(long startedNanos) {
    Duration elapsed = Duration.ofNanos(System.nanoTime() - startedNanos);
    assertTrue(elapsed.compareTo(HINTED) >= 0, "retried after " + elapsed + ", before the hinted " + HINTED);
    // Only "not hung": two quick calls and the hinted wait.
    assertTrue(elapsed.compareTo(HINTED.plusSeconds(5)) < 0, "took " + elapsed);
  }

  @Test
  void aRetryPolicyThatMakesNoSenseIsRefused() {
    assertThrows(IllegalArgumentException.class, () -> RetryPolicy.of(0, Duration.ofMillis(10), Duration.ofSeconds(1)));
    assertThrows(IllegalArgumentException.class, () -> RetryPolicy.of(3, Duration.ZERO, Duration.ofSeconds(1)));
    assertEquals(3, RetryPolicy.defaults().maxAttempts());
  }
}
