package dev.portico.client;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Throwaway certificate authorities and certificates, made by the {@code openssl} command for
 * one test run in a temporary directory, as PEM files (keys in PKCS#8) the way an operator hands
 * them to a client. No key is committed.
 */
final class TestCertificates {
  private final Path dir;

  TestCertificates(Path dir) {
    this.dir = dir;
  }

  /** A self-signed CA {@code name}; returns its certificate file ({@code name.key} beside it). */
  Path authority(String name) throws IOException, InterruptedException {
    Path cert = dir.resolve(name + ".pem");
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", dir.resolve(name + ".key").toString(), "-out", cert.toString(),
        "-days", "1", "-subj", "/CN=" + name);
    return cert;
  }

  /**
   * A certificate {@code name} with {@code subject} (e.g. {@code /O=Acme/CN=billing}) signed by
   * the CA {@code ca}; {@code serverAddress} adds it as an IP address the certificate is for.
   * Returns the certificate file; the key is {@code name.key} beside it.
   */
  Path issue(String ca, String name, String subject, String serverAddress)
      throws IOException, InterruptedException {
    Path key = dir.resolve(name + ".key");
    Path request = dir.resolve(name + ".csr");
    Path cert = dir.resolve(name + ".pem");
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key.toString(), "-out", request.toString(), "-subj", subject);
    Path extensions = Files.writeString(dir.resolve(name + ".ext"), serverAddress == null
        ? "extendedKeyUsage = clientAuth\n"
        : "extendedKeyUsage = serverAuth\nsubjectAltName = IP:" + serverAddress + "\n");
    openssl("x509", "-req", "-in", request.toString(),
        "-CA", dir.resolve(ca + ".pem").toString(), "-CAkey", dir.resolve(ca + ".key").toString(),
        "-set_serial", String.valueOf(System.nanoTime()), "-days", "1",
        "-extfile", extensions.toString(), "-out", cert.toString());
    return cert;
  }

  /** The key file of the certificate {@code name}. */
  Path key(String name) {
    return dir.resolve(name + ".key");
  }

  private void openssl(String... args) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of("openssl"));
    command.addAll(List.of(args));
    Path output = dir.resolve("openssl.log");
    Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(output.toFile()).start();
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      throw new IllegalStateException("openssl " + args[0] + " did not finish within 30 s");
    }
    if (process.exitValue() != 0) {
      throw new IllegalStateException("openssl " + String.join(" ", args) + " failed: " + Files.readString(output));
    }
  }
}
