/**
 * Tool parameter schemas from a Zod schema, a JSON Schema object or JSON text, checked
 * where they end up: the gateway runs an OpenAI provider against a small local HTTP
 * server speaking OpenAI's chat-completions format, which keeps every request body, so
 * a test sees the exact JSON the provider would have received.
 */

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";
import { z } from "zod";
import { z as mini } from "zod/mini";

import { jsonSchemaText, PorticoClient, tool, ToolDefinitionSchema } from "../src/index.js";
import { type RunningGateway, startGateway } from "./gateway.js";

/** Answers every chat completion with "ok" and keeps the request bodies, in order. */
function openAiUpstream(bodies: Record<string, unknown>[]): Server {
  return createServer((request, response) => {
    const parts: Buffer[] = [];
    request.on("data", (part: Buffer) => parts.push(part));
    request.on("end", () => {
      if (request.method !== "POST" || request.url !== "/v1/chat/completions") {
        response.writeHead(404).end();
        return;
      }
      bodies.push(JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>);
      response.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          id: "chatcmpl-1",
          object: "chat.completion",
          created: 0,
          model: "gpt-test",
          choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
          usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
        }),
      );
    });
  });
}

interface SentTool {
  type: string;
  function: { name: string; description?: string; parameters?: unknown };
}

describe("tool parameter schemas", () => {
  const bodies: Record<string, unknown>[] = [];
  let upstream: Server;
  let gateway: RunningGateway;
  let client: PorticoClient;

  before(async () => {
    upstream = openAiUpstream(bodies);
    await new Promise<void>((listening) => upstream.listen(0, "127.0.0.1", listening));
    const port = (upstream.address() as AddressInfo).port;
    gateway = await startGateway({
      server: { address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1 },
      providers: [
        {
          name: "openai",
          kind: "openai",
          api_key: "sk-test-not-a-real-key",
          base_url: `http://127.0.0.1:${port}/v1`,
          models: ["gpt-test"],
          default_model: "gpt-test",
          retry: { enabled: false },
          breaker: { enabled: false },
        },
      ],
    });
    client = new PorticoClient(gateway.address, { timeoutMs: 20_000 });
  });

  after(async () => {
    client?.close();
    await gateway?.stop();
    await new Promise<void>((closed) => (upstream ? upstream.close(() => closed()) : closed()));
  });

  /** Sends one chat with `tools` and returns the tools the provider received. */
  async function sent(tools: Parameters<PorticoClient["chat"]>[0]["tools"]): Promise<SentTool[]> {
    const before = bodies.length;
    const reply = await client.chat({ messages: [{ role: "user", content: "use a tool" }], tools });
    assert.equal(reply.content, "ok");
    assert.equal(bodies.length, before + 1);
    return bodies.at(-1)!["tools"] as SentTool[];
  }

  it("turns a Zod schema into its JSON Schema", async () => {
    const weather = z.object({
      city: z.string().describe("The city, e.g. Paris"),
      unit: z.enum(["celsius", "fahrenheit"]).optional(),
      days: z.number().int().min(1).max(7),
    });
    const [received] = await sent([{ name: "get_weather", description: "Weather forecast", parameters: weather }]);
    assert.equal(received!.type, "function");
    assert.equal(received!.function.name, "get_weather");
    assert.equal(received!.function.description, "Weather forecast");
    assert.deepEqual(received!.function.parameters, {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: {
        city: { type: "string", description: "The city, e.g. Paris" },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
        days: { type: "integer", minimum: 1, maximum: 7 },
      },
      required: ["city", "days"],
      additionalProperties: false,
    });
  });

  it("sends a plain JSON Schema object and JSON text as they are, beside generated definitions", async () => {
    const plain = {
      type: "object",
      properties: { query: { type: "string" }, limit: { type: "integer", default: 10 } },
      required: ["query"],
    };
    const text = '{"type":"object","properties":{"id":{"type":"string"}}}';
    const received = await sent([
      { name: "search", parameters: plain },
      tool({ name: "lookup", description: "Find by id", parameters: text }),
      create(ToolDefinitionSchema, { name: "legacy", parametersJsonSchema: '{"type":"object"}' }),
      { name: "plain_init", parametersJsonSchema: '{"type":"object","properties":{}}' },
    ]);
    assert.deepEqual(
      received.map((t) => t.function.name),
      ["search", "lookup", "legacy", "plain_init"],
    );
    assert.deepEqual(received[0]!.function.parameters, plain);
    // Key order survives the trip, as the API's schema-as-text promises.
    assert.deepEqual(Object.keys(received[0]!.function.parameters as object), ["type", "properties", "required"]);
    assert.deepEqual(received[1]!.function.parameters, JSON.parse(text));
    assert.equal(received[1]!.function.description, "Find by id");
    assert.deepEqual(received[2]!.function.parameters, { type: "object" });
  });

  it("refuses a schema it cannot send, naming the tool, before any call", async () => {
    const bodiesBefore = bodies.length;
    const cases: [unknown, RegExp][] = [
      [["not", "a", "schema"], /^tools\[0\]\.parameters: expected a Zod schema, a JSON Schema object or JSON text, got an array$/],
      ["{not json", /^tools\[0\]\.parameters: not valid JSON/],
      ["[1, 2]", /^tools\[0\]\.parameters: a JSON Schema must be a JSON object$/],
      [z.object({ when: z.date() }), /^tools\[0\]\.parameters: the Zod schema has no JSON Schema form: Date cannot be represented/],
      [mini.object({ a: mini.string() }), /^tools\[0\]\.parameters: this Zod schema cannot convert itself .* pass z\.toJSONSchema\(schema\) instead$/],
    ];
    for (const [parameters, message] of cases) {
      await assert.rejects(
        client.chat({ messages: [{ role: "user", content: "hi" }], tools: [{ name: "t", parameters: parameters as never }] }),
        (error: unknown) => error instanceof TypeError && message.test(error.message),
      );
    }
    await assert.rejects(
      client.chat({
        messages: [{ role: "user", content: "hi" }],
        tools: [{ name: "both", parameters: {}, parametersJsonSchema: "{}" } as never],
      }),
      /^TypeError: tools\[0\]: give parameters or parametersJsonSchema, not both$/,
    );
    assert.equal(bodies.length, bodiesBefore, "nothing reached the provider");
  });

  it("jsonSchemaText writes a schema for response formats too", () => {
    assert.equal(jsonSchemaText(z.object({ n: z.number() })), JSON.stringify(z.object({ n: z.number() }).toJSONSchema()));
    assert.equal(jsonSchemaText({ type: "string" }), '{"type":"string"}');
  });
});
