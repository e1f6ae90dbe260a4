/**
 * JSON Schema as text, from a Zod schema, a plain JSON Schema object or ready-made text.
 *
 * The API carries schemas as JSON text (so key order and integers survive); these helpers
 * write that text so callers never do it by hand. Zod stays an optional peer dependency:
 * a Zod schema (zod 4.2 or newer) converts itself with its own `toJSONSchema()`, so this
 * package never imports zod.
 */

/** Anything that turns itself into a JSON Schema object, as Zod schemas do. */
export interface JsonSchemaSource {
  toJSONSchema(): unknown;
}

/** A JSON Schema: an object, a Zod schema, or JSON text of an object. */
export type SchemaInput = Readonly<Record<string, unknown>> | JsonSchemaSource | string;

/** The schema as compact JSON text; `what` names the argument in error messages. */
export function jsonSchemaText(schema: SchemaInput, what = "schema"): string {
  if (typeof schema === "string") {
    let tree: unknown;
    try {
      tree = JSON.parse(schema);
    } catch (error) {
      throw new TypeError(`${what}: not valid JSON: ${(error as Error).message}`);
    }
    if (!isPlainObject(tree)) {
      throw new TypeError(`${what}: a JSON Schema must be a JSON object`);
    }
    return schema; // the caller's exact text, key order and all
  }
  return stringify(schemaTree(schema, what), what);
}

function schemaTree(schema: unknown, what: string): Record<string, unknown> {
  if (typeof schema === "object" && schema !== null && typeof (schema as JsonSchemaSource).toJSONSchema === "function") {
    let tree: unknown;
    try {
      tree = (schema as JsonSchemaSource).toJSONSchema();
    } catch (error) {
      // e.g. a z.date() or a transform, which have no JSON Schema form
      throw new TypeError(`${what}: the Zod schema has no JSON Schema form: ${(error as Error).message}`, { cause: error });
    }
    if (!isPlainObject(tree)) {
      throw new TypeError(`${what}: toJSONSchema() did not return an object`);
    }
    return tree;
  }
  if (isZodWithoutConverter(schema)) {
    throw new TypeError(
      `${what}: this Zod schema cannot convert itself (zod 4.2 or newer, classic API, can); ` +
        "pass z.toJSONSchema(schema) instead",
    );
  }
  if (!isPlainObject(schema)) {
    throw new TypeError(`${what}: expected a Zod schema, a JSON Schema object or JSON text, got ${describe(schema)}`);
  }
  return schema;
}

function stringify(tree: Record<string, unknown>, what: string): string {
  try {
    return JSON.stringify(tree);
  } catch (error) {
    // a cycle or a bigint
    throw new TypeError(`${what}: cannot be written as JSON: ${(error as Error).message}`, { cause: error });
  }
}

/** zod/mini and zod before 4.2 (`_zod`), or zod 3 (`_def` and `safeParse`). */
function isZodWithoutConverter(value: unknown): boolean {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  return "_zod" in value || ("_def" in value && typeof (value as { safeParse?: unknown }).safeParse === "function");
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return false;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return `a ${value.constructor?.name ?? "object"}`;
  return `a ${typeof value}`;
}
