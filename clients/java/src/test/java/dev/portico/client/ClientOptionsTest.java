package dev.portico.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.portico.v1.ChatRequest;
import dev.portico.v1.CompletionResponse;
import dev.portico.v1.LLMServiceGrpc;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.TlsServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import javax.net.ssl.KeyManagerFactory;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the builder's options put on the wire: TLS, metadata and deadlines.
 *
 * <p>The gateway serves plaintext and does not reveal the headers or deadline it received,
 * so these tests talk to a small TLS gRPC server on loopback that records them. Its
 * certificate is made for the test by the JDK's keytool, so no key is committed.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class ClientOptionsTest {
  private static final char[] PASSWORD = "portico-test".toCharArray();

  @TempDir static Path dir;

  private static Server server;
  private static Path certificate;
  private static String address;
  private static final AtomicReference<Metadata> lastHeaders = new AtomicReference<>();
  private static final AtomicReference<Deadline> lastDeadline = new AtomicReference<>();

  /** Answers Chat and records what the call arrived with. */
  private static final class RecordingService extends LLMServiceGrpc.LLMServiceImplBase {
    @Override
    public void chat(ChatRequest request, StreamObserver<CompletionResponse> response) {
      lastDeadline.set(Context.current().getDeadline());
      response.onNext(CompletionResponse.newBuilder().setContent("over tls").build());
      response.onCompleted();
    }
  }

  private static final class HeaderRecorder implements ServerInterceptor {
    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(
        ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
      lastHeaders.set(headers);
      return next.startCall(call, headers);
    }
  }

  @BeforeAll
  static void startTlsServer() throws Exception {
    Path keystore = dir.resolve("server.p12");
    certificate = dir.resolve("server.pem");
    keytool("-genkeypair", "-alias", "portico", "-keyalg", "EC", "-groupname", "secp256r1",
        "-validity", "2", "-dname", "CN=localhost", "-ext", "san=ip:127.0.0.1,dns:localhost",
        "-storetype", "PKCS12", "-keystore", keystore.toString(),
        "-storepass", new String(PASSWORD), "-keypass", new String(PASSWORD));
    KeyStore keys = KeyStore.getInstance("PKCS12");
    try (InputStream in = Files.newInputStream(keystore)) {
      keys.load(in, PASSWORD);
    }
    // The client trusts exactly this certificate, written as PEM.
    String pem = "-----BEGIN CERTIFICATE-----\n"
        + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII))
            .encodeToString(keys.getCertificate("portico").getEncoded())
        + "\n-----END CERTIFICATE-----\n";
    Files.writeString(certificate, pem, StandardCharsets.US_ASCII);
    KeyManagerFactory keyManagers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    keyManagers.init(keys, PASSWORD);

    server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0),
            TlsServerCredentials.newBuilder().keyManager(keyManagers.getKeyManagers()).build())
        .addService(ServerInterceptors.intercept(new RecordingService(), new HeaderRecorder()))
        .build()
        .start();
    address = "127.0.0.1:" + server.getPort();
  }

  private static void keytool(String... args) throws IOException, InterruptedException {
    Path keytool = Path.of(System.getProperty("java.home"), "bin", "keytool");
    List<String> command = new ArrayList<>(List.of(keytool.toString(), "-noprompt"));
    command.addAll(List.of(args));
    Path output = dir.resolve("keytool.log");
    Process process = new ProcessBuilder(command)
        .redirectErrorStream(true)
        .redirectOutput(output.toFile())
        .start();
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      throw new IllegalStateException("keytool " + args[0] + " did not finish within 30 s");
    }
    if (process.exitValue() != 0) {
      throw new IllegalStateException("keytool " + args[0] + " failed: " + Files.readString(output));
    }
  }

  @AfterAll
  static void stopTlsServer() throws InterruptedException {
    if (server != null) {
      server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
    }
  }

  private static ChatRequest hello() {
    return ChatRequest.newBuilder().setModel("m").addMessages(Messages.user("hello")).build();
  }

  @Test
  void tlsMetadataAndTheDefaultDeadlineReachTheServer() {
    try (PorticoClient client = PorticoClient.builder(address)
        .tls(certificate)
        .metadata("authorization", "Bearer test-key")
        .metadata("x-portico-team", "search")
        .defaultDeadline(Duration.ofSeconds(7))
        .build()) {
      assertEquals("over tls", client.chat(hello()).getContent());
    }

    Metadata headers = lastHeaders.get();
    assertEquals("Bearer test-key",
        headers.get(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER)));
    assertEquals("search", headers.get(Metadata.Key.of("x-portico-team", Metadata.ASCII_STRING_MARSHALLER)));
    Deadline deadline = lastDeadline.get();
    assertNotNull(deadline, "the default deadline is sent");
    long left = deadline.timeRemaining(TimeUnit.MILLISECONDS);
    assertTrue(left > 3_000 && left <= 7_000, "about 7 s left, got " + left + " ms");
  }

  @Test
  void withDeadlineReplacesTheDefaultForItsCalls() {
    try (PorticoClient client = PorticoClient.builder(address).tls(certificate)
        .defaultDeadline(Duration.ofSeconds(60)).build()) {
      PorticoClient quick = client.withDeadline(Duration.ofSeconds(2));
      assertEquals("over tls", quick.chat(hello()).getContent());
      long left = lastDeadline.get().timeRemaining(TimeUnit.MILLISECONDS);
      assertTrue(left > 0 && left <= 2_000, "at most 2 s left, got " + left + " ms");
      assertEquals(Duration.ofSeconds(60), client.deadline().orElseThrow());

      quick.close(); // a derived client does not own the channel
      assertEquals("over tls", client.chat(hello()).getContent());
    }
  }

  @Test
  void withoutADeadlineNoneIsSent() {
    try (PorticoClient client = PorticoClient.builder(address).tls(certificate).build()) {
      client.chat(hello());
    }
    assertNull(lastDeadline.get());
  }

  @Test
  void tlsRefusesAServerItDoesNotTrust() {
    // The JVM's default authorities do not know the test's self-signed certificate.
    try (PorticoClient client = PorticoClient.builder(address).tls()
        .defaultDeadline(Duration.ofSeconds(10)).build()) {
      PorticoException error = assertThrows(PorticoException.class, () -> client.chat(hello()));
      assertEquals(Status.Code.UNAVAILABLE, error.code());
      assertEquals("", error.reason());
    }
  }

  @Test
  void theBuilderRejectsOptionsThatCannotWork() {
    PorticoClient.Builder builder = PorticoClient.builder(address);
    assertThrows(IllegalArgumentException.class, () -> builder.defaultDeadline(Duration.ZERO));
    assertThrows(IllegalArgumentException.class, () -> builder.metadata("trace-bin", "x"));
    assertThrows(IllegalArgumentException.class, () -> builder.maxInboundMessageBytes(0));
    assertThrows(IllegalArgumentException.class, () -> PorticoClient.builder(" "));
    Path missing = dir.resolve("missing.pem");
    assertThrows(UncheckedIOException.class, () -> PorticoClient.builder(address).tls(missing).build());
  }
}
