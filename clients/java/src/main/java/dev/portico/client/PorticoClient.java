package dev.portico.client;

import dev.portico.v1.ChatRequest;
import dev.portico.v1.CompletionResponse;
import dev.portico.v1.CountTokensRequest;
import dev.portico.v1.CountTokensResponse;
import dev.portico.v1.EmbedRequest;
import dev.portico.v1.EmbedResponse;
import dev.portico.v1.GetCapabilitiesRequest;
import dev.portico.v1.GetCapabilitiesResponse;
import dev.portico.v1.LLMServiceGrpc;
import dev.portico.v1.LLMServiceGrpc.LLMServiceBlockingStub;
import dev.portico.v1.LLMServiceGrpc.LLMServiceStub;
import dev.portico.v1.ListProvidersRequest;
import dev.portico.v1.ListProvidersResponse;
import dev.portico.v1.StreamChunk;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiConsumer;
import java.util.function.Function;
import java.util.function.UnaryOperator;

/**
 * A client for the Portico gateway: blocking methods ({@code chat}, {@code stream}, ...) and
 * their non-blocking counterparts ({@code chatAsync} returning a {@link CompletableFuture},
 * {@code streamAsync} returning a {@link Flow.Publisher} or calling a {@link StreamListener}).
 *
 * <pre>{@code
 * try (PorticoClient client = PorticoClient.builder("127.0.0.1:50051").build()) {
 *   CompletionResponse answer = client.chat(ChatRequest.newBuilder()
 *       .setModel("fake-chat")
 *       .addMessages(Messages.user("Say hello"))
 *       .build());
 * }
 * }</pre>
 *
 * <p>Requests and responses are the API's generated protobuf messages (package {@code
 * dev.portico.v1}). Every method throws {@link PorticoException} when the call fails, after
 * retrying the failures the gateway marks retry-safe as the {@link RetryPolicy} allows. A client
 * is thread-safe and holds one channel: make one and share it; {@link #close()} shuts the
 * channel down.
 */
public final class PorticoClient implements AutoCloseable {
  /** Matches the gateway's default message limit: a large embedding batch exceeds gRPC's 4 MiB. */
  static final int DEFAULT_MAX_INBOUND_MESSAGE_BYTES = 16 * 1024 * 1024;

  private static final Duration CLOSE_GRACE = Duration.ofSeconds(5);

  private final ManagedChannel channel;
  private final boolean ownsChannel;
  private final String address;
  private final LLMServiceBlockingStub stub;
  private final LLMServiceStub asyncStub;
  private final Duration deadline;
  private final RetryPolicy retryPolicy;

  private PorticoClient(
      ManagedChannel channel,
      boolean ownsChannel,
      String address,
      Duration deadline,
      RetryPolicy retryPolicy) {
    this.channel = channel;
    this.ownsChannel = ownsChannel;
    this.address = address;
    this.stub = LLMServiceGrpc.newBlockingStub(channel);
    this.asyncStub = LLMServiceGrpc.newStub(channel);
    this.deadline = deadline;
    this.retryPolicy = retryPolicy;
  }

  /** Starts a client for the gateway at {@code address}: {@code host:port} or a gRPC target URI. */
  public static Builder builder(String address) {
    return new Builder(address);
  }

  /** Generates a complete answer. */
  public CompletionResponse chat(ChatRequest request) {
    return chatWithTrace(request).response();
  }

  /** Generates a complete answer, with the gateway's attempt trace. */
  public Traced<CompletionResponse> chatWithTrace(ChatRequest request) {
    return callTraced(stub -> stub.chat(request));
  }

  /**
   * Starts a streamed answer. The returned stream must be closed (try-with-resources);
   * closing it before the end cancels the call. With {@code stream_failover} set on the
   * request, see {@link ChatStream} for the failover markers.
   */
  public ChatStream stream(ChatRequest request) {
    Attempts attempts = new Attempts(retryPolicy, deadline);
    AtomicReference<Metadata> trailers = new AtomicReference<>();
    return ChatStream.start(
        () -> {
          trailers.set(null);
          return stubFor(attempts).withInterceptors(captureTrailers(trailers)).streamChat(request);
        },
        attempts,
        trailers,
        address);
  }

  /**
   * Starts a streamed answer without blocking: the call starts when the returned publisher's
   * one subscriber subscribes, and the subscriber's demand paces it (see {@link ChatPublisher}).
   */
  public ChatPublisher streamAsync(ChatRequest request) {
    Objects.requireNonNull(request, "request");
    return new ChatPublisher(this::asyncStubFor, request, new Attempts(retryPolicy, deadline), address);
  }

  /**
   * Starts a streamed answer whose chunks, end and failure go to {@code listener}, on a gRPC
   * thread; returns at once. {@link ChatPublisher#cancel()} on the result cancels the call.
   */
  public ChatPublisher streamAsync(ChatRequest request, StreamListener listener) {
    Objects.requireNonNull(listener, "listener");
    ChatPublisher publisher = streamAsync(request);
    publisher.subscribe(new Flow.Subscriber<StreamChunk>() {
      @Override
      public void onSubscribe(Flow.Subscription subscription) {
        subscription.request(Long.MAX_VALUE);
      }

      @Override
      public void onNext(StreamChunk chunk) {
        listener.onChunk(chunk);
      }

      @Override
      public void onError(Throwable error) {
        listener.onError(error instanceof PorticoException failure
            ? failure
            : ErrorDecoder.decode(Status.fromThrowable(error).asRuntimeException(), address));
      }

      @Override
      public void onComplete() {
        listener.onComplete(publisher.trace().getNow(Trace.EMPTY));
      }
    });
    return publisher;
  }

  /** Embeds a batch of texts; the vectors come back in input order. */
  public EmbedResponse embed(EmbedRequest request) {
    return embedWithTrace(request).response();
  }

  /** Embeds a batch of texts, with the gateway's attempt trace. */
  public Traced<EmbedResponse> embedWithTrace(EmbedRequest request) {
    return callTraced(stub -> stub.embed(request));
  }

  /** Embeds {@code inputs} with {@code model} (empty: the provider's default embedding model). */
  public EmbedResponse embed(String model, List<String> inputs) {
    return embed(EmbedRequest.newBuilder().setModel(model).addAllInputs(inputs).build());
  }

  /** Counts the tokens a chat request would use. */
  public CountTokensResponse countTokens(CountTokensRequest request) {
    return countTokensWithTrace(request).response();
  }

  /** Counts the tokens a chat request would use, with the gateway's attempt trace. */
  public Traced<CountTokensResponse> countTokensWithTrace(CountTokensRequest request) {
    return callTraced(stub -> stub.countTokens(request));
  }

  /** Tells what a provider and model can do. */
  public GetCapabilitiesResponse getCapabilities(GetCapabilitiesRequest request) {
    return getCapabilitiesWithTrace(request).response();
  }

  /** Tells what a provider and model can do, with the gateway's attempt trace. */
  public Traced<GetCapabilitiesResponse> getCapabilitiesWithTrace(GetCapabilitiesRequest request) {
    return callTraced(stub -> stub.getCapabilities(request));
  }

  // -- non-blocking unary calls: the future fails with a PorticoException ---------------------

  /**
   * Generates a complete answer without blocking. The future completes on a gRPC thread (chain
   * long work with an {@code ...Async} method and an executor of your own); it fails with the
   * {@link PorticoException} {@link #chat} would throw, and cancelling it cancels the call.
   */
  public CompletableFuture<CompletionResponse> chatAsync(ChatRequest request) {
    return chatWithTraceAsync(request).thenApply(Traced::response);
  }

  /** {@link #chatAsync}, with the gateway's attempt trace. */
  public CompletableFuture<Traced<CompletionResponse>> chatWithTraceAsync(ChatRequest request) {
    return callAsync((stub, observer) -> stub.chat(request, observer));
  }

  /** Embeds a batch of texts without blocking; see {@link #chatAsync}. */
  public CompletableFuture<EmbedResponse> embedAsync(EmbedRequest request) {
    return embedWithTraceAsync(request).thenApply(Traced::response);
  }

  /** {@link #embedAsync}, with the gateway's attempt trace. */
  public CompletableFuture<Traced<EmbedResponse>> embedWithTraceAsync(EmbedRequest request) {
    return callAsync((stub, observer) -> stub.embed(request, observer));
  }

  /** Counts the tokens a chat request would use, without blocking; see {@link #chatAsync}. */
  public CompletableFuture<CountTokensResponse> countTokensAsync(CountTokensRequest request) {
    return this.<CountTokensResponse>callAsync((stub, observer) -> stub.countTokens(request, observer))
        .thenApply(Traced::response);
  }

  /** Tells what a provider and model can do, without blocking; see {@link #chatAsync}. */
  public CompletableFuture<GetCapabilitiesResponse> getCapabilitiesAsync(GetCapabilitiesRequest request) {
    return this.<GetCapabilitiesResponse>callAsync((stub, observer) -> stub.getCapabilities(request, observer))
        .thenApply(Traced::response);
  }

  /**
   * Lists every configured provider with its models and health, in configuration order.
   * It follows the gateway's pages, so the answer holds them all and no next page token;
   * each page's call gets the default deadline.
   */
  public ListProvidersResponse listProviders() {
    ListProvidersResponse.Builder all = ListProvidersResponse.newBuilder();
    String token = "";
    do {
      ListProvidersRequest request = ListProvidersRequest.newBuilder().setPageToken(token).build();
      ListProvidersResponse page = call(stub -> stub.listProviders(request));
      all.addAllProviders(page.getProvidersList());
      token = page.getNextPageToken();
    } while (!token.isEmpty());
    return all.build();
  }

  /**
   * A client on the same channel whose calls get {@code deadline} instead of the default.
   * Closing the returned client does nothing; close this one.
   */
  public PorticoClient withDeadline(Duration deadline) {
    return new PorticoClient(channel, false, address, requirePositive(deadline, "deadline"), retryPolicy);
  }

  /**
   * A client on the same channel whose calls are retried as {@code policy} says. Closing the
   * returned client does nothing; close this one.
   */
  public PorticoClient withRetryPolicy(RetryPolicy policy) {
    return new PorticoClient(channel, false, address, deadline, Objects.requireNonNull(policy, "policy"));
  }

  /** How calls that fail in a retry-safe way are sent again. */
  public RetryPolicy retryPolicy() {
    return retryPolicy;
  }

  /** The deadline each call gets, if any. */
  public Optional<Duration> deadline() {
    return Optional.ofNullable(deadline);
  }

  /**
   * The vector store (VectorService) on this client's channel, with its caller key, deadline
   * and retry policy.
   */
  public Vectors vectors() {
    return new Vectors(channel, address, deadline, retryPolicy);
  }

  /** The channel, for generated stubs of other services (for example grpc.health.v1). */
  public Channel channel() {
    return channel;
  }

  /** Shuts the channel down, waiting a few seconds for calls in flight. */
  @Override
  public void close() {
    if (!ownsChannel) {
      return;
    }
    channel.shutdown();
    try {
      if (!channel.awaitTermination(CLOSE_GRACE.toMillis(), TimeUnit.MILLISECONDS)) {
        channel.shutdownNow();
      }
    } catch (InterruptedException interrupted) {
      channel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  private LLMServiceBlockingStub stubFor(Attempts attempts) {
    // A deadline is a point in time, so each attempt needs a stub made when it starts,
    // with what is left of the call's deadline.
    return attempts.remaining()
        .map(left -> stub.withDeadlineAfter(left.toNanos(), TimeUnit.NANOSECONDS))
        .orElse(stub);
  }

  private LLMServiceStub asyncStubFor(Attempts attempts) {
    return attempts.remaining()
        .map(left -> asyncStub.withDeadlineAfter(left.toNanos(), TimeUnit.NANOSECONDS))
        .orElse(asyncStub);
  }

  private <T> T call(Function<LLMServiceBlockingStub, T> rpc) {
    return call(rpc, new Attempts(retryPolicy, deadline));
  }

  private <T> T call(Function<LLMServiceBlockingStub, T> rpc, Attempts attempts) {
    while (true) {
      try {
        return rpc.apply(stubFor(attempts));
      } catch (StatusRuntimeException error) {
        PorticoException failure = ErrorDecoder.decode(error, address);
        Duration delay = attempts.delayBeforeNext(failure).orElseThrow(() -> failure);
        Attempts.waitBeforeRetry(delay, failure);
      }
    }
  }

  private <T> Traced<T> callTraced(Function<LLMServiceBlockingStub, T> rpc) {
    AtomicReference<Metadata> trailers = new AtomicReference<>();
    Attempts attempts = new Attempts(retryPolicy, deadline);
    T response = call(stub -> {
      trailers.set(null);
      return rpc.apply(stub.withInterceptors(captureTrailers(trailers)));
    }, attempts);
    return new Traced<>(response, Trace.from(trailers.get()).withClientAttempts(attempts.made()));
  }

  private <T> CompletableFuture<Traced<T>> callAsync(BiConsumer<LLMServiceStub, StreamObserver<T>> rpc) {
    return AsyncUnary.start(this::asyncStubFor, rpc, new Attempts(retryPolicy, deadline), address);
  }

  static ClientInterceptor captureTrailers(AtomicReference<Metadata> trailers) {
    return MetadataUtils.newCaptureMetadataInterceptor(new AtomicReference<>(), trailers);
  }

  private static Duration requirePositive(Duration value, String name) {
    Objects.requireNonNull(value, name);
    if (value.isNegative() || value.isZero()) {
      throw new IllegalArgumentException(name + " must be positive, got " + value);
    }
    return value;
  }

  /**
   * Options of a {@link PorticoClient}. Plaintext, no metadata and no deadline unless set; the
   * caller key comes from {@code PORTICO_API_KEY} unless {@link #apiKey} gives one.
   */
  public static final class Builder {
    /** The environment variable the caller key is read from when {@link #apiKey} is not called. */
    public static final String API_KEY_ENV = "PORTICO_API_KEY";

    private static final Metadata.Key<String> AUTHORIZATION =
        Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    private final String address;
    private ChannelCredentials credentials; // credentials(...); null: plaintext or TLS below
    private boolean tls;
    private Path caFile;
    private Path certFile;
    private Path keyFile;
    private String apiKey; // null: from the environment
    private UnaryOperator<String> environment = System::getenv;
    private final Metadata metadata = new Metadata();
    private Duration defaultDeadline;
    private RetryPolicy retryPolicy = RetryPolicy.defaults();
    private int maxInboundMessageBytes = DEFAULT_MAX_INBOUND_MESSAGE_BYTES;

    private Builder(String address) {
      Objects.requireNonNull(address, "address");
      if (address.isBlank()) {
        throw new IllegalArgumentException("address must not be empty");
      }
      this.address = address;
    }

    /** Plaintext HTTP/2 (the default): for a gateway on the same host or a trusted network. */
    public Builder plaintext() {
      this.credentials = null;
      this.tls = false;
      this.caFile = null;
      this.certFile = null;
      this.keyFile = null;
      return this;
    }

    /** TLS, trusting the JVM's default certificate authorities. */
    public Builder tls() {
      this.credentials = null;
      this.tls = true;
      this.caFile = null;
      return this;
    }

    /** TLS, trusting only the PEM certificates in {@code caFile} (a private CA). */
    public Builder tls(Path caFile) {
      this.credentials = null;
      this.tls = true;
      this.caFile = Objects.requireNonNull(caFile, "caFile");
      return this;
    }

    /**
     * Mutual TLS: presents the PEM certificate chain in {@code certFile} and its PEM (PKCS#8)
     * private key in {@code keyFile} when the gateway asks for a client certificate. Implies
     * TLS; add {@link #tls(Path)} to trust a private CA.
     */
    public Builder clientCertificate(Path certFile, Path keyFile) {
      this.credentials = null;
      this.tls = true;
      this.certFile = Objects.requireNonNull(certFile, "certFile");
      this.keyFile = Objects.requireNonNull(keyFile, "keyFile");
      return this;
    }

    /** Any channel credentials, for what the other options do not cover. */
    public Builder credentials(ChannelCredentials credentials) {
      plaintext();
      this.credentials = Objects.requireNonNull(credentials, "credentials");
      return this;
    }

    /**
     * The caller key, sent with every call as {@code authorization: Bearer <key>} (over
     * plaintext too). Without this the key comes from {@code PORTICO_API_KEY}, when set; an
     * empty key sends none.
     */
    public Builder apiKey(String key) {
      this.apiKey = Objects.requireNonNull(key, "key");
      return this;
    }

    /** Where environment variables are read; tests replace it. */
    Builder environment(UnaryOperator<String> environment) {
      this.environment = Objects.requireNonNull(environment, "environment");
      return this;
    }

    /**
     * Sends this header with every call. Keys are lower-cased ASCII and must not end in {@code
     * -bin}; adding a key twice sends both values.
     */
    public Builder metadata(String key, String value) {
      Objects.requireNonNull(value, "value");
      metadata.put(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER), value);
      return this;
    }

    /** The deadline every call gets unless {@link PorticoClient#withDeadline} overrides it. */
    public Builder defaultDeadline(Duration deadline) {
      this.defaultDeadline = requirePositive(deadline, "deadline");
      return this;
    }

    /**
     * How calls that fail in a retry-safe way are sent again; {@link RetryPolicy#defaults()}
     * unless set, {@link RetryPolicy#disabled()} for one attempt per call.
     */
    public Builder retryPolicy(RetryPolicy policy) {
      this.retryPolicy = Objects.requireNonNull(policy, "policy");
      return this;
    }

    /** The largest response message accepted; 16 MiB unless set. */
    public Builder maxInboundMessageBytes(int bytes) {
      if (bytes <= 0) {
        throw new IllegalArgumentException("maxInboundMessageBytes must be positive, got " + bytes);
      }
      this.maxInboundMessageBytes = bytes;
      return this;
    }

    /**
     * Creates the client. The channel connects lazily, on the first call, so this does not
     * fail when the gateway is down.
     *
     * @throws UncheckedIOException if the CA file, client certificate or key cannot be read
     */
    public PorticoClient build() {
      ManagedChannelBuilder<?> channel = Grpc.newChannelBuilder(address, channelCredentials())
          .maxInboundMessageSize(maxInboundMessageBytes)
          .userAgent("portico-java");
      Metadata headers = new Metadata();
      headers.merge(metadata);
      String key = apiKey != null ? apiKey : environment.apply(API_KEY_ENV);
      if (key != null && !key.isEmpty()) {
        headers.put(AUTHORIZATION, "Bearer " + key);
      }
      if (!headers.keys().isEmpty()) {
        channel.intercept(MetadataUtils.newAttachHeadersInterceptor(headers));
      }
      return new PorticoClient(channel.build(), true, address, defaultDeadline, retryPolicy);
    }

    private ChannelCredentials channelCredentials() {
      if (credentials != null) {
        return credentials;
      }
      if (!tls) {
        return InsecureChannelCredentials.create();
      }
      TlsChannelCredentials.Builder tlsCredentials = TlsChannelCredentials.newBuilder();
      if (caFile != null) {
        try {
          tlsCredentials.trustManager(caFile.toFile());
        } catch (IOException error) {
          throw new UncheckedIOException("cannot read the CA file " + caFile, error);
        }
      }
      if (certFile != null) {
        try {
          tlsCredentials.keyManager(certFile.toFile(), keyFile.toFile());
        } catch (IOException error) {
          throw new UncheckedIOException(
              "cannot read the client certificate " + certFile + " or its key " + keyFile, error);
        }
      }
      return tlsCredentials.build();
    }
  }
}
