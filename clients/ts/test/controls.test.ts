/**
 * The reasoning, cache and document helpers against a real gateway whose fake provider
 * reports, in the answer's metadata, what reached it.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { cache, documentPart, PorticoClient, reasoning, Role, textPart } from "../src/index.js";
import { type RunningGateway, startGateway } from "./gateway.js";

describe("request helpers", () => {
  let gateway: RunningGateway;
  let client: PorticoClient;

  before(async () => {
    gateway = await startGateway({
      server: { address: "127.0.0.1:0", health_probe_interval: 0, shutdown_grace: 1 },
      providers: [{ name: "controls", kind: "fake", models: ["fake-chat"], options: { report_controls: true } }],
    });
    client = new PorticoClient(gateway.address, { timeoutMs: 20_000 });
  });

  after(async () => {
    client.close();
    await gateway.stop();
  });

  it("sends reasoning controls, cache breakpoints and documents to the provider", async () => {
    const answer = await client.chat({
      model: "fake-chat",
      messages: [
        cache({ role: Role.SYSTEM, content: "Long shared rules." }, 3600),
        {
          role: Role.USER,
          parts: [cache(documentPart(new TextEncoder().encode("%PDF-1.7 tiny"))), textPart("Summarise it.")],
        },
      ],
      tools: [cache({ name: "lookup" }, 300)],
      reasoning: reasoning("high", 4096),
    });
    assert.equal(answer.metadata["received_reasoning"], "effort=high budget=4096");
    assert.equal(answer.metadata["received_cache"], "messages[0]=3600 messages[1].parts[0]=default tools[0]=300");
    assert.equal(answer.metadata["received_media"], "messages[1].parts[0]=application/pdf");
  });

  it("leaves the budget unset when only an effort is given", async () => {
    const answer = await client.chat({ model: "fake-chat", messages: [{ role: Role.USER, content: "hi" }],
      reasoning: reasoning("low") });
    assert.equal(answer.metadata["received_reasoning"], "effort=low budget=0");
  });

  it("refuses an effort it does not know before any call", () => {
    assert.throws(() => reasoning("extreme" as "low"), RangeError);
  });
});
