/**
 * `PorticoClient`: the generated LLMService client plus what every caller would
 * otherwise rebuild — the connection (plaintext, TLS or mutual TLS, over HTTP/2), the
 * caller key and metadata on every call, a default deadline, retries of the failures the
 * gateway marks retry-safe, requests as plain objects, streams as async iterables, and
 * decoded errors.
 */

import "./dispose.js";

import { setMaxListeners } from "node:events";

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, type CallOptions as ConnectCallOptions, type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { baseUrlOf, bearerToken, resolveApiKey, type TlsOptions, tlsSessionOptions } from "./connection.js";
import { PorticoError } from "./errors.js";
import { type ChatRequestInput, conversationRequest, type CountTokensRequestInput } from "./request.js";
import { Attempts, type RetryPolicy, resolveRetryPolicy, waitBeforeRetry } from "./retry.js";
import { type ChatResponse, ChatStream } from "./stream.js";
import { type Trace, traceFromHeaders } from "./trace.js";
import { Vectors } from "./vectors.js";
import { VectorService } from "./gen/portico/v1/vector_service_pb.js";
import {
  type ChatRequestSchema,
  type CountTokensRequestSchema,
  type CountTokensResponse,
  type EmbedRequestSchema,
  type EmbedResponse,
  type GetCapabilitiesRequestSchema,
  type GetCapabilitiesResponse,
  type ListProvidersResponse,
  LLMService,
  type StreamChunk,
} from "./gen/portico/v1/llm_service_pb.js";

export type { TlsOptions };

/** A chat request in the generated shape; `chat` and `stream` also take a `ChatRequestInput`. */
export type ChatRequestInit = MessageInitShape<typeof ChatRequestSchema>;
/** An embeddings request as a plain object. */
export type EmbedRequestInit = MessageInitShape<typeof EmbedRequestSchema>;
/** A token-count request as a plain object. */
export type CountTokensRequestInit = MessageInitShape<typeof CountTokensRequestSchema>;
/** A capabilities request as a plain object. */
export type GetCapabilitiesRequestInit = MessageInitShape<typeof GetCapabilitiesRequestSchema>;

/** gRPC metadata: header names (lower case) to values. */
export type Metadata = Readonly<Record<string, string>>;

export interface PorticoClientOptions {
  /**
   * The caller key, sent as `authorization: Bearer <key>` on every call (plaintext or
   * TLS). Default: $PORTICO_API_KEY when set; `""` sends none.
   */
  readonly apiKey?: string;
  /**
   * `true`: TLS, verifying the gateway against the system's CAs; an object: TLS with
   * these settings (`{ caFile, certFile, keyFile }`); default plaintext.
   */
  readonly tls?: boolean | TlsOptions;
  /** Sent with every call; a call's own metadata wins. */
  readonly metadata?: Metadata;
  /**
   * Deadline of each call, streams included, unless the call sets its own; default none.
   * It covers all of a call's attempts together.
   */
  readonly timeoutMs?: number;
  /**
   * How a call that failed in a retry-safe way is sent again (UNAVAILABLE, or
   * RESOURCE_EXHAUSTED with a RetryInfo, with `retry_safe` in its details; see
   * `PorticoError.retrySafe`); `false` turns retries off. Default: 3 attempts, waits of up
   * to 200 ms doubling up to 5 s (full jitter), or exactly the gateway's RetryInfo delay.
   */
  readonly retry?: RetryPolicy | false;
}

export interface CallOptions {
  /** This call's deadline in milliseconds, instead of the client's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** Aborting cancels the call; the gateway stops the upstream request too. */
  readonly signal?: AbortSignal;
  /** Added to the client's metadata for this call. */
  readonly metadata?: Metadata;
}

/**
 * Talks to one Portico gateway. Reuse one instance: it keeps one HTTP/2 connection.
 * `close()`, or `await using client = new PorticoClient(...)`, closes it.
 */
export class PorticoClient implements AsyncDisposable {
  /** The generated client, for anything the wrapper does not cover. */
  readonly raw: Client<typeof LLMService>;
  /** The vector store (VectorService), on the same connection, key, deadline and retries. */
  readonly vectors: Vectors;
  private readonly session: Http2SessionManager;
  private readonly metadata: Metadata;
  private readonly timeoutMs: number | undefined;
  private readonly retry: Required<RetryPolicy>;
  /** Aborted by `close()`: cancels the streams still open, read or not. */
  private readonly closing = new AbortController();

  /**
   * `address` is "host:port" (or an http:// / https:// URL; https implies TLS). The
   * caller key is `options.apiKey`, else $PORTICO_API_KEY.
   */
  constructor(address: string, options: PorticoClientOptions = {}) {
    const baseUrl = baseUrlOf(address, options.tls !== undefined && options.tls !== false);
    this.session = new Http2SessionManager(baseUrl, undefined, tlsSessionOptions(options.tls));
    const apiKey = resolveApiKey(options.apiKey);
    // No transport-wide timeout: each attempt gets what is left of its call's deadline.
    const transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.session,
      interceptors: apiKey === undefined ? [] : [bearerToken(apiKey)],
    });
    this.raw = createClient(LLMService, transport);
    this.vectors = new Vectors(createClient(VectorService, transport), (options, call) => this.unary(options, call));
    this.metadata = { ...options.metadata };
    this.timeoutMs = options.timeoutMs;
    this.retry = resolveRetryPolicy(options.retry);
    // Each open stream listens here; many at once are normal, not a leak to warn about.
    setMaxListeners(0, this.closing.signal);
  }

  /** Generates a complete answer; `attempts` and `overheadMs` are the gateway's attempt trace. */
  async chat(request: ChatRequestInput, options: CallOptions = {}): Promise<ChatResponse> {
    const init = conversationRequest(request);
    let trailers: Headers | undefined;
    const response = await this.unary(options, (call) =>
      this.raw.chat(init, { ...call, onTrailer: (t) => (trailers = t) }),
    );
    return Object.assign(response, traceFromHeaders(trailers));
  }

  /**
   * Generates an answer as chunks, for `for await`. The last chunk has `final` set and
   * carries the stop reason, usage and assembled tool calls. The call starts when the
   * loop does; leaving the loop early (`break`, `return`, a throw) cancels it, and a
   * failure, even after some chunks, throws a `PorticoError`. `finalResponse()` gives the
   * assembled answer (only the final one after a failover marker; see `ChatStream`), and
   * `textStream` the text alone.
   */
  stream(request: ChatRequestInput, options: CallOptions = {}): ChatStream {
    const init = conversationRequest(request);
    return new ChatStream((onTrailer) => this.streamChunks(init, options, onTrailer));
  }

  /** Embeds a batch of texts; vectors come back in input order, with the attempt trace. */
  async embed(request: EmbedRequestInit, options: CallOptions = {}): Promise<EmbedResponse & Trace> {
    let trailers: Headers | undefined;
    const response = await this.unary(options, (call) =>
      this.raw.embed(request, { ...call, onTrailer: (t) => (trailers = t) }),
    );
    return Object.assign(response, traceFromHeaders(trailers));
  }

  /** Counts the tokens a chat request would use. */
  async countTokens(
    request: CountTokensRequestInput,
    options: CallOptions = {},
  ): Promise<CountTokensResponse> {
    const init = conversationRequest(request);
    return this.unary(options, (call) => this.raw.countTokens(init, call));
  }

  /** Tells what a provider and model can do. */
  async getCapabilities(
    request: GetCapabilitiesRequestInit = {},
    options: CallOptions = {},
  ): Promise<GetCapabilitiesResponse> {
    return this.unary(options, (call) => this.raw.getCapabilities(request, call));
  }

  /**
   * Lists every configured provider with its models and health, in configuration order.
   * It follows the gateway's pages, so the answer holds them all and no next page token;
   * `options` apply to each page's call.
   */
  async listProviders(options: CallOptions = {}): Promise<ListProvidersResponse> {
    const all = await this.unary(options, (call) => this.raw.listProviders({}, call));
    let token = all.nextPageToken;
    while (token !== "") {
      const page = await this.unary(options, (call) => this.raw.listProviders({ pageToken: token }, call));
      all.providers.push(...page.providers);
      token = page.nextPageToken;
    }
    all.nextPageToken = "";
    return all;
  }

  /**
   * Closes the connection; calls still running fail, open streams are cancelled, and
   * later calls fail with CANCELLED.
   */
  close(): void {
    this.closing.abort(new Error("the client was closed"));
    this.session.abort();
  }

  /** `await using client = new PorticoClient(...)`: closes the connection when the scope ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** Throws CANCELLED once `close()` was called, before an attempt starts. */
  private ensureOpen(): void {
    if (this.closing.signal.aborted) {
      throw PorticoError.from(new ConnectError("the PorticoClient is closed", Code.Canceled));
    }
  }

  private attempts(options: CallOptions): Attempts {
    return new Attempts(this.retry, options.timeoutMs ?? this.timeoutMs);
  }

  private callOptions(options: CallOptions, attempts: Attempts): ConnectCallOptions {
    return {
      timeoutMs: attempts.timeoutMs(),
      signal: options.signal,
      headers: { ...this.metadata, ...options.metadata },
    };
  }

  private async *streamChunks(
    request: ChatRequestInit,
    options: CallOptions,
    onTrailer: (trailers: Headers) => void,
  ): AsyncGenerator<StreamChunk, void, undefined> {
    // A failure before the first chunk may be retried like a unary call; after it, a
    // retry would repeat text the caller already has, so the failure is final.
    const attempts = this.attempts(options);
    let received = false;
    for (;;) {
      this.ensureOpen();
      try {
        for await (const chunk of this.streamAttempt(request, options, attempts, onTrailer)) {
          received = true;
          yield chunk;
        }
        return;
      } catch (reason) {
        const error = PorticoError.from(reason);
        const delay = received ? undefined : attempts.delayBeforeNext(error);
        if (delay === undefined) {
          throw error;
        }
        await waitBeforeRetry(delay, options.signal);
      }
    }
  }

  private async *streamAttempt(
    request: ChatRequestInit,
    options: CallOptions,
    attempts: Attempts,
    onTrailer: (trailers: Headers) => void,
  ): AsyncGenerator<StreamChunk, void, undefined> {
    // Connect's stream iterable has no return(): a consumer that stops iterating would
    // leave the HTTP/2 stream (and the upstream request behind it) open until the
    // deadline. So the call gets its own signal, aborted when the loop ends early, when
    // the caller's signal aborts, or when the client closes.
    const call = new AbortController();
    const sources = [options.signal, this.closing.signal].filter((s): s is AbortSignal => s !== undefined);
    const chunks = this.raw
      .streamChat(request, { ...this.callOptions(options, attempts), signal: call.signal, onTrailer })
      [Symbol.asyncIterator]();
    // Connect clears the call's deadline timer only when the stream is read after an
    // abort, and a consumer that stopped iterating (without return()) never reads again.
    // So cancelling reads once at once, and the loop takes that read's result next.
    let drained: Promise<IteratorResult<StreamChunk>> | undefined;
    const cancel = function (this: AbortSignal): void {
      if (!call.signal.aborted) {
        call.abort(this.reason);
        drained = chunks.next();
        drained.catch(() => undefined);
      }
    };
    for (const source of sources) {
      if (source.aborted) {
        cancel.call(source);
      }
      source.addEventListener("abort", cancel, { once: true });
    }
    let settled = false;
    try {
      for (;;) {
        const pending = drained;
        drained = undefined;
        const next = await (pending ?? chunks.next());
        if (next.done === true) {
          settled = true;
          return;
        }
        yield next.value;
      }
    } catch (reason) {
      settled = true;
      throw PorticoError.from(reason);
    } finally {
      for (const source of sources) {
        source.removeEventListener("abort", cancel);
      }
      if (!settled) {
        call.abort();
        // One more read lets Connect see the abort and clear the call's deadline timer,
        // which would otherwise keep the process alive until it fires.
        await chunks.next().catch(() => undefined);
      }
    }
  }

  private async unary<T>(options: CallOptions, call: (options: ConnectCallOptions) => Promise<T>): Promise<T> {
    const attempts = this.attempts(options);
    for (;;) {
      this.ensureOpen();
      let error: PorticoError;
      try {
        return await call(this.callOptions(options, attempts));
      } catch (reason) {
        error = PorticoError.from(reason);
      }
      const delay = attempts.delayBeforeNext(error);
      if (delay === undefined) {
        throw error;
      }
      await waitBeforeRetry(delay, options.signal);
    }
  }
}
