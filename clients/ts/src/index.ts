/**
 * The Portico TypeScript client.
 *
 * `PorticoClient` and `PorticoError` are hand-written; the message types, enums and the
 * service descriptor are generated from proto/ into src/gen/ and re-exported here.
 */

import "./dispose.js";

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
export { API_KEY_ENV } from "./connection.js";
export {
  type ChatRequestInput,
  type CountTokensRequestInput,
  type MessageInput,
  type RoleName,
  tool,
  type ToolInput,
  type ToolSpec,
} from "./request.js";
export { DEFAULT_RETRY_POLICY, MAX_RETRY_INFO_DELAY_MS, type RetryPolicy } from "./retry.js";
export { type JsonSchemaSource, jsonSchemaText, type SchemaInput } from "./schema.js";
export { cache, documentPart, documentUriPart, type EffortLike, reasoning, textPart } from "./helpers.js";
export { type ChatResponse, ChatStream } from "./stream.js";
export type { Attempt, Trace } from "./trace.js";
export { Code, type FieldViolation, grpcCodeName, PORTICO_ERROR_DOMAIN, PorticoError } from "./errors.js";
export * from "./gen/portico/v1/error_reason_pb.js";
export * from "./gen/portico/v1/llm_service_pb.js";
export * from "./gen/portico/v1/types_pb.js";
export * from "./gen/portico/v1/vector_service_pb.js";
export {
  type CollectionInit,
  type FilterInit,
  type FilterScalar,
  type VectorMatch,
  type VectorMetadata,
  type VectorQuery,
  type VectorRecord,
  type VectorRecordInput,
  Vectors,
  where,
} from "./vectors.js";
