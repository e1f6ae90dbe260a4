/**
 * Small builders for the request fields that are awkward by hand: reasoning controls,
 * prompt-cache breakpoints, and text and document parts.
 */

import { create, type MessageInitShape } from "@bufbuild/protobuf";

import {
  CacheBreakpointSchema,
  type ContentPartSchema,
  type MessageSchema,
  ReasoningEffort,
  type ReasoningConfigSchema,
  type ToolDefinitionSchema,
} from "./gen/portico/v1/types_pb.js";

/** An effort by name, or the generated enum value. */
export type EffortLike = "low" | "medium" | "high" | ReasoningEffort;

const EFFORTS: Record<string, ReasoningEffort> = {
  low: ReasoningEffort.LOW,
  medium: ReasoningEffort.MEDIUM,
  high: ReasoningEffort.HIGH,
};

/**
 * Reasoning controls for `ChatRequest.reasoning`: an effort, a token budget, or both.
 * Each provider maps them to its own knob; a model without one fails the call with
 * FAILED_PRECONDITION.
 */
export function reasoning(
  effort?: EffortLike,
  budgetTokens?: number,
): MessageInitShape<typeof ReasoningConfigSchema> {
  const out: MessageInitShape<typeof ReasoningConfigSchema> = {};
  if (effort !== undefined) {
    const value = typeof effort === "string" ? EFFORTS[effort] : effort;
    if (value === undefined) {
      throw new RangeError(`reasoning: effort must be "low", "medium" or "high", got ${JSON.stringify(effort)}`);
    }
    out.effort = value;
  }
  if (budgetTokens !== undefined) {
    out.budgetTokens = budgetTokens;
  }
  return out;
}

type Cacheable =
  | MessageInitShape<typeof MessageSchema>
  | MessageInitShape<typeof ContentPartSchema>
  | MessageInitShape<typeof ToolDefinitionSchema>;

/**
 * Marks a message, part or tool as a prompt-cache breakpoint and returns it: the provider
 * may cache the prompt up to and including it (Anthropic `cache_control`; providers that
 * cache on their own ignore it). `ttlSeconds` undefined means the provider's default;
 * Anthropic takes 300 and 3600.
 */
export function cache<T extends Cacheable>(item: T, ttlSeconds?: number): T {
  item.cache = create(CacheBreakpointSchema, ttlSeconds === undefined ? {} : { ttlSeconds });
  return item;
}

/** A text part. */
export function textPart(text: string): MessageInitShape<typeof ContentPartSchema> {
  return { part: { case: "text", value: text } };
}

/**
 * A document (or image) part with inline bytes; `mimeType` may be left out for PNG,
 * JPEG, GIF, WebP and PDF, which the gateway recognises.
 */
export function documentPart(data: Uint8Array, mimeType = ""): MessageInitShape<typeof ContentPartSchema> {
  return { part: { case: "media", value: { mimeType, source: { case: "data", value: data } } } };
}

/** A document (or image) part the provider fetches: an http(s), gs:// or data: URI. */
export function documentUriPart(uri: string, mimeType = ""): MessageInitShape<typeof ContentPartSchema> {
  return { part: { case: "media", value: { mimeType, source: { case: "uri", value: uri } } } };
}
