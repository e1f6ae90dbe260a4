package dev.portico.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.portico.v1.ChatRequest;
import dev.portico.v1.CompletionResponse;
import dev.portico.v1.Failover;
import dev.portico.v1.StreamChunk;
import dev.portico.v1.StreamFailover;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Failover markers and the attempt trace against a real gateway. The fake provider acts out
 * a target failing after three chunks ("one ", "two ", "thre") and "backup" taking over; the
 * request's stream_failover decides what the gateway does about it.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class FailoverIntegrationTest {
  private static final String CONFIG = """
      server: {address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1}
      providers:
        - name: fake
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [fake-chat]
          options:
            chunk_size: 4
            rules:
              - when_contains: "fail over please"
                content: "one two three four five six"
                failover: {after_chunks: 3, provider: backup, model: small, then: {content: "the backup answer"}}
                attempts:
                  - {provider: primary, model: big, outcome: error, status: UNAVAILABLE, reason: ERROR_REASON_UPSTREAM_UNAVAILABLE, duration_ms: 41.5}
                  - {provider: backup, model: small, duration_ms: 120.25, wait_ms: 500}
                overhead_ms: 3
              - when_contains: "trace my failure"
                error: {reason: UPSTREAM_BAD_REQUEST, message: "refused"}
                attempts: [{provider: fake, model: fake-chat, outcome: error, status: INVALID_ARGUMENT, reason: ERROR_REASON_UPSTREAM_BAD_REQUEST, duration_ms: 2}]
                overhead_ms: 0.5
              - when_contains: "trace me"
                content: "traced"
                attempts: [{provider: fake, model: fake-chat, duration_ms: 7.5, wait_ms: 250}]
                overhead_ms: 1.25
      """;

  private static final List<Attempt> FAILOVER_ATTEMPTS = List.of(
      new Attempt("primary", "big", "error", "UNAVAILABLE", "ERROR_REASON_UPSTREAM_UNAVAILABLE",
          Duration.ofNanos(41_500_000), Duration.ZERO),
      new Attempt("backup", "small", "ok", "OK", "", Duration.ofNanos(120_250_000), Duration.ofMillis(500)));

  private static GatewayProcess gateway;
  private static PorticoClient client;

  @BeforeAll
  static void startGateway() throws Exception {
    gateway = GatewayProcess.start(CONFIG);
    client = PorticoClient.builder(gateway.address()).defaultDeadline(Duration.ofSeconds(20)).build();
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

  private static ChatRequest ask(String prompt, StreamFailover mode) {
    return ChatRequest.newBuilder().addMessages(Messages.user(prompt)).setStreamFailover(mode).build();
  }

  @Test
  void restartKeepsOnlyTheSecondAnswerAndShowsTheMarker() {
    try (ChatStream stream = client.stream(ask("fail over please", StreamFailover.STREAM_FAILOVER_RESTART))) {
      List<StreamChunk> chunks = new ArrayList<>();
      stream.forEach(chunks::add);
      assertEquals(List.of("one ", "two ", "thre"), chunks.subList(0, 3).stream().map(StreamChunk::getContent).toList());
      assertTrue(chunks.get(3).hasFailover());
      Failover marker = chunks.get(3).getFailover();
      assertEquals(StreamFailover.STREAM_FAILOVER_RESTART, marker.getMode());
      assertEquals("backup", marker.getProvider());
      assertEquals("small", marker.getModel());
      assertEquals("ERROR_REASON_UPSTREAM_UNAVAILABLE", marker.getReason());
      CompletionResponse response = stream.response();
      assertEquals("the backup answer", response.getContent());
      assertEquals("the backup answer", stream.text());
      assertEquals("small", response.getModel());
      assertEquals(List.of(marker), stream.failovers());
      assertEquals(FAILOVER_ATTEMPTS, stream.trace().attempts());
      assertEquals(Optional.of(Duration.ofMillis(3)), stream.trace().overhead());
    }
  }

  @Test
  void continueKeepsTheTextSoFar() {
    try (ChatStream stream = client.stream(ask("fail over please", StreamFailover.STREAM_FAILOVER_CONTINUE))) {
      assertEquals("one two thre" + "the backup answer", stream.text());
      assertEquals(StreamFailover.STREAM_FAILOVER_CONTINUE, stream.failovers().get(0).getMode());
    }
  }

  @Test
  void withoutOptingInTheStreamFailsAfterThreeChunks() {
    try (ChatStream stream = client.stream(ask("fail over please", StreamFailover.STREAM_FAILOVER_UNSPECIFIED))) {
      PorticoException error = assertThrows(PorticoException.class, stream::text);
      assertEquals(Status.Code.UNAVAILABLE, error.code());
      assertEquals(List.of(), stream.failovers());
    }
  }

  @Test
  void chatAnswersCarryTheTrace() {
    Traced<CompletionResponse> traced = client.chatWithTrace(ask("trace me", StreamFailover.STREAM_FAILOVER_UNSPECIFIED));
    assertEquals("traced", traced.response().getContent());
    assertEquals(
        List.of(new Attempt("fake", "fake-chat", "ok", "OK", "", Duration.ofNanos(7_500_000), Duration.ofMillis(250))),
        traced.attempts());
    assertEquals(Optional.of(Duration.ofNanos(1_250_000)), traced.overhead());
  }

  @Test
  void errorsCarryTheTraceUnaryAndStreamed() {
    ChatRequest request = ask("trace my failure", StreamFailover.STREAM_FAILOVER_UNSPECIFIED);
    PorticoException unary = assertThrows(PorticoException.class, () -> client.chat(request));
    PorticoException streamed;
    try (ChatStream stream = client.stream(request)) {
      streamed = assertThrows(PorticoException.class, stream::response);
    }
    for (PorticoException error : List.of(unary, streamed)) {
      assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
      assertEquals(1, error.attempts().size());
      assertEquals("ERROR_REASON_UPSTREAM_BAD_REQUEST", error.attempts().get(0).reason());
      assertEquals(Duration.ofMillis(2), error.attempts().get(0).duration());
      assertEquals(Optional.of(Duration.ofNanos(500_000)), error.trace().overhead());
    }
  }
}
