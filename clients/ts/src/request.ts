/**
 * Requests as people write them: roles as strings ("user") besides the enum, messages and
 * tools as plain objects, and tool parameters as a Zod schema or a JSON Schema object.
 * Everything is turned into the generated message shapes before the call; the caller's
 * objects are never changed.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";

import {
  type ChatRequest,
  type ChatRequestSchema,
  type CountTokensRequest,
  type CountTokensRequestSchema,
} from "./gen/portico/v1/llm_service_pb.js";
import { type Message, type MessageSchema, Role, type ToolDefinitionSchema } from "./gen/portico/v1/types_pb.js";
import { jsonSchemaText, type SchemaInput } from "./schema.js";

/** A role by name, as in the other Portico clients and most LLM SDKs. */
export type RoleName = "system" | "user" | "assistant" | "tool";

const ROLES: Readonly<Record<RoleName, Role>> = Object.freeze({
  system: Role.SYSTEM,
  user: Role.USER,
  assistant: Role.ASSISTANT,
  tool: Role.TOOL,
});

/** The plain-object form of a generated message (no `$typeName`). */
type Fields<T> = Exclude<T, { $typeName: string }>;

/** A message: a generated `Message`, or a plain object whose `role` is a `Role` or its name. */
export type MessageInput =
  | Message
  | (Omit<Fields<MessageInitShape<typeof MessageSchema>>, "role"> & { readonly role?: Role | RoleName });

/** A tool whose argument schema is given as a schema (Zod, JSON Schema object or text), not as text. */
export interface ToolSpec {
  readonly name: string;
  readonly description?: string;
  /** The JSON Schema of the arguments; leave it out for a tool without arguments. */
  readonly parameters?: SchemaInput;
}

/** A tool: a `ToolSpec`, a generated `ToolDefinition`, or one as a plain object with `parametersJsonSchema`. */
export type ToolInput = ToolSpec | MessageInitShape<typeof ToolDefinitionSchema>;

type Conversation<T> = Omit<Fields<T>, "messages" | "tools"> & {
  readonly messages?: readonly MessageInput[];
  readonly tools?: readonly ToolInput[];
};

/** A chat request: a generated `ChatRequest`, or a plain object with plain messages and tools. */
export type ChatRequestInput = ChatRequest | Conversation<MessageInitShape<typeof ChatRequestSchema>>;
/** A token-count request, in the same forms as a chat request. */
export type CountTokensRequestInput =
  | CountTokensRequest
  | Conversation<MessageInitShape<typeof CountTokensRequestSchema>>;

/** The request in the generated shape; throws a TypeError naming the field that is wrong. */
export function conversationRequest<T extends ChatRequestInput | CountTokensRequestInput>(
  request: T,
): MessageInitShape<typeof ChatRequestSchema> & MessageInitShape<typeof CountTokensRequestSchema> {
  if (isGenerated(request)) {
    return request as never;
  }
  const out: Record<string, unknown> = { ...request };
  if (request.messages !== undefined) {
    out["messages"] = request.messages.map((message, i) => messageInit(message, `messages[${i}]`));
  }
  if (request.tools !== undefined) {
    out["tools"] = request.tools.map((tool, i) => toolInit(tool, `tools[${i}]`));
  }
  return out as never;
}

/** A tool definition for a request, from a name, a schema and a description. */
export function tool(spec: ToolSpec): MessageInitShape<typeof ToolDefinitionSchema> {
  return toolInit(spec, "tool");
}

function messageInit(message: MessageInput, where: string): MessageInitShape<typeof MessageSchema> {
  if (isGenerated(message) || typeof message.role !== "string") {
    return message as MessageInitShape<typeof MessageSchema>;
  }
  if (!Object.hasOwn(ROLES, message.role)) {
    throw new TypeError(
      `${where}.role: unknown role ${JSON.stringify(message.role)}; expected one of ${Object.keys(ROLES).join(", ")} or a Role`,
    );
  }
  return { ...message, role: ROLES[message.role as RoleName] };
}

function toolInit(item: ToolInput, where: string): MessageInitShape<typeof ToolDefinitionSchema> {
  if (isGenerated(item) || !("parameters" in item)) {
    return item as MessageInitShape<typeof ToolDefinitionSchema>;
  }
  const { parameters, ...rest } = item as ToolSpec & { parametersJsonSchema?: unknown };
  if (rest.parametersJsonSchema !== undefined) {
    throw new TypeError(`${where}: give parameters or parametersJsonSchema, not both`);
  }
  if (typeof rest.name !== "string" || rest.name === "") {
    throw new TypeError(`${where}.name: a tool needs a name`);
  }
  const parametersJsonSchema = parameters === undefined ? "" : jsonSchemaText(parameters, `${where}.parameters`);
  return { ...rest, parametersJsonSchema };
}

function isGenerated(value: object): boolean {
  return "$typeName" in value;
}
