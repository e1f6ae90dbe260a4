/**
 * TLS and metadata. The gateway itself listens in plaintext, so these tests stand up a
 * small gRPC server of their own: a real HTTP/2 server with a self-signed certificate
 * (made with openssl) that serves LLMService.Chat and answers with the request headers
 * it received.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createSecureServer, type Http2SecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";

import { connectNodeAdapter } from "@connectrpc/connect-node";

import { LLMService, PorticoClient, PorticoError, Role } from "../src/index.js";

const run = promisify(execFile);

/** A key and a self-signed certificate for localhost and 127.0.0.1, valid for a day. */
async function selfSignedCertificate(dir: string): Promise<{ key: Buffer; cert: Buffer }> {
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  await run(
    "openssl",
    [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
    ],
    { timeout: 20_000 },
  );
  return { key: await readFile(key), cert: await readFile(cert) };
}

/** Chat answers with the headers the client sent, so a test can see its metadata arrive. */
function echoHeadersServer(key: Buffer, cert: Buffer): Http2SecureServer {
  const handler = connectNodeAdapter({
    grpc: true,
    connect: false,
    grpcWeb: false,
    routes: (router) =>
      router.service(LLMService, {
        chat(_request, context) {
          const header = (name: string): string => context.requestHeader.get(name) ?? "<none>";
          return {
            content: `authorization=${header("authorization")} x-request-id=${header("x-request-id")}`,
            role: Role.ASSISTANT,
          };
        },
      }),
  });
  return createSecureServer({ key, cert, allowHTTP1: false }, handler);
}

describe("PorticoClient over TLS", () => {
  let dir: string;
  let cert: Buffer;
  let server: Http2SecureServer;
  let port: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "portico-ts-tls-"));
    const pair = await selfSignedCertificate(dir);
    cert = pair.cert;
    server = echoHeadersServer(pair.key, pair.cert);
    await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    if (server !== undefined) {
      await new Promise<void>((closed) => {
        server.close(() => closed());
        // close() waits for open sessions; clients below close theirs, this bounds the rest.
        setTimeout(closed, 2_000).unref();
      });
    }
    if (dir !== undefined) {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("verifies the server against the given CA and sends the client's and the call's metadata", async () => {
    const client = new PorticoClient(`localhost:${port}`, {
      tls: { ca: cert },
      metadata: { authorization: "Bearer client-token" },
      timeoutMs: 10_000,
    });
    try {
      const reply = await client.chat(
        { messages: [{ role: Role.USER, content: "hi" }] },
        { metadata: { "x-request-id": "req-42" } },
      );
      assert.equal(reply.content, "authorization=Bearer client-token x-request-id=req-42");
    } finally {
      client.close();
    }
  });

  it("checks the certificate against serverName when the address is an IP", async () => {
    const client = new PorticoClient(`https://127.0.0.1:${port}`, {
      tls: { ca: cert, serverName: "localhost" },
      timeoutMs: 10_000,
    });
    try {
      const reply = await client.chat({ messages: [{ role: Role.USER, content: "hi" }] });
      assert.equal(reply.content, "authorization=<none> x-request-id=<none>");
    } finally {
      client.close();
    }
  });

  it("refuses a certificate that no trusted authority signed", async () => {
    const client = new PorticoClient(`localhost:${port}`, { tls: true, timeoutMs: 10_000 });
    try {
      await assert.rejects(
        client.chat({ messages: [{ role: Role.USER, content: "hi" }] }),
        // Connect reports a failed handshake as INTERNAL with Node's TLS message.
        (error: unknown) => error instanceof PorticoError && /self-signed certificate/.test(error.message),
      );
    } finally {
      client.close();
    }
  });

  it("rejects tls together with an http:// address", () => {
    assert.throws(() => new PorticoClient("http://localhost:1", { tls: true }), TypeError);
  });
});
