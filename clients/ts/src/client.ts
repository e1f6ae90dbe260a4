/**
 * `PorticoClient`: the generated LLMService client plus what every caller would
 * otherwise rebuild — the connection (plaintext or TLS, over HTTP/2), metadata on every
 * call, a default deadline, streams as async iterables, and decoded errors.
 */

import type { SecureClientSessionOptions } from "node:http2";

import type { MessageInitShape } from "@bufbuild/protobuf";
import { type CallOptions as ConnectCallOptions, type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { PorticoError } from "./errors.js";
import {
  type ChatRequestSchema,
  type CompletionResponse,
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

/** A chat request as a plain object; every field is optional, as in the generated `create()`. */
export type ChatRequestInit = MessageInitShape<typeof ChatRequestSchema>;
/** An embeddings request as a plain object. */
export type EmbedRequestInit = MessageInitShape<typeof EmbedRequestSchema>;
/** A token-count request as a plain object. */
export type CountTokensRequestInit = MessageInitShape<typeof CountTokensRequestSchema>;
/** A capabilities request as a plain object. */
export type GetCapabilitiesRequestInit = MessageInitShape<typeof GetCapabilitiesRequestSchema>;

/** gRPC metadata: header names (lower case) to values. */
export type Metadata = Readonly<Record<string, string>>;

/** TLS settings; leave a field out to use Node's default (the system's CAs, the host name). */
export interface TlsOptions {
  /** PEM certificate(s) of the authority that signed the gateway's certificate. */
  readonly ca?: string | Buffer;
  /** PEM client certificate, for mutual TLS. */
  readonly cert?: string | Buffer;
  /** PEM private key of `cert`. */
  readonly key?: string | Buffer;
  /** The name to verify the gateway's certificate against, when it differs from the address's host. */
  readonly serverName?: string;
}

export interface PorticoClientOptions {
  /** `true`: TLS with Node's defaults; an object: TLS with these settings; default plaintext. */
  readonly tls?: boolean | TlsOptions;
  /** Sent with every call, e.g. `{ authorization: "Bearer ..." }`; a call's own metadata wins. */
  readonly metadata?: Metadata;
  /** Deadline of each call, streams included, unless the call sets its own; default none. */
  readonly timeoutMs?: number;
}

export interface CallOptions {
  /** This call's deadline in milliseconds, instead of the client's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** Aborting cancels the call; the gateway stops the upstream request too. */
  readonly signal?: AbortSignal;
  /** Added to the client's metadata for this call. */
  readonly metadata?: Metadata;
}

/** Talks to one Portico gateway. Reuse one instance: it keeps one HTTP/2 connection. */
export class PorticoClient {
  /** The generated client, for anything the wrapper does not cover. */
  readonly raw: Client<typeof LLMService>;
  private readonly session: Http2SessionManager;
  private readonly metadata: Metadata;

  /** `address` is "host:port" (or an http:// / https:// URL; https implies TLS). */
  constructor(address: string, options: PorticoClientOptions = {}) {
    const baseUrl = baseUrlOf(address, options.tls !== undefined && options.tls !== false);
    this.session = new Http2SessionManager(baseUrl, undefined, tlsSessionOptions(options.tls));
    const transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.session,
      defaultTimeoutMs: options.timeoutMs,
    });
    this.raw = createClient(LLMService, transport);
    this.metadata = { ...options.metadata };
  }

  /** Generates a complete answer. */
  async chat(request: ChatRequestInit, options: CallOptions = {}): Promise<CompletionResponse> {
    return this.unary(() => this.raw.chat(request, this.callOptions(options)));
  }

  /**
   * Generates an answer as chunks, for `for await`. The last chunk has `final` set and
   * carries the stop reason, usage and assembled tool calls. The call starts when the
   * loop does; leaving the loop early (`break`, `return`, a throw) cancels it, and a
   * failure, even after some chunks, throws a `PorticoError`.
   */
  stream(request: ChatRequestInit, options: CallOptions = {}): AsyncIterable<StreamChunk> {
    return this.streamChunks(request, options);
  }

  /** Embeds a batch of texts; vectors come back in input order. */
  async embed(request: EmbedRequestInit, options: CallOptions = {}): Promise<EmbedResponse> {
    return this.unary(() => this.raw.embed(request, this.callOptions(options)));
  }

  /** Counts the tokens a chat request would use. */
  async countTokens(
    request: CountTokensRequestInit,
    options: CallOptions = {},
  ): Promise<CountTokensResponse> {
    return this.unary(() => this.raw.countTokens(request, this.callOptions(options)));
  }

  /** Tells what a provider and model can do. */
  async getCapabilities(
    request: GetCapabilitiesRequestInit = {},
    options: CallOptions = {},
  ): Promise<GetCapabilitiesResponse> {
    return this.unary(() => this.raw.getCapabilities(request, this.callOptions(options)));
  }

  /**
   * Lists every configured provider with its models and health, in configuration order.
   * It follows the gateway's pages, so the answer holds them all and no next page token;
   * `options` apply to each page's call.
   */
  async listProviders(options: CallOptions = {}): Promise<ListProvidersResponse> {
    const all = await this.unary(() => this.raw.listProviders({}, this.callOptions(options)));
    let token = all.nextPageToken;
    while (token !== "") {
      const page = await this.unary(() =>
        this.raw.listProviders({ pageToken: token }, this.callOptions(options)),
      );
      all.providers.push(...page.providers);
      token = page.nextPageToken;
    }
    all.nextPageToken = "";
    return all;
  }

  /** Closes the connection; calls still running fail. */
  close(): void {
    this.session.abort();
  }

  private callOptions(options: CallOptions): ConnectCallOptions {
    return {
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      headers: { ...this.metadata, ...options.metadata },
    };
  }

  private async *streamChunks(
    request: ChatRequestInit,
    options: CallOptions,
  ): AsyncGenerator<StreamChunk, void, undefined> {
    // Connect's stream iterable has no return(): a consumer that stops iterating would
    // leave the HTTP/2 stream (and the upstream request behind it) open until the
    // deadline. So the call gets its own signal, aborted when the loop ends early.
    const call = new AbortController();
    const forward = (): void => call.abort(options.signal?.reason);
    if (options.signal?.aborted) {
      forward();
    }
    options.signal?.addEventListener("abort", forward, { once: true });
    const chunks = this.raw
      .streamChat(request, { ...this.callOptions(options), signal: call.signal })
      [Symbol.asyncIterator]();
    let settled = false;
    try {
      for (;;) {
        const next = await chunks.next();
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
      options.signal?.removeEventListener("abort", forward);
      if (!settled) {
        call.abort();
        // One more read lets Connect see the abort and clear the call's deadline timer,
        // which would otherwise keep the process alive until it fires.
        await chunks.next().catch(() => undefined);
      }
    }
  }

  private async unary<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (reason) {
      throw PorticoError.from(reason);
    }
  }
}

function tlsSessionOptions(tls: boolean | TlsOptions | undefined): SecureClientSessionOptions {
  if (typeof tls !== "object") {
    return {};
  }
  const options: SecureClientSessionOptions = {};
  if (tls.ca !== undefined) options.ca = tls.ca;
  if (tls.cert !== undefined) options.cert = tls.cert;
  if (tls.key !== undefined) options.key = tls.key;
  if (tls.serverName !== undefined) options.servername = tls.serverName;
  return options;
}

function baseUrlOf(address: string, tls: boolean): string {
  if (/^https?:\/\//.test(address)) {
    if (tls && address.startsWith("http://")) {
      throw new TypeError(`PorticoClient: tls is set but the address is ${address}`);
    }
    return address;
  }
  return `${tls ? "https" : "http"}://${address}`;
}
