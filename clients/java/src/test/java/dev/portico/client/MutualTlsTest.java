package dev.portico.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.portico.v1.ChatRequest;
import dev.portico.v1.CompletionResponse;
import dev.portico.v1.LLMServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerCredentials;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.TlsServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Caller keys and client certificates as a server sees them: a small gRPC server on loopback,
 * once plaintext and once requiring a client certificate from the test's own CA, records the
 * {@code authorization} header and the verified certificate's subject of each call.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class MutualTlsTest {
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  @TempDir static Path dir;

  private static TestCertificates certificates;
  private static Path caFile;
  private static Server mutualTls;
  private static Server plaintext;
  private static final AtomicReference<String> lastAuthorization = new AtomicReference<>();
  private static final AtomicReference<String> lastSubject = new AtomicReference<>();

  private static final class Echo extends LLMServiceGrpc.LLMServiceImplBase {
    @Override
    public void chat(ChatRequest request, StreamObserver<CompletionResponse> response) {
      response.onNext(CompletionResponse.newBuilder().setContent("seen").build());
      response.onCompleted();
    }
  }

  private static final class Recorder implements ServerInterceptor {
    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(
        ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
      lastAuthorization.set(headers.get(AUTHORIZATION));
      lastSubject.set(subject(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION)));
      return next.startCall(call, headers);
    }

    private static String subject(SSLSession session) {
      if (session == null) {
        return null;
      }
      try {
        Certificate[] chain = session.getPeerCertificates();
        return ((X509Certificate) chain[0]).getSubjectX500Principal().getName();
      } catch (SSLPeerUnverifiedException none) {
        return null;
      }
    }
  }

  @BeforeAll
  static void startServers() throws Exception {
    certificates = new TestCertificates(dir);
    caFile = certificates.authority("ca");
    Path serverCert = certificates.issue("ca", "server", "/CN=gateway", "127.0.0.1");
    certificates.issue("ca", "billing", "/O=Acme/CN=billing", null);
    certificates.authority("other-ca");
    certificates.issue("other-ca", "stranger", "/CN=stranger", null);

    ServerCredentials requireClientCertificates = TlsServerCredentials.newBuilder()
        .keyManager(serverCert.toFile(), certificates.key("server").toFile())
        .trustManager(caFile.toFile())
        .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE)
        .build();
    mutualTls = start(requireClientCertificates);
    plaintext = start(InsecureServerCredentials.create());
  }

  private static Server start(ServerCredentials credentials) throws Exception {
    return NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0), credentials)
        .addService(ServerInterceptors.intercept(new Echo(), new Recorder()))
        .build()
        .start();
  }

  @AfterAll
  static void stopServers() throws InterruptedException {
    for (Server server : new Server[] {mutualTls, plaintext}) {
      if (server != null) {
        server.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
      }
    }
  }

  private static String address(Server server) {
    return "127.0.0.1:" + server.getPort();
  }

  private static String chatThrough(PorticoClient.Builder builder) {
    try (PorticoClient client = builder.defaultDeadline(Duration.ofSeconds(10)).build()) {
      return client.chat(ChatRequest.newBuilder().addMessages(Messages.user("hi")).build()).getContent();
    }
  }

  @Test
  void aClientCertificateFromTheTrustedCaIsAcceptedAndItsSubjectSeen() {
    assertEquals("seen", chatThrough(PorticoClient.builder(address(mutualTls))
        .tls(caFile)
        .clientCertificate(dir.resolve("billing.pem"), certificates.key("billing"))
        .apiKey("sk-over-tls")));
    assertEquals("CN=billing,O=Acme", lastSubject.get());
    assertEquals("Bearer sk-over-tls", lastAuthorization.get());
  }

  @Test
  void withoutACertificateOrWithAnotherCasTheHandshakeFails() {
    PorticoClient.Builder none = PorticoClient.builder(address(mutualTls)).tls(caFile);
    PorticoClient.Builder stranger = PorticoClient.builder(address(mutualTls)).tls(caFile)
        .clientCertificate(dir.resolve("stranger.pem"), certificates.key("stranger"));
    for (PorticoClient.Builder builder : new PorticoClient.Builder[] {none, stranger}) {
      PorticoException error = assertThrows(PorticoException.class, () -> chatThrough(builder.retryPolicy(RetryPolicy.disabled())));
      assertEquals(Status.Code.UNAVAILABLE, error.code());
      assertTrue(error.getMessage().contains(address(mutualTls)), error.getMessage());
    }
  }

  @Test
  void theApiKeyIsABearerTokenOverPlaintextTooAndComesFromTheEnvironmentByDefault() {
    String address = address(plaintext);
    assertEquals("seen", chatThrough(PorticoClient.builder(address).apiKey("sk-plain")));
    assertEquals("Bearer sk-plain", lastAuthorization.get());
    assertNull(lastSubject.get());

    Map<String, String> environment = Map.of("PORTICO_API_KEY", "sk-from-env");
    chatThrough(PorticoClient.builder(address).environment(environment::get));
    assertEquals("Bearer sk-from-env", lastAuthorization.get());

    chatThrough(PorticoClient.builder(address).environment(environment::get).apiKey(""));
    assertNull(lastAuthorization.get(), "an empty key sends none, whatever the environment says");

    chatThrough(PorticoClient.builder(address).environment(name -> null));
    assertNull(lastAuthorization.get());
  }
}
