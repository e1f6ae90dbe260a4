/**
 * TLS, mutual TLS and the caller key. These tests stand up small gRPC servers of their
 * own — real HTTP/2 servers, with TLS and without, serving LLMService.Chat — that answer
 * with what they saw: the `authorization` and `x-request-id` headers and the subject of
 * the client's certificate. The certificates are throwaway ones made with openssl: a
 * test CA, the server's (for localhost and 127.0.0.1), a client's, and a client's from
 * another CA.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import {
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import { promisify } from "node:util";

import { connectNodeAdapter } from "@connectrpc/connect-node";

import { API_KEY_ENV, LLMService, PorticoClient, PorticoError, type PorticoClientOptions, Role } from "../src/index.js";

const run = promisify(execFile);
const CLIENT_MODULE = new URL("../src/index.js", import.meta.url).href;
const PEER_HEADER = "x-test-peer-subject";
const HI = { messages: [{ role: Role.USER, content: "hi" }] };

/** What a test server saw of one call. */
interface Seen {
  authorization: string;
  requestId: string;
  peer: string;
}

async function openssl(args: string[]): Promise<void> {
  await run("openssl", args, { timeout: 20_000 });
}

/** A P-256 key and a certificate for `subject`, signed by `ca` (or self-signed: a CA). */
async function certificate(
  dir: string,
  name: string,
  subject: string,
  options: { ca?: string; extensions?: string } = {},
): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key];
  if (options.ca === undefined) {
    await openssl([
      "req", "-x509", ...newKey, "-out", cert, "-days", "1", "-subj", subject,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    return { cert, key };
  }
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, `${options.extensions ?? ""}\n`);
  await openssl(["req", ...newKey, "-out", csr, "-subj", subject]);
  const serial = `0x${Math.floor(Math.random() * 2 ** 48).toString(16)}`;
  await openssl([
    "x509", "-req", "-in", csr, "-CA", `${options.ca}.pem`, "-CAkey", `${options.ca}.key`,
    "-set_serial", serial, "-days", "1", "-out", cert, "-extfile", ext,
  ]);
  return { cert, key };
}

/** Calls each test server's Chat handler ran, by server. */
const handled = new Map<string, number>();

/** LLMService.Chat that answers with what it saw, as JSON in the content. */
function echoHandler(server: string): (request: Http2ServerRequest, response: Http2ServerResponse) => void {
  const handler = connectNodeAdapter({
    grpc: true,
    connect: false,
    grpcWeb: false,
    routes: (router) =>
      router.service(LLMService, {
        chat(_request, context) {
          handled.set(server, (handled.get(server) ?? 0) + 1);
          const header = (name: string): string => context.requestHeader.get(name) ?? "<none>";
          const seen: Seen = {
            authorization: header("authorization"),
            requestId: header("x-request-id"),
            peer: header(PEER_HEADER),
          };
          return { content: JSON.stringify(seen), role: Role.ASSISTANT };
        },
      }),
  });
  return (request, response) => {
    // The handler sees headers only; pass it the verified client certificate's subject.
    delete request.headers[PEER_HEADER];
    const socket = request.socket as Partial<TLSSocket>;
    const subject = socket.getPeerCertificate?.()?.subject;
    if (subject !== undefined && socket.authorized === true) {
      request.headers[PEER_HEADER] = `CN=${subject.CN},O=${subject.O}`;
    }
    handler(request, response);
  };
}

async function listen(server: Http2Server | Http2SecureServer): Promise<number> {
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
  return (server.address() as AddressInfo).port;
}

async function close(server: Http2Server | Http2SecureServer | undefined): Promise<void> {
  if (server === undefined) return;
  await new Promise<void>((closed) => {
    server.close(() => closed());
    // close() waits for open sessions; the clients close theirs, this bounds the rest.
    setTimeout(closed, 2_000).unref();
  });
}

/** One chat through a client made for it, closed afterwards; what the server saw. */
async function seenBy(address: string, options: PorticoClientOptions, metadata?: Record<string, string>): Promise<Seen> {
  const client = new PorticoClient(address, { timeoutMs: 10_000, ...options });
  try {
    const reply = await client.chat(HI, metadata === undefined ? {} : { metadata });
    return JSON.parse(reply.content) as Seen;
  } finally {
    client.close();
  }
}

/** The PorticoError of a chat that must fail. */
async function refused(address: string, options: PorticoClientOptions): Promise<PorticoError> {
  const client = new PorticoClient(address, { timeoutMs: 10_000, retry: false, ...options });
  try {
    await client.chat(HI);
  } catch (error) {
    assert.ok(error instanceof PorticoError, `expected a PorticoError, got ${String(error)}`);
    return error;
  } finally {
    client.close();
  }
  assert.fail("the call succeeded but should have been refused");
}

describe("TLS, mutual TLS and the caller key", () => {
  let dir: string;
  const files: Record<"ca" | "serverCert" | "serverKey" | "clientCert" | "clientKey" | "rogueCert" | "rogueKey", string> =
    { ca: "", serverCert: "", serverKey: "", clientCert: "", clientKey: "", rogueCert: "", rogueKey: "" };
  let tls: Http2SecureServer; // verifies nothing of the client
  let mtls: Http2SecureServer; // requires a client certificate signed by the test CA
  let plain: Http2Server;
  let tlsPort: number;
  let mtlsPort: number;
  let plainPort: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "portico-ts-tls-"));
    const ca = await certificate(dir, "ca", "/CN=Portico Test CA");
    const server = await certificate(dir, "server", "/CN=localhost", {
      ca: join(dir, "ca"),
      extensions: "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
    });
    const client = await certificate(dir, "client", "/CN=billing/O=Acme", {
      ca: join(dir, "ca"),
      extensions: "extendedKeyUsage=clientAuth",
    });
    await certificate(dir, "rogue-ca", "/CN=Some Other CA");
    const rogue = await certificate(dir, "rogue", "/CN=billing/O=Acme", {
      ca: join(dir, "rogue-ca"),
      extensions: "extendedKeyUsage=clientAuth",
    });
    Object.assign(files, {
      ca: ca.cert, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key,
      rogueCert: rogue.cert, rogueKey: rogue.key,
    });

    const serverPair = { key: await readFile(server.key), cert: await readFile(server.cert), allowHTTP1: false };
    tls = createSecureServer(serverPair, echoHandler("tls"));
    mtls = createSecureServer(
      { ...serverPair, ca: await readFile(ca.cert), requestCert: true, rejectUnauthorized: true },
      echoHandler("mtls"),
    );
    plain = createServer(echoHandler("plain"));
    [tlsPort, mtlsPort, plainPort] = await Promise.all([listen(tls), listen(mtls), listen(plain)]);
  });

  after(async () => {
    await Promise.all([close(tls), close(mtls), close(plain)]);
    if (dir !== undefined) {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("verifies the gateway against caFile and sends the key as a bearer token beside the call's metadata", async () => {
    const seen = await seenBy(
      `localhost:${tlsPort}`,
      { tls: { caFile: files.ca }, apiKey: "pk-live-tls" },
      { "x-request-id": "req-42" },
    );
    assert.deepEqual(seen, { authorization: "Bearer pk-live-tls", requestId: "req-42", peer: "<none>" });
  });

  it("sends the key over plaintext too, on raw calls as well, and a call's own authorization wins", async () => {
    const address = `127.0.0.1:${plainPort}`;
    assert.equal((await seenBy(address, { apiKey: "pk-plain" })).authorization, "Bearer pk-plain");
    assert.equal(
      (await seenBy(address, { apiKey: "pk-plain" }, { authorization: "Bearer per-call" })).authorization,
      "Bearer per-call",
    );
    const client = new PorticoClient(address, { apiKey: "pk-raw", timeoutMs: 10_000 });
    try {
      const reply = await client.raw.chat(HI);
      assert.equal((JSON.parse(reply.content) as Seen).authorization, "Bearer pk-raw");
    } finally {
      client.close();
    }
  });

  it(`reads the key from ${API_KEY_ENV} unless apiKey is given; "" sends none`, async () => {
    const address = `127.0.0.1:${plainPort}`;
    const saved = process.env[API_KEY_ENV];
    process.env[API_KEY_ENV] = "pk-from-env";
    try {
      assert.equal((await seenBy(address, {})).authorization, "Bearer pk-from-env");
      assert.equal((await seenBy(address, { apiKey: "pk-explicit" })).authorization, "Bearer pk-explicit");
      assert.equal((await seenBy(address, { apiKey: "" })).authorization, "<none>");
    } finally {
      if (saved === undefined) delete process.env[API_KEY_ENV];
      else process.env[API_KEY_ENV] = saved;
    }
    assert.equal((await seenBy(address, {})).authorization, "<none>");
  });

  it("presents the client certificate from certFile and keyFile for mutual TLS", async () => {
    const seen = await seenBy(`localhost:${mtlsPort}`, {
      tls: { caFile: files.ca, certFile: files.clientCert, keyFile: files.clientKey },
      apiKey: "pk-mtls",
    });
    assert.deepEqual(seen, { authorization: "Bearer pk-mtls", requestId: "<none>", peer: "CN=billing,O=Acme" });
  });

  it("is refused at the handshake with a client certificate from another CA, or none", async () => {
    const before = handled.get("mtls") ?? 0;
    const rogue = await refused(`localhost:${mtlsPort}`, {
      tls: { caFile: files.ca, certFile: files.rogueCert, keyFile: files.rogueKey },
    });
    assert.equal(rogue.reason, "");
    const none = await refused(`localhost:${mtlsPort}`, { tls: { caFile: files.ca } });
    assert.match(none.message, /alert certificate required/);
    assert.equal(handled.get("mtls") ?? 0, before, "no refused call reached the server's handler");
  });

  it("checks the certificate against serverName when the address is an IP (CA as PEM)", async () => {
    const seen = await seenBy(`https://127.0.0.1:${tlsPort}`, {
      tls: { ca: await readFile(files.ca), serverName: "localhost" },
    });
    assert.equal(seen.peer, "<none>");
  });

  it("without a CA file, trusts the system's authorities only", async () => {
    const error = await refused(`localhost:${tlsPort}`, { tls: true });
    assert.match(error.message, /unable to (verify the first certificate|get local issuer certificate)/);
    // The same client trusts the test CA once the system's trust store holds it
    // (NODE_EXTRA_CA_CERTS adds to Node's store at start-up, so in a process of its own),
    // and takes its key from the environment.
    const script = [
      `import { PorticoClient, Role } from ${JSON.stringify(CLIENT_MODULE)};`,
      `const client = new PorticoClient("localhost:${tlsPort}", { tls: {}, timeoutMs: 10000 });`,
      `const reply = await client.chat({ messages: [{ role: Role.USER, content: "hi" }] });`,
      "console.log(reply.content);",
      "client.close();",
    ].join("\n");
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
      timeout: 30_000,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: files.ca, [API_KEY_ENV]: "pk-child" },
    });
    assert.equal((JSON.parse(stdout) as Seen).authorization, "Bearer pk-child");
  });

  it("refuses options it cannot use, and never quotes the key", () => {
    const secret = "pk-secret\nvalue";
    assert.throws(
      () => new PorticoClient("localhost:1", { apiKey: secret }),
      (error: unknown) =>
        error instanceof TypeError && /visible ASCII/.test(error.message) && !error.message.includes("pk-secret"),
    );
    assert.throws(
      () => new PorticoClient("localhost:1", { tls: { certFile: files.clientCert } }),
      /a client certificate and its key together/,
    );
    const missing = join(dir, "missing-ca.pem");
    assert.throws(
      () => new PorticoClient("localhost:1", { tls: { caFile: missing } }),
      (error: unknown) => error instanceof TypeError && error.message === `PorticoClient: tls.caFile: cannot read ${missing} (ENOENT)`,
    );
    assert.throws(() => new PorticoClient("localhost:1", { tls: { ca: "x", caFile: files.ca } }), /both set/);
    assert.throws(() => new PorticoClient("http://localhost:1", { tls: true }), TypeError);
  });
});
