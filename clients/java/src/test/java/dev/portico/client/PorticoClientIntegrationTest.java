package dev.portico.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.portico.v1.ChatRequest;
import dev.portico.v1.CompletionResponse;
import dev.portico.v1.EmbedRequest;
import dev.portico.v1.EmbedResponse;
import dev.portico.v1.Embedding;
import dev.portico.v1.ErrorReason;
import dev.portico.v1.ProviderInfo;
import dev.portico.v1.Role;
import dev.portico.v1.StopReason;
import dev.portico.v1.StreamChunk;
import dev.portico.v1.ToolCall;
import dev.portico.v1.ToolCallDelta;
import io.grpc.Status;
import java.io.IOException;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Collections;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Flow;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The client against a real gateway process running the fake provider. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class PorticoClientIntegrationTest {
  /**
   * Two fake providers: {@code fake} answers at once (4 characters a chunk) and has scripted
   * rules; {@code slow} streams one character every 50 ms, long enough to cancel mid-way.
   */
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
          options:
            chunk_size: 4
            embedding_dimensions: 64
            rules:
              - when_contains: "weather"
                tool_calls: [{name: get_weather, arguments: '{"city":"Paris"}'}]
              - when_contains: "rate limit me"
                error: {reason: RATE_LIMITED, message: "too many calls", retry_after: 2.5}
              - when_contains: "fail midway"
                content: "this answer breaks off"
                error: {reason: UPSTREAM_UNAVAILABLE, message: "upstream went away", after_chunks: 2}
              - when_contains: "take your time"
                content: "finally"
                delay: 10
        - name: slow
          kind: fake
          retry: {enabled: false}
          breaker: {enabled: false}
          models: [slow-chat]
          default_model: slow-chat
          options:
            chunk_size: 1
            chunk_delay: 0.05
      """;

  /** 400 characters: 20 s of streaming on the slow provider. */
  private static final String LONG_PROMPT = "a slow answer ".repeat(29).substring(0, 400);

  private static GatewayProcess gateway;
  private static PorticoClient client;

  @BeforeAll
  static void startGateway() throws Exception {
    gateway = GatewayProcess.start(CONFIG);
    client = PorticoClient.builder(gateway.address()).defaultDeadline(Duration.ofSeconds(20)).build();
  }

  @AfterAll
  static void stopGateway() throws Exception {
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

  private static ChatRequest ask(String model, String prompt) {
    return ChatRequest.newBuilder().setModel(model).addMessages(Messages.user(prompt)).build();
  }

  // -- chat ---------------------------------------------------------------------------------

  @Test
  void chatAnswersWithTheEchoOfTheLastUserMessage() {
    ChatRequest request = ChatRequest.newBuilder()
        .setModel("fake-chat")
        .addMessages(Messages.system("Answer briefly."))
        .addMessages(Messages.user("first question"))
        .addMessages(Messages.assistant("first answer"))
        .addMessages(Messages.user("Hello from Java"))
        .build();

    CompletionResponse answer = client.chat(request);

    assertEquals("Hello from Java", answer.getContent());
    assertEquals(Role.ROLE_ASSISTANT, answer.getRole());
    assertEquals(StopReason.STOP_REASON_END_TURN, answer.getStopReason());
    assertEquals("fake", answer.getProvider());
    assertEquals("fake-chat", answer.getModel());
    assertTrue(answer.getUsage().getPromptTokenCount() > 0, answer.getUsage().toString());
    assertEquals(
        answer.getUsage().getPromptTokenCount() + answer.getUsage().getCompletionTokenCount(),
        answer.getUsage().getTotalTokenCount());
  }

  @Test
  void chatReturnsTheToolCallsTheModelMade() {
    CompletionResponse answer = client.chat(ask("fake-chat", "what is the weather in Paris?"));

    assertEquals(StopReason.STOP_REASON_TOOL_CALLS, answer.getStopReason());
    assertEquals(1, answer.getToolCallsCount());
    ToolCall call = answer.getToolCalls(0);
    assertEquals("get_weather", call.getName());
    assertEquals("{\"city\":\"Paris\"}", call.getArguments());
    assertFalse(call.getId().isEmpty(), "the gateway gives every tool call an id");
  }

  // -- streaming ----------------------------------------------------------------------------

  @Test
  void streamDeliversTheContentInOrderThenOneFinalChunk() {
    String prompt = "The quick brown fox jumps over the lazy dog";
    List<StreamChunk> chunks = new ArrayList<>();
    try (ChatStream stream = client.stream(ask("fake-chat", prompt))) {
      for (StreamChunk chunk : stream) {
        chunks.add(chunk);
      }
      assertTrue(stream.finalChunk().isPresent());
    }

    List<String> pieces = new ArrayList<>();
    for (StreamChunk chunk : chunks.subList(0, chunks.size() - 1)) {
      assertFalse(chunk.getFinal(), "only the last chunk is final");
      pieces.add(chunk.getContent());
    }
    List<String> expected = new ArrayList<>();
    for (int start = 0; start < prompt.length(); start += 4) {
      expected.add(prompt.substring(start, Math.min(prompt.length(), start + 4)));
    }
    assertEquals(expected, pieces, "content arrives in chunk_size pieces, in order");

    StreamChunk last = chunks.get(chunks.size() - 1);
    assertTrue(last.getFinal());
    assertEquals("", last.getContent());
    assertEquals(StopReason.STOP_REASON_END_TURN, last.getStopReason());
    assertEquals("fake", last.getProvider());
    assertEquals("fake-chat", last.getModel());
    assertTrue(last.getUsage().getCompletionTokenCount() > 0, last.getUsage().toString());
  }

  @Test
  void streamTextJoinsTheContentAndKeepsTheFinalChunk() {
    try (ChatStream stream = client.stream(ask("fake-chat", "joined by text()"))) {
      assertEquals("joined by text()", stream.text());
      assertEquals(StopReason.STOP_REASON_END_TURN, stream.finalChunk().orElseThrow().getStopReason());
      assertFalse(stream.hasNext());
    }
  }

  @Test
  void streamSendsToolCallFragmentsAndTheAssembledCallsAtTheEnd() {
    StringBuilder arguments = new StringBuilder();
    String name = "";
    try (ChatStream stream = client.stream(ask("fake-chat", "weather, please"))) {
      for (StreamChunk chunk : stream) {
        for (ToolCallDelta delta : chunk.getToolCallDeltasList()) {
          assertEquals(0, delta.getIndex());
          name = name + delta.getName();
          arguments.append(delta.getArgumentsDelta());
        }
      }
      StreamChunk last = stream.finalChunk().orElseThrow();
      assertEquals(StopReason.STOP_REASON_TOOL_CALLS, last.getStopReason());
      assertEquals(1, last.getToolCallsCount());
      assertEquals("get_weather", last.getToolCalls(0).getName());
      assertEquals(arguments.toString(), last.getToolCalls(0).getArguments());
    }
    assertEquals("get_weather", name);
    assertEquals("{\"city\":\"Paris\"}", arguments.toString());
  }

  @Test
  void streamAsJavaStreamCollectsTheContent() {
    try (var chunks = client.stream(ask("fake-chat", "as a java.util.stream")).chunks()) {
      String text = chunks.map(StreamChunk::getContent).reduce("", String::concat);
      assertEquals("as a java.util.stream", text);
    }
  }

  @Test
  void closingAStreamCancelsTheCall() {
    ChatStream stream = client.stream(ask("slow-chat", LONG_PROMPT));
    StringBuilder received = new StringBuilder();
    for (int i = 0; i < 3; i++) {
      assertTrue(stream.hasNext());
      received.append(stream.next().getContent());
    }
    long closing = System.nanoTime();
    stream.close();

    assertFalse(stream.hasNext(), "a closed stream has no more chunks");
    assertTrue(stream.isClosed());
    assertTrue(stream.finalChunk().isEmpty());
    assertEquals(LONG_PROMPT.substring(0, 3), received.toString());
    assertTrue(Duration.ofNanos(System.nanoTime() - closing).compareTo(Duration.ofSeconds(2)) < 0,
        "close() returns at once, not after the 20 s stream");
    // The channel is still good for the next call.
    assertEquals("still here", client.chat(ask("fake-chat", "still here")).getContent());
  }

  @Test
  void closeFromAnotherThreadEndsAReaderWaitingForTheFirstChunk() throws Exception {
    // The reply waits 10 s before its first chunk, so the reader blocks in hasNext().
    ChatStream stream = client.stream(ask("fake-chat", "take your time"));
    CompletableFuture<Void> closer = CompletableFuture.runAsync(
        stream::close, CompletableFuture.delayedExecutor(300, TimeUnit.MILLISECONDS));
    long start = System.nanoTime();

    assertFalse(stream.hasNext(), "the reader sees the end of the stream, not an error");
    assertTrue(Duration.ofNanos(System.nanoTime() - start).compareTo(Duration.ofSeconds(5)) < 0,
        "the reader is released long before the 10 s reply");
    closer.get(5, TimeUnit.SECONDS);
  }

  @Test
  void aStreamPastItsDeadlineFailsWithDeadlineExceeded() {
    PorticoClient hurried = client.withDeadline(Duration.ofMillis(500));
    try (ChatStream stream = hurried.stream(ask("slow-chat", LONG_PROMPT))) {
      PorticoException error = assertThrows(PorticoException.class, stream::text);
      assertEquals(Status.Code.DEADLINE_EXCEEDED, error.code());
    }
  }

  @Test
  void aFailureMidStreamIsThrownAfterTheChunksBeforeIt() {
    StringBuilder received = new StringBuilder();
    try (ChatStream stream = client.stream(ask("fake-chat", "fail midway"))) {
      PorticoException error = assertThrows(PorticoException.class, () -> {
        while (stream.hasNext()) {
          received.append(stream.next().getContent());
        }
      });
      assertEquals(Status.Code.UNAVAILABLE, error.code());
      assertEquals("ERROR_REASON_UPSTREAM_UNAVAILABLE", error.reason());
      assertEquals("fake", error.metadata().get("provider"));
      assertTrue(stream.finalChunk().isEmpty(), "a broken stream has no final chunk");
    }
    assertEquals("this ans", received.toString(), "the two chunks sent before the failure");
  }

  // -- embeddings ---------------------------------------------------------------------------

  @Test
  void embedReturnsOneUnitVectorPerInputInInputOrder() {
    EmbedResponse response = client.embed("fake-embed", List.of("alpha", "beta", "alpha"));

    assertEquals("fake", response.getProvider());
    assertEquals("fake-embed", response.getModel());
    assertEquals(3, response.getEmbeddingsCount());
    for (int i = 0; i < 3; i++) {
      Embedding embedding = response.getEmbeddings(i);
      assertEquals(i, embedding.getIndex());
      assertEquals(64, embedding.getValuesCount());
      double norm = 0;
      for (float v : embedding.getValuesList()) {
        norm += v * v;
      }
      assertEquals(1.0, Math.sqrt(norm), 1e-4);
    }
    assertEquals(response.getEmbeddings(0).getValuesList(), response.getEmbeddings(2).getValuesList(),
        "the same text gets the same vector");
    assertNotEquals(response.getEmbeddings(0).getValuesList(), response.getEmbeddings(1).getValuesList());
    assertTrue(response.getUsage().getPromptTokenCount() > 0);
  }

  @Test
  void embedShortensVectorsToTheAskedDimensions() {
    EmbedResponse response = client.embed(EmbedRequest.newBuilder()
        .setModel("fake-embed").addInputs("short").setDimensions(8).build());

    assertEquals(8, response.getEmbeddings(0).getValuesCount());
  }

  // -- errors -------------------------------------------------------------------------------

  @Test
  void anInvalidTemperatureIsRejectedNamingTheField() {
    ChatRequest request = ask("fake-chat", "hi").toBuilder().setTemperature(5).build();

    PorticoException error = assertThrows(PorticoException.class, () -> client.chat(request));

    assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
    assertEquals("ERROR_REASON_INVALID_REQUEST", error.reason());
    assertEquals(ErrorReason.ERROR_REASON_INVALID_REQUEST, error.errorReason());
    assertEquals("portico", error.domain());
    assertEquals(List.of("temperature"),
        error.fieldViolations().stream().map(FieldViolation::field).toList());
    assertFalse(error.fieldViolations().get(0).description().isEmpty());
    assertTrue(error.retryAfter().isEmpty());
    assertTrue(error.getMessage().startsWith("INVALID_ARGUMENT (ERROR_REASON_INVALID_REQUEST)"),
        error.getMessage());
  }

  @Test
  void aRequestWithoutMessagesIsRejectedNamingTheField() {
    ChatRequest request = ChatRequest.newBuilder().setModel("fake-chat").build();

    PorticoException error = assertThrows(PorticoException.class, () -> client.chat(request));

    assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
    assertTrue(error.fieldViolations().stream().anyMatch(v -> v.field().equals("messages")),
        error.fieldViolations().toString());
  }

  @Test
  void anInvalidStreamRequestFailsOnTheFirstRead() {
    ChatRequest request = ask("fake-chat", "hi").toBuilder().setTemperature(-1).build();
    try (ChatStream stream = client.stream(request)) {
      PorticoException error = assertThrows(PorticoException.class, stream::hasNext);
      assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
      assertEquals("temperature", error.fieldViolations().get(0).field());
    }
  }

  @Test
  void anUnknownProviderIsNotFound() {
    ChatRequest request = ask("", "hi").toBuilder().setProvider("no-such-provider").build();

    PorticoException error = assertThrows(PorticoException.class, () -> client.chat(request));

    assertEquals(Status.Code.NOT_FOUND, error.code());
    assertEquals(ErrorReason.ERROR_REASON_UNKNOWN_PROVIDER, error.errorReason());
  }

  @Test
  void aRateLimitSaysHowLongToWait() {
    // Retries off: the rule answers every attempt with the same 2.5 s hint.
    PorticoClient once = client.withRetryPolicy(RetryPolicy.disabled());
    PorticoException error =
        assertThrows(PorticoException.class, () -> once.chat(ask("fake-chat", "rate limit me")));

    assertEquals(Status.Code.RESOURCE_EXHAUSTED, error.code());
    assertEquals(ErrorReason.ERROR_REASON_RATE_LIMITED, error.errorReason());
    assertEquals(Duration.ofMillis(2500), error.retryAfter().orElseThrow());
    assertEquals("fake", error.metadata().get("provider"));
  }

  @Test
  void anUnreachableGatewayIsUnavailableWithoutDetails() throws IOException {
    int closedPort;
    try (ServerSocket socket = new ServerSocket(0)) {
      closedPort = socket.getLocalPort();
    }
    try (PorticoClient nowhere = PorticoClient.builder("127.0.0.1:" + closedPort)
        .defaultDeadline(Duration.ofSeconds(5)).build()) {
      PorticoException error =
          assertThrows(PorticoException.class, () -> nowhere.chat(ask("fake-chat", "hi")));
      assertEquals(Status.Code.UNAVAILABLE, error.code());
      assertEquals("", error.reason());
      assertEquals(ErrorReason.ERROR_REASON_UNSPECIFIED, error.errorReason());
      assertTrue(error.fieldViolations().isEmpty());
      // The message says where and why, not only gRPC's "io exception".
      String message = error.getMessage();
      assertTrue(message.contains("cannot reach the Portico gateway at 127.0.0.1:" + closedPort), message);
      assertTrue(message.contains("Connection refused"), message);

      CompletableFuture<CompletionResponse> async = nowhere.chatAsync(ask("fake-chat", "hi"));
      ExecutionException failed = assertThrows(ExecutionException.class, () -> async.get(10, TimeUnit.SECONDS));
      assertTrue(failed.getCause().getMessage().contains("127.0.0.1:" + closedPort), failed.getCause().getMessage());
    }
  }

  // -- without blocking ----------------------------------------------------------------------

  @Test
  void chatAsyncCompletesWithTheAnswerAndFailsWithThePorticoException() throws Exception {
    CompletableFuture<CompletionResponse> answer = client.chatAsync(ask("fake-chat", "Hello, future"));
    assertEquals("Hello, future", answer.get(10, TimeUnit.SECONDS).getContent());

    CompletableFuture<CompletionResponse> refused = client.chatAsync(
        ChatRequest.newBuilder().setProvider("no-such-provider").addMessages(Messages.user("hi")).build());
    ExecutionException failed = assertThrows(ExecutionException.class, () -> refused.get(10, TimeUnit.SECONDS));
    PorticoException error = assertInstanceOf(PorticoException.class, failed.getCause());
    assertEquals(Status.Code.NOT_FOUND, error.code());

    EmbedResponse vectors = client.embedAsync(
        EmbedRequest.newBuilder().setModel("fake-embed").addInputs("a").addInputs("b").build()).get(10, TimeUnit.SECONDS);
    assertEquals(2, vectors.getEmbeddingsCount());
  }

  @Test
  void aPublisherDeliversNoMoreChunksThanRequested() throws Exception {
    String prompt = "The quick brown fox jumps over the lazy dog";
    CollectingSubscriber oneAtATime = new CollectingSubscriber(1);
    client.streamAsync(ask("fake-chat", prompt)).subscribe(oneAtATime);

    assertEquals(prompt, oneAtATime.text().get(10, TimeUnit.SECONDS));
    assertEquals(0, oneAtATime.overDelivered);
    List<StreamChunk> chunks = oneAtATime.chunks();
    assertTrue(chunks.get(chunks.size() - 1).getFinal());
    assertEquals(1, chunks.stream().filter(StreamChunk::getFinal).count());
  }

  @Test
  void aPublisherTakesOneSubscriber() throws Exception {
    ChatPublisher publisher = client.streamAsync(ask("fake-chat", "once"));
    CollectingSubscriber first = new CollectingSubscriber(8);
    CollectingSubscriber second = new CollectingSubscriber(8);
    publisher.subscribe(first);
    publisher.subscribe(second);
    assertEquals("once", first.text().get(10, TimeUnit.SECONDS));
    ExecutionException refused = assertThrows(ExecutionException.class, () -> second.text().get(1, TimeUnit.SECONDS));
    assertInstanceOf(IllegalStateException.class, refused.getCause());
  }

  @Test
  void aListenerGetsTheChunksThenTheEndOrTheFailure() throws Exception {
    StringBuilder text = new StringBuilder();
    CompletableFuture<Trace> ended = new CompletableFuture<>();
    client.streamAsync(ask("fake-chat", "called back"), new StreamListener() {
      @Override
      public void onChunk(StreamChunk chunk) {
        text.append(chunk.getContent());
      }

      @Override
      public void onComplete(Trace trace) {
        ended.complete(trace);
      }

      @Override
      public void onError(PorticoException error) {
        ended.completeExceptionally(error);
      }
    });
    assertEquals(1, ended.get(10, TimeUnit.SECONDS).clientAttempts());
    assertEquals("called back", text.toString());

    CompletableFuture<PorticoException> failed = new CompletableFuture<>();
    List<String> before = new ArrayList<>();
    client.streamAsync(ask("fake-chat", "fail midway"), new StreamListener() {
      @Override
      public void onChunk(StreamChunk chunk) {
        before.add(chunk.getContent());
      }

      @Override
      public void onError(PorticoException error) {
        failed.complete(error);
      }
    });
    PorticoException error = failed.get(10, TimeUnit.SECONDS);
    assertEquals(Status.Code.UNAVAILABLE, error.code());
    assertEquals(2, before.size(), "the two chunks before the failure");
  }

  @Test
  void aPublisherWithoutDemandHoldsTheStreamAndCancelStopsIt() throws Exception {
    ChatPublisher publisher = client.streamAsync(ask("slow-chat", LONG_PROMPT));
    CountDownLatch three = new CountDownLatch(3);
    List<String> received = Collections.synchronizedList(new ArrayList<>());
    publisher.subscribe(new Flow.Subscriber<StreamChunk>() {
      @Override
      public void onSubscribe(Flow.Subscription subscription) {
        subscription.request(3); // and never more
      }

      @Override
      public void onNext(StreamChunk chunk) {
        received.add(chunk.getContent());
        three.countDown();
      }

      @Override
      public void onError(Throwable error) {
        received.add("error: " + error);
      }

      @Override
      public void onComplete() {
        received.add("complete");
      }
    });
    assertTrue(three.await(10, TimeUnit.SECONDS), "three chunks within 10 s");
    publisher.cancel();

    assertEquals(List.of("a", " ", "s"), received, "exactly what was requested, and no end signal");
    CompletionException traceless = assertThrows(CompletionException.class, () -> publisher.trace().join());
    assertInstanceOf(CancellationException.class, traceless.getCause());
    assertEquals("still here", client.chat(ask("fake-chat", "still here")).getContent());
  }

  @Test
  void aToolFromARecordIsCalledAndItsArgumentsFillTheRecord() {
    ChatRequest request = ask("fake-chat", "What is the weather in Paris?").toBuilder()
        .addTools(Tools.fromRecord("get_weather", "The weather in a city.", WeatherArgs.class))
        .build();
    ToolCall call = client.chat(request).getToolCalls(0);
    WeatherArgs args = new com.google.gson.Gson().fromJson(call.getArguments(), WeatherArgs.class);
    assertEquals("Paris", args.city());
  }

  record WeatherArgs(@Tools.Description("The city, e.g. Paris") String city) {}

  // -- the rest -----------------------------------------------------------------------------

  @Test
  void listProvidersNamesThemInConfigurationOrder() {
    List<ProviderInfo> providers = client.listProviders().getProvidersList();

    assertEquals(List.of("fake", "slow"), providers.stream().map(ProviderInfo::getName).toList());
    assertEquals("fake", providers.get(0).getKind());
    assertEquals("fake-chat", providers.get(0).getDefaultModel());
  }

  @Test
  void listProvidersFollowsEveryPage() throws IOException, InterruptedException {
    // More providers than the gateway's default page of 50.
    StringBuilder config = new StringBuilder("server: {health_probe_interval: 0, shutdown_grace: 1}\nproviders:\n");
    List<String> names = new ArrayList<>();
    for (int i = 0; i < 120; i++) {
      String name = String.format("p%03d", i);
      names.add(name);
      config.append("  - {name: ").append(name).append(", kind: fake}\n");
    }
    try (GatewayProcess many = GatewayProcess.start(config.toString());
        PorticoClient manyClient = PorticoClient.builder(many.address())
            .defaultDeadline(Duration.ofSeconds(20))
            .build()) {
      var reply = manyClient.listProviders();
      assertEquals(names, reply.getProvidersList().stream().map(ProviderInfo::getName).toList());
      assertEquals("", reply.getNextPageToken());
    }
  }
}
