/**
 * PorticoClient against a real gateway (`portico serve`) running the fake provider on a
 * loopback port: chat, streaming, embeddings, cancellation, deadlines and decoded errors.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { create } from "@bufbuild/protobuf";

import {
  Code,
  MessageSchema,
  PorticoClient,
  PorticoError,
  ProviderHealth,
  Role,
  type StreamChunk,
  StopReason,
} from "../src/index.js";
import { type RunningGateway, startGateway } from "./gateway.js";

const run = promisify(execFile);
const CLIENT_MODULE = new URL("../src/index.js", import.meta.url).href;
const DISPOSE_SCRIPT = fileURLToPath(new URL("./fixtures/dispose.js", import.meta.url));
const SLOW_TEXT = "s".repeat(400); // 400 chunks of one character, 25 ms apart: 10 s in all

const CONFIG = {
  server: { address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1 },
  providers: [
    {
      name: "fake",
      kind: "fake",
      retry: { enabled: false },
      breaker: { enabled: false },
      models: ["fake-chat", "fake-embed"],
      default_model: "fake-chat",
      embedding_model: "fake-embed",
      options: {
        chunk_size: 4,
        embedding_dimensions: 64,
        rules: [
          {
            when_contains: "weather",
            tool_calls: [{ name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' }],
          },
          { when_contains: "think first", reasoning: "Paris is in France.", content: "Paris." },
          {
            when_contains: "rate limit me",
            error: { reason: "UPSTREAM_RATE_LIMITED", message: "slow down", retry_after: 1.5 },
          },
          {
            when_contains: "fail midway",
            content: "0123456789abcdef",
            error: { reason: "UPSTREAM_UNAVAILABLE", message: "upstream went away", after_chunks: 2 },
          },
          { when_contains: "take your time", content: "late", delay: 5 },
        ],
      },
    },
    {
      name: "slow",
      kind: "fake",
      retry: { enabled: false },
      breaker: { enabled: false },
      models: ["slow-chat"],
      default_model: "slow-chat",
      options: { chunk_size: 1, chunk_delay: 0.025 },
    },
  ],
};

function user(content: string): { role: Role; content: string } {
  return { role: Role.USER, content };
}

async function collect(chunks: AsyncIterable<StreamChunk>): Promise<StreamChunk[]> {
  const all: StreamChunk[] = [];
  for await (const chunk of chunks) {
    all.push(chunk);
  }
  return all;
}

/** Runs `call`, which must fail, and returns its PorticoError. */
async function failure(call: () => Promise<unknown>): Promise<PorticoError> {
  try {
    await call();
  } catch (error) {
    assert.ok(error instanceof PorticoError, `expected a PorticoError, got ${String(error)}`);
    return error;
  }
  assert.fail("the call succeeded but should have failed");
}

describe("PorticoClient against a running gateway", () => {
  let gateway: RunningGateway;
  let client: PorticoClient;

  before(async () => {
    gateway = await startGateway(CONFIG);
    client = new PorticoClient(gateway.address, { timeoutMs: 20_000 });
  });

  after(async () => {
    client?.close();
    await gateway?.stop();
  });

  describe("chat", () => {
    it("returns the complete answer with stop reason, usage, model and provider", async () => {
      const reply = await client.chat({ model: "fake-chat", messages: [user("hello portico")] });
      assert.equal(reply.content, "hello portico");
      assert.equal(reply.role, Role.ASSISTANT);
      assert.equal(reply.stopReason, StopReason.END_TURN);
      assert.equal(reply.model, "fake-chat");
      assert.equal(reply.provider, "fake");
      assert.ok(reply.usage !== undefined && reply.usage.completionTokenCount > 0);
      assert.equal(
        reply.usage.totalTokenCount,
        reply.usage.promptTokenCount + reply.usage.completionTokenCount,
      );
    });

    it("returns the tool calls the model made", async () => {
      const reply = await client.chat({
        provider: "fake",
        messages: [user("what is the weather in Paris?")],
        tools: [{ name: "get_weather", parametersJsonSchema: '{"type":"object"}' }],
      });
      assert.equal(reply.stopReason, StopReason.TOOL_CALLS);
      assert.equal(reply.toolCalls.length, 1);
      assert.equal(reply.toolCalls[0]!.name, "get_weather");
      assert.equal(reply.toolCalls[0]!.arguments, '{"city":"Paris","unit":"celsius"}');
      assert.notEqual(reply.toolCalls[0]!.id, "");
    });

    it("returns the reasoning apart from the answer", async () => {
      const reply = await client.chat({ model: "fake-chat", messages: [user("think first: capital of France?")] });
      assert.equal(reply.reasoningContent, "Paris is in France.");
      assert.equal(reply.content, "Paris.");
    });
  });

  describe("stream", () => {
    it("yields the content in order, then exactly one final chunk", async () => {
      const text = "The quick brown fox jumps over the lazy dog";
      const chunks = await collect(client.stream({ model: "fake-chat", messages: [user(text)] }));

      const final = chunks.at(-1)!;
      const body = chunks.slice(0, -1);
      const expected: string[] = [];
      for (let i = 0; i < text.length; i += 4) {
        expected.push(text.slice(i, i + 4));
      }
      assert.deepEqual(
        body.map((c) => c.content),
        expected,
      );
      assert.ok(body.every((c) => !c.final));

      assert.equal(final.final, true);
      assert.equal(final.content, "");
      assert.equal(final.stopReason, StopReason.END_TURN);
      assert.equal(final.model, "fake-chat");
      assert.equal(final.provider, "fake");
      assert.ok(final.usage !== undefined && final.usage.completionTokenCount > 0);
    });

    it("streams tool-call fragments and the assembled calls on the final chunk", async () => {
      const chunks = await collect(client.stream({ model: "fake-chat", messages: [user("weather, please")] }));
      const deltas = chunks.flatMap((c) => c.toolCallDeltas);
      assert.ok(deltas.length > 1, "the arguments should arrive in several fragments");
      assert.equal(deltas[0]!.name, "get_weather");
      assert.equal(
        deltas.map((d) => d.argumentsDelta).join(""),
        '{"city":"Paris","unit":"celsius"}',
      );

      const final = chunks.at(-1)!;
      assert.equal(final.final, true);
      assert.equal(final.stopReason, StopReason.TOOL_CALLS);
      assert.deepEqual(
        final.toolCalls.map((c) => [c.id, c.name, c.arguments]),
        [[deltas[0]!.id, "get_weather", '{"city":"Paris","unit":"celsius"}']],
      );
    });

    it("ends with a PorticoError, not a silent truncation, when the upstream fails midway", async () => {
      const seen: string[] = [];
      const error = await failure(async () => {
        for await (const chunk of client.stream({ model: "fake-chat", messages: [user("fail midway")] })) {
          seen.push(chunk.content);
        }
      });
      assert.deepEqual(seen, ["0123", "4567"]);
      assert.equal(error.code, Code.Unavailable);
      assert.equal(error.reason, "ERROR_REASON_UPSTREAM_UNAVAILABLE");
      assert.equal(error.metadata["provider"], "fake");
      // The caller already holds part of an answer: sending the call again is not safe.
      assert.equal(error.retrySafe, false);
      assert.equal(error.retryable, false);
    });

    it("is cancelled by its AbortSignal, long before the answer would have ended", async () => {
      const abort = new AbortController();
      const started = performance.now();
      let received = 0;
      const error = await failure(async () => {
        for await (const chunk of client.stream(
          { provider: "slow", messages: [user(SLOW_TEXT)] },
          { signal: abort.signal },
        )) {
          received += chunk.content.length;
          if (received === 3) {
            abort.abort();
          }
        }
      });
      assert.equal(error.code, Code.Canceled);
      assert.equal(error.codeName, "CANCELLED");
      assert.equal(received, 3);
      assert.ok(performance.now() - started < 5_000, "the stream should stop at once");
    });

    it("stops when the loop breaks, and the client keeps working", async () => {
      const started = performance.now();
      let received = "";
      for await (const chunk of client.stream({ provider: "slow", messages: [user(SLOW_TEXT)] })) {
        received += chunk.content;
        if (received.length === 2) {
          break;
        }
      }
      assert.equal(received, "ss");
      assert.ok(performance.now() - started < 5_000, "breaking should not wait for the end");
      const reply = await client.chat({ model: "fake-chat", messages: [user("still there?")] });
      assert.equal(reply.content, "still there?");
    });

    it("leaves nothing pending after a loop breaks, so a script exits at once", async () => {
      // A separate process with a one-minute default deadline and no close(): if breaking
      // out left the call (or its deadline timer) alive, the process would not exit.
      const script = [
        `import { PorticoClient, Role } from ${JSON.stringify(CLIENT_MODULE)};`,
        `const client = new PorticoClient(${JSON.stringify(gateway.address)}, { timeoutMs: 60000 });`,
        `const request = { provider: "slow", messages: [{ role: Role.USER, content: "${SLOW_TEXT}" }] };`,
        "for await (const chunk of client.stream(request)) { console.log(chunk.content); break; }",
      ].join("\n");
      const started = performance.now();
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
        timeout: 30_000,
      });
      assert.equal(stdout.trim(), "s");
      assert.ok(performance.now() - started < 10_000, "the script should exit right after its loop");
    });
  });

  describe("requests as plain objects", () => {
    it("takes roles by name, mixed with the enum and generated messages", async () => {
      const reply = await client.chat({
        model: "fake-chat",
        messages: [
          { role: "system", content: "Answer briefly." },
          create(MessageSchema, { role: Role.USER, content: "an earlier question" }),
          { role: Role.ASSISTANT, content: "an earlier answer" },
          { role: "user", content: "roles by name" },
        ],
      });
      // The fake provider echoes the last user message: "user" arrived as Role.USER.
      assert.equal(reply.content, "roles by name");
      const count = await client.countTokens({ model: "fake-chat", messages: [{ role: "user", content: "count me" }] });
      assert.ok(count.tokenCount > 0);
    });

    it("refuses an unknown role name before sending, naming the message", async () => {
      const bad = { messages: [{ role: "user", content: "hi" }, { role: "robot", content: "beep" }] };
      await assert.rejects(client.chat(bad as never), (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /^messages\[1\]\.role: unknown role "robot"; expected one of system, user, assistant, tool/);
        return true;
      });
      assert.throws(() => client.stream(bad as never), /messages\[1\]\.role/);
    });
  });

  describe("stream helpers", () => {
    it("textStream yields the text as it arrives; finalResponse() then gives the whole answer", async () => {
      const text = "The quick brown fox jumps over the lazy dog";
      const stream = client.stream({ model: "fake-chat", messages: [{ role: "user", content: text }] });
      const pieces: string[] = [];
      for await (const piece of stream.textStream) {
        pieces.push(piece);
      }
      assert.equal(pieces.length, Math.ceil(text.length / 4));
      assert.equal(pieces.join(""), text);
      const response = await stream.finalResponse();
      assert.equal(response.content, text);
      assert.equal(response.stopReason, StopReason.END_TURN);
      assert.equal(response.provider, "fake");
      assert.ok(response.usage !== undefined && response.usage.completionTokenCount > 0);
      assert.equal(stream.text, text);
    });

    it("close() stops a stream at once, and the client keeps working", async () => {
      const stream = client.stream({ provider: "slow", messages: [user(SLOW_TEXT)] });
      const chunks = stream[Symbol.asyncIterator]();
      assert.equal((await chunks.next()).value?.content, "s");
      const started = performance.now();
      await stream.close();
      assert.ok(performance.now() - started < 5_000, "closing should not wait for the end");
      assert.equal((await chunks.next()).done, true);
      assert.equal((await client.chat({ model: "fake-chat", messages: [user("after close")] })).content, "after close");
    });

    it("a closed client refuses new calls with CANCELLED instead of reconnecting", async () => {
      const closed = new PorticoClient(gateway.address, { timeoutMs: 20_000 });
      assert.equal((await closed.chat({ messages: [user("before")] })).content, "before");
      closed.close();
      const unary = await failure(() => closed.chat({ messages: [user("after")] }));
      const streamed = await failure(() => closed.stream({ messages: [user("after")] }).finalResponse());
      for (const error of [unary, streamed]) {
        assert.equal(error.code, Code.Canceled);
        assert.equal(error.rawMessage, "the PorticoClient is closed");
      }
    });

    it("runs many streams at once on one client without a listener-leak warning", async () => {
      const script = [
        `import { PorticoClient } from ${JSON.stringify(CLIENT_MODULE)};`,
        `const client = new PorticoClient(${JSON.stringify(gateway.address)}, { timeoutMs: 20000 });`,
        "const answers = await Promise.all(Array.from({ length: 25 }, (_, i) =>",
        '  client.stream({ messages: [{ role: "user", content: `n${i}` }] }).finalResponse()));',
        'console.log(answers.map((a) => a.content).join(","));',
        "client.close();",
      ].join("\n");
      const { stdout, stderr } = await run(process.execPath, ["--input-type=module", "-e", script], { timeout: 30_000 });
      assert.equal(stdout.trim(), Array.from({ length: 25 }, (_, i) => `n${i}`).join(","));
      assert.equal(stderr, "");
    });

    for (const mode of ["stream", "client"] as const) {
      it(`\`await using\` on the ${mode} cancels the call when the scope ends, so a script exits at once`, async () => {
        // A separate process, a minute-long stream and a one-minute deadline: had leaving
        // the scope not cancelled the call, the process would live on for a minute.
        const started = performance.now();
        const { stdout } = await run(process.execPath, [DISPOSE_SCRIPT, gateway.address, mode], { timeout: 45_000 });
        assert.equal(stdout.trim(), "s\ndisposed");
        assert.ok(performance.now() - started < 20_000, "the script should exit right after its scope");
      });
    }
  });

  describe("embed", () => {
    it("returns one vector per input, in input order, the same for the same text", async () => {
      const reply = await client.embed({
        model: "fake-embed",
        inputs: ["alpha", "beta", "alpha"],
      });
      assert.equal(reply.provider, "fake");
      assert.equal(reply.model, "fake-embed");
      assert.deepEqual(
        reply.embeddings.map((e) => e.index),
        [0, 1, 2],
      );
      const [alpha, beta, alphaAgain] = reply.embeddings.map((e) => e.values);
      assert.equal(alpha!.length, 64);
      assert.deepEqual(alphaAgain, alpha);
      assert.notDeepEqual(beta, alpha);
      const norm = Math.hypot(...alpha!);
      assert.ok(Math.abs(norm - 1) < 1e-3, `expected a unit vector, norm ${norm}`);
    });

    it("honours the requested dimensions", async () => {
      const reply = await client.embed({ provider: "fake", inputs: ["x"], dimensions: 8 });
      assert.equal(reply.embeddings[0]!.values.length, 8);
    });
  });

  describe("errors", () => {
    it("decodes the field violation of an invalid request", async () => {
      const error = await failure(() =>
        client.chat({ model: "fake-chat", messages: [user("hi")], temperature: 5 }),
      );
      assert.equal(error.code, Code.InvalidArgument);
      assert.equal(error.codeName, "INVALID_ARGUMENT");
      assert.equal(error.reason, "ERROR_REASON_INVALID_REQUEST");
      assert.equal(error.domain, "portico");
      assert.deepEqual(
        error.fieldViolations.map((v) => v.field),
        ["temperature"],
      );
      assert.notEqual(error.fieldViolations[0]!.description, "");
      assert.equal(error.retryable, false);
      assert.equal(error.retryAfterMs, undefined);
    });

    it("names `messages` when there are none", async () => {
      const error = await failure(() => client.chat({ model: "fake-chat" }));
      assert.equal(error.code, Code.InvalidArgument);
      assert.ok(
        error.fieldViolations.some((v) => v.field === "messages"),
        JSON.stringify(error.fieldViolations),
      );
    });

    it("reports the same invalid request on a stream before any chunk", async () => {
      const error = await failure(() => collect(client.stream({ model: "fake-chat", messages: [user("hi")], topP: 3 })));
      assert.equal(error.code, Code.InvalidArgument);
      assert.deepEqual(
        error.fieldViolations.map((v) => v.field),
        ["top_p"],
      );
    });

    it("maps an unknown provider to NOT_FOUND", async () => {
      const error = await failure(() => client.chat({ provider: "nope", messages: [user("hi")] }));
      assert.equal(error.code, Code.NotFound);
      assert.equal(error.reason, "ERROR_REASON_UNKNOWN_PROVIDER");
    });

    it("carries RetryInfo as retryAfterMs and ErrorInfo metadata", async () => {
      // One attempt: with retries on, the client would wait out the 1.5 s hint twice.
      const once = new PorticoClient(gateway.address, { timeoutMs: 20_000, retry: false });
      const error = await failure(() => once.chat({ model: "fake-chat", messages: [user("rate limit me")] }));
      once.close();
      assert.equal(error.code, Code.ResourceExhausted);
      assert.equal(error.reason, "ERROR_REASON_UPSTREAM_RATE_LIMITED");
      assert.equal(error.retryAfterMs, 1500);
      assert.equal(error.retryable, true);
      assert.equal(error.metadata["provider"], "fake");
      assert.equal(error.rawMessage, "slow down");
      assert.match(error.message, /^RESOURCE_EXHAUSTED: slow down$/);
    });

    it("turns the client's default deadline into DEADLINE_EXCEEDED", async () => {
      const hurried = new PorticoClient(gateway.address, { timeoutMs: 300 });
      try {
        const started = performance.now();
        const error = await failure(() => hurried.chat({ model: "fake-chat", messages: [user("take your time")] }));
        assert.equal(error.code, Code.DeadlineExceeded);
        assert.ok(performance.now() - started < 4_000, "the deadline should end the call");
      } finally {
        hurried.close();
      }
    });

    it("lets one call override the default deadline", async () => {
      const hurried = new PorticoClient(gateway.address, { timeoutMs: 20_000 });
      try {
        const error = await failure(() =>
          hurried.chat({ model: "fake-chat", messages: [user("take your time")] }, { timeoutMs: 200 }),
        );
        assert.equal(error.code, Code.DeadlineExceeded);
      } finally {
        hurried.close();
      }
    });

    it("reports an unreachable gateway as UNAVAILABLE", async () => {
      // Port 1 on loopback: nothing listens there, so the connection is refused at once.
      const nowhere = new PorticoClient("127.0.0.1:1", { timeoutMs: 5_000 });
      try {
        const error = await failure(() => nowhere.chat({ messages: [user("hi")] }));
        assert.equal(error.code, Code.Unavailable);
        assert.equal(error.reason, "");
      } finally {
        nowhere.close();
      }
    });
  });

  describe("the other calls", () => {
    it("lists the providers in configuration order", async () => {
      const reply = await client.listProviders();
      assert.deepEqual(
        reply.providers.map((p) => [p.name, p.kind, p.defaultModel]),
        [
          ["fake", "fake", "fake-chat"],
          ["slow", "fake", "slow-chat"],
        ],
      );
      assert.notEqual(reply.providers[0]!.health, ProviderHealth.NOT_SERVING);
    });

    it("lists every provider across the gateway's pages", async () => {
      // More providers than the gateway's default page of 50.
      const names = Array.from({ length: 120 }, (_, i) => `p${String(i).padStart(3, "0")}`);
      const many = await startGateway({
        server: { address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1 },
        providers: names.map((name) => ({ name, kind: "fake" })),
      });
      const manyClient = new PorticoClient(many.address);
      try {
        const reply = await manyClient.listProviders();
        assert.deepEqual(reply.providers.map((p) => p.name), names);
        assert.equal(reply.nextPageToken, "");
      } finally {
        manyClient.close();
        await many.stop();
      }
    });

    it("counts tokens and describes capabilities", async () => {
      const count = await client.countTokens({ model: "fake-chat", messages: [user("count these words please")] });
      assert.ok(count.tokenCount > 0);
      const caps = await client.getCapabilities({ provider: "fake" });
      assert.equal(caps.capabilities?.provider, "fake");
      assert.equal(caps.capabilities?.supportsStreaming, true);
    });
  });
});
