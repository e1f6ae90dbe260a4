package dev.portico.client;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A real Portico gateway, started as a subprocess on an ephemeral loopback port.
 *
 * <p>The executable is {@code $PORTICO_BIN}, else the repository's {@code .venv/bin/portico}.
 * {@link #close()} sends SIGTERM and, if the gateway has not stopped in time, kills it; a
 * shutdown hook does the same if the test JVM exits without closing.
 */
final class GatewayProcess implements AutoCloseable {
  private static final Pattern LISTENING = Pattern.compile("^portico: listening on (\\S+:\\d+)$");
  private static final Duration START_TIMEOUT = Duration.ofSeconds(30);
  private static final Duration STOP_TIMEOUT = Duration.ofSeconds(15);

  private final Process process;
  private final Path workDir;
  private final Thread killOnExit;
  private final String address;

  private GatewayProcess(Process process, Path workDir, Thread killOnExit, String address) {
    this.process = process;
    this.workDir = workDir;
    this.killOnExit = killOnExit;
    this.address = address;
  }

  /** Starts a gateway with {@code configYaml} and waits (bounded) until it takes calls. */
  static GatewayProcess start(String configYaml) throws IOException, InterruptedException {
    Path executable = executable();
    Path workDir = Files.createTempDirectory("portico-java-test");
    Path config = Files.writeString(workDir.resolve("portico.yaml"), configYaml);
    Path log = workDir.resolve("gateway.log");
    ProcessBuilder builder = new ProcessBuilder(List.of(
            executable.toString(), "serve", "--config", config.toString(), "--address", "127.0.0.1:0",
            "--workers", "1"))
        .redirectErrorStream(false)
        .redirectError(log.toFile());
    // The default vector store keeps its files under the data directory: the test's own.
    builder.environment().put("PORTICO_DATA_DIR", workDir.toString());
    Process process = builder.start();
    Thread killOnExit = new Thread(process::destroyForcibly, "kill-portico-gateway");
    Runtime.getRuntime().addShutdownHook(killOnExit);

    CompletableFuture<String> listening = new CompletableFuture<>();
    Thread reader = new Thread(() -> readStdout(process, listening), "portico-gateway-stdout");
    reader.setDaemon(true);
    reader.start();
    try {
      String address = listening.get(START_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      return new GatewayProcess(process, workDir, killOnExit, address);
    } catch (TimeoutException | ExecutionException | InterruptedException failure) {
      process.destroyForcibly().waitFor(STOP_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      Runtime.getRuntime().removeShutdownHook(killOnExit);
      String why = failure instanceof TimeoutException
          ? "did not report listening within " + START_TIMEOUT.toSeconds() + " s"
          : String.valueOf(failure.getCause() == null ? failure : failure.getCause().getMessage());
      String output = tail(log);
      deleteTree(workDir);
      if (failure instanceof InterruptedException interrupted) {
        throw interrupted;
      }
      throw new IllegalStateException("the gateway " + executable + " " + why + "; its stderr:\n" + output);
    }
  }

  /** Reads stdout to its end: the listening line completes the future, the rest is drained. */
  private static void readStdout(Process process, CompletableFuture<String> listening) {
    try (BufferedReader out = new BufferedReader(
        new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = out.readLine()) != null) {
        Matcher match = LISTENING.matcher(line.strip());
        if (match.matches()) {
          listening.complete(match.group(1));
        }
      }
    } catch (IOException error) {
      listening.completeExceptionally(error);
    }
    // Stdout closed: the process is gone or going. Report its exit if it never listened.
    try {
      int code = process.waitFor();
      listening.completeExceptionally(new IllegalStateException("exited with status " + code));
    } catch (InterruptedException interrupted) {
      listening.completeExceptionally(interrupted);
    }
  }

  private static Path executable() {
    String configured = System.getenv("PORTICO_BIN");
    Path path;
    if (configured != null && !configured.isBlank()) {
      path = Path.of(configured);
    } else {
      String repo = System.getProperty("portico.repo.dir");
      if (repo == null) {
        throw new IllegalStateException("set PORTICO_BIN or the portico.repo.dir system property");
      }
      path = Path.of(repo, ".venv", "bin", "portico").normalize();
    }
    if (!Files.isExecutable(path)) {
      throw new IllegalStateException(path + " is not an executable gateway: install it "
          + "(scripts/setup-python.sh server) or point PORTICO_BIN at one");
    }
    return path;
  }

  /** The {@code host:port} the gateway listens on. */
  String address() {
    return address;
  }

  /** SIGTERM, then a kill if the gateway is still running after a bounded wait. */
  @Override
  public void close() {
    try {
      process.destroy();
      if (!process.waitFor(STOP_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(STOP_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      }
    } catch (InterruptedException interrupted) {
      Thread.currentThread().interrupt();
    } finally {
      if (process.isAlive()) {
        process.destroyForcibly();
      }
      try {
        Runtime.getRuntime().removeShutdownHook(killOnExit);
      } catch (IllegalStateException jvmShuttingDown) {
        // The hook is running or about to; nothing left to undo.
      }
      deleteTree(workDir);
    }
  }

  private static String tail(Path log) {
    try {
      List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
    } catch (IOException unreadable) {
      return "(no log: " + unreadable.getMessage() + ")";
    }
  }

  private static void deleteTree(Path dir) {
    try (Stream<Path> paths = Files.walk(dir)) {
      paths.sorted(Comparator.reverseOrder()).forEach(path -> {
        try {
          Files.deleteIfExists(path);
        } catch (IOException error) {
          throw new UncheckedIOException(error);
        }
      });
    } catch (IOException | UncheckedIOException ignored) {
      // A leftover file in the temp directory must not fail the test run.
    }
  }
}
