package dev.portico.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.portico.v1.Collection;
import dev.portico.v1.Distance;
import dev.portico.v1.Match;
import dev.portico.v1.Record;
import dev.portico.v1.UpsertResponse;
import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@link Vectors} against a real gateway on its default vector store, the fake provider
 * embedding text: the same text always gets the same vector, so a query with a stored text
 * finds that record with score 1.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class VectorsIntegrationTest {
  private static final String CONFIG = """
      server: {address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1}
      providers:
        - name: fake
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [fake-chat, fake-embed]
          default_model: fake-chat
          embedding_model: fake-embed
          options: {embedding_dimensions: 16}
      """;

  private static GatewayProcess gateway;
  private static PorticoClient client;

  @BeforeAll
  static void startGateway() throws Exception {
    gateway = GatewayProcess.start(CONFIG);
    client = PorticoClient.builder(gateway.address()).apiKey("").defaultDeadline(Duration.ofSeconds(30)).build();
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
  void createUpsertTextQueryAndDelete() {
    Vectors vectors = client.vectors();
    // Unique per run: the default store may outlive the gateway.
    String name = "java-test-" + ProcessHandle.current().pid();
    Collection wanted = Collection.newBuilder()
        .setName(name)
        .setDimensions(16)
        .setDistance(Distance.DISTANCE_COSINE)
        .setEmbeddingProvider("fake")
        .build();

    Collection created = vectors.createCollection(wanted);
    try {
      assertEquals(name, created.getName());
      assertEquals(16, created.getDimensions());
      PorticoException exists = assertThrows(PorticoException.class, () -> vectors.createCollection(wanted));
      assertEquals(Status.Code.ALREADY_EXISTS, exists.code());

      UpsertResponse upserted = vectors.upsert(name, List.of(
          Vectors.textRecord("paris", "Paris is the capital of France", Map.of("lang", "en", "year", 2024)),
          Vectors.textRecord("berlin", "Berlin is the capital of Germany", Map.of("lang", "en", "year", 2019)),
          Vectors.textRecord("rom", "Rom ist die Hauptstadt Italiens", Map.of("lang", "de", "year", 2024))));
      assertEquals(3, upserted.getUpsertedCount());
      assertEquals(3, upserted.getEmbeddedCount());

      List<Match> matches = vectors.queryText(name, "Paris is the capital of France", 2, null);
      assertEquals(2, matches.size());
      assertEquals("paris", matches.get(0).getId());
      assertEquals(1.0, matches.get(0).getScore(), 1e-5);
      assertEquals("Paris is the capital of France", matches.get(0).getText());
      assertEquals(Map.of("lang", "en", "year", 2024.0), Vectors.metadata(matches.get(0)));

      List<Match> filtered = vectors.queryText(name, "Paris is the capital of France", 10,
          VectorFilters.all(VectorFilters.eq("lang", "en"), VectorFilters.range("year", b -> b.setLt(2020))));
      assertEquals(List.of("berlin"), filtered.stream().map(Match::getId).toList());

      PorticoException wrongSize = assertThrows(PorticoException.class,
          () -> vectors.queryVector(name, List.of(1f, 2f, 3f), 1, null));
      assertEquals(Status.Code.INVALID_ARGUMENT, wrongSize.code());
      assertTrue(wrongSize.fieldViolations().stream().anyMatch(v -> v.field().equals("vector")),
          String.valueOf(wrongSize.fieldViolations()));

      assertEquals(1, vectors.delete(name, List.of("paris", "nobody")));
      assertEquals(1, vectors.deleteWhere(name, VectorFilters.eq("lang", "de")));
      List<Record> left = vectors.get(name, List.of("paris", "berlin", "rom"));
      assertEquals(List.of("berlin"), left.stream().map(Record::getId).toList());
      assertEquals(16, left.get(0).getVectorCount());
      assertEquals(1, vectors.count(name));
    } finally {
      vectors.deleteCollection(name);
    }
    PorticoException gone = assertThrows(PorticoException.class, () -> vectors.getCollection(name));
    assertEquals(Status.Code.NOT_FOUND, gone.code());
  }
}
