package dev.portico.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.portico.v1.ChatRequest;
import dev.portico.v1.CompletionResponse;
import dev.portico.v1.ReasoningEffort;
import dev.portico.v1.ToolDefinition;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The reasoning, cache and document helpers against a real gateway whose fake provider
 * reports, in the answer's metadata, what reached it.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class RequestHelpersIntegrationTest {
  private static final String CONFIG = """
      server: {address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1}
      providers:
        - {name: controls, kind: fake, models: [fake-chat], options: {report_controls: true}}
      """;

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

  @Test
  void reasoningCacheBreakpointsAndDocumentsReachTheProvider() {
    byte[] pdf = "%PDF-1.7 tiny".getBytes(StandardCharsets.US_ASCII);
    ChatRequest request = ChatRequest.newBuilder()
        .setModel("fake-chat")
        .addMessages(CacheBreakpoints.cache(Messages.system("Long shared rules."), Duration.ofHours(1)))
        .addMessages(Parts.user(CacheBreakpoints.cache(Parts.document(pdf, ""), null), Parts.text("Summarise it.")))
        .addTools(CacheBreakpoints.cache(ToolDefinition.newBuilder().setName("lookup").build(), Duration.ofMinutes(5)))
        .setReasoning(ReasoningControls.of(ReasoningEffort.REASONING_EFFORT_HIGH, 4096))
        .build();
    CompletionResponse answer = client.chat(request);
    assertEquals("effort=high budget=4096", answer.getMetadataMap().get("received_reasoning"));
    assertEquals("messages[0]=3600 messages[1].parts[0]=default tools[0]=300",
        answer.getMetadataMap().get("received_cache"));
    assertEquals("messages[1].parts[0]=application/pdf", answer.getMetadataMap().get("received_media"));
  }

  @Test
  void anEffortAloneLeavesTheBudgetUnset() {
    ChatRequest request = ChatRequest.newBuilder()
        .setModel("fake-chat")
        .addMessages(Messages.user("hi"))
        .setReasoning(ReasoningControls.effort(ReasoningEffort.REASONING_EFFORT_LOW))
        .build();
    assertFalse(request.getReasoning().hasBudgetTokens());
    assertEquals("effort=low budget=0", client.chat(request).getMetadataMap().get("received_reasoning"));
  }
}
