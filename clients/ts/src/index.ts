/**
 * The Portico TypeScript client.
 *
 * `PorticoClient` and `PorticoError` are hand-written; the message types, enums and the
 * service descriptor are generated from proto/ into src/gen/ and re-exported here.
 */

export {
  type CallOptions,
  type ChatRequestInit,
  type CountTokensRequestInit,
  type EmbedRequestInit,
  type GetCapabilitiesRequestInit,
  type Metadata,
  PorticoClient,
  type PorticoClientOptions,
  type TlsOptions,
} from "./client.js";
export { cache, documentPart, documentUriPart, type EffortLike, reasoning, textPart } from "./helpers.js";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./retry.js";
export { type ChatResponse, ChatStream } from "./stream.js";
export type { Attempt, Trace } from "./trace.js";
export { Code, type FieldViolation, grpcCodeName, PORTICO_ERROR_DOMAIN, PorticoError } from "./errors.js";
export * from "./gen/portico/v1/error_reason_pb.js";
export * from "./gen/portico/v1/llm_service_pb.js";
export * from "./gen/portico/v1/types_pb.js";
