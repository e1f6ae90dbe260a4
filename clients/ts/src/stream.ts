/**
 * `ChatStream`: a streamed answer to iterate with `for await`, which also assembles the
 * whole answer, follows failover markers and keeps the gateway's attempt trace.
 */

import "./dispose.js";

import { create } from "@bufbuild/protobuf";

import {
  type CompletionResponse,
  CompletionResponseSchema,
  type Failover,
  StreamFailover,
  type StreamChunk,
} from "./gen/portico/v1/llm_service_pb.js";
import { Role } from "./gen/portico/v1/types_pb.js";
import { type Attempt, NO_TRACE, type Trace, traceFromHeaders } from "./trace.js";

/** A complete answer with the gateway's attempt trace beside its fields. */
export type ChatResponse = CompletionResponse & Trace;

/** Starts the call; `onTrailer` receives the stream's trailers when it ends. */
export type StartStream = (onTrailer: (trailers: Headers) => void) => AsyncGenerator<StreamChunk, void, undefined>;

/**
 * A streamed answer. Iterate it once with `for await` (over its chunks, or over
 * `textStream` for the text alone); leaving the loop early cancels the call.
 * `finalResponse()` reads what is left and returns the assembled answer. `close()`, or
 * `await using stream = client.stream(...)`, cancels a call still running.
 *
 * With `streamFailover` set on the request, a chunk whose `failover` is set says another
 * target took over: after STREAM_FAILOVER_RESTART everything before it belonged to an
 * abandoned answer, after STREAM_FAILOVER_CONTINUE it stays. `text` and the final response
 * hold only the final answer; `failovers` lists the markers.
 */
export class ChatStream implements AsyncIterable<StreamChunk>, AsyncDisposable {
  /** The failover markers received so far, in order. */
  readonly failovers: Failover[] = [];
  private content: string[] = [];
  private reasoning: string[] = [];
  private model = "";
  private provider = "";
  private metadata: Record<string, string> = {};
  private final: StreamChunk | undefined;
  private traced: Trace = NO_TRACE;
  private readonly chunks: AsyncGenerator<StreamChunk, void, undefined>;

  constructor(start: StartStream) {
    this.chunks = this.read(start);
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamChunk> {
    return this.chunks;
  }

  /** The answer's text so far, as the final response will hold it. */
  get text(): string {
    return this.content.join("");
  }

  /**
   * The text of the answer as it arrives, for `for await`: each chunk's content, chunks
   * without text skipped. It reads the same stream as iterating the chunks (use one or
   * the other); after it, `finalResponse()` still gives the assembled answer. After a
   * RESTART failover marker the new answer's text follows what came before it; the
   * final response holds only the new one.
   */
  get textStream(): AsyncIterable<string> {
    const chunks = this.chunks;
    return {
      async *[Symbol.asyncIterator]() {
        for await (const chunk of chunks) {
          if (chunk.content !== "") {
            yield chunk.content;
          }
        }
      },
    };
  }

  /** The gateway's attempt trace: set when the stream has ended. */
  get trace(): Trace {
    return this.traced;
  }

  /** The gateway's attempts for this call, in order (from the trailers): empty until the stream has ended. */
  get attempts(): readonly Attempt[] {
    return this.traced.attempts;
  }

  /** The gateway's own milliseconds on this call: undefined until the stream has ended. */
  get overheadMs(): number | undefined {
    return this.traced.overheadMs;
  }

  /** Cancels the call if it is still running; the gateway stops the upstream request too. */
  async close(): Promise<void> {
    await this.chunks.return(undefined);
  }

  /** `await using stream = client.stream(...)`: the call is cancelled when the scope ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Reads the rest of the stream and returns the assembled answer with its trace. */
  async finalResponse(): Promise<ChatResponse> {
    for await (const _ of this.chunks) {
      // read to the end
    }
    const final = this.final;
    if (final === undefined) {
      throw new Error("portico: the stream ended without its final chunk");
    }
    const response = create(CompletionResponseSchema, {
      content: this.content.join(""),
      role: Role.ASSISTANT,
      toolCalls: final.toolCalls,
      stopReason: final.stopReason,
      rawStopReason: final.rawStopReason,
      usage: final.usage,
      model: this.model,
      provider: this.provider,
      reasoningContent: this.reasoning.join(""),
      metadata: this.metadata,
      parts: final.parts,
    });
    return Object.assign(response, this.traced);
  }

  private async *read(start: StartStream): AsyncGenerator<StreamChunk, void, undefined> {
    for await (const chunk of start((trailers) => (this.traced = traceFromHeaders(trailers)))) {
      this.add(chunk);
      yield chunk;
    }
  }

  private add(chunk: StreamChunk): void {
    if (chunk.failover !== undefined) {
      this.failOver(chunk.failover);
      return;
    }
    this.content.push(chunk.content);
    this.reasoning.push(chunk.reasoningContent);
    this.model = chunk.model || this.model;
    this.provider = chunk.provider || this.provider;
    Object.assign(this.metadata, chunk.metadata);
    if (chunk.final) {
      this.final = chunk;
    }
  }

  private failOver(marker: Failover): void {
    this.failovers.push(marker);
    if (marker.mode === StreamFailover.RESTART) {
      this.content = [];
      this.reasoning = [];
      this.metadata = {};
    }
    this.provider = marker.provider || this.provider;
    this.model = marker.model || this.model;
  }
}
