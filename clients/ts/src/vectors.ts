/**
 * `client.vectors`: the gateway's vector store (`portico.v1.VectorService`) — collections
 * of vectors with JSON metadata, searched by similarity. Calls share the client's
 * connection, caller key, metadata, deadline, retries and `PorticoError`s; metadata goes
 * in and comes out as plain objects instead of JSON text.
 */

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CallOptions as ConnectCallOptions, Client } from "@connectrpc/connect";

import type { CallOptions } from "./client.js";
import {
  type Collection,
  type CollectionSchema,
  type FilterSchema,
  type FilterValueSchema,
  type Record as RecordMessage,
  type UpsertResponse,
  VectorService,
} from "./gen/portico/v1/vector_service_pb.js";

/** A collection to create: `{ name, dimensions, distance: Distance.COSINE, embeddingProvider, embeddingModel }`. */
export type CollectionInit = MessageInitShape<typeof CollectionSchema>;
/** A metadata filter; build one with `where`. */
export type FilterInit = MessageInitShape<typeof FilterSchema>;
/** Metadata: a JSON object. */
export type VectorMetadata = { [key: string]: unknown };

/** A record to upsert: give `vector`, or `text` for the gateway to embed (or both). */
export interface VectorRecordInput {
  readonly id: string;
  readonly vector?: readonly number[];
  /** Stored with the record and returned with it; embedded when `vector` is absent. */
  readonly text?: string;
  readonly metadata?: VectorMetadata;
}

/** A stored record, as `get` returns it. */
export interface VectorRecord {
  readonly id: string;
  readonly vector: number[];
  readonly text: string | undefined;
  readonly metadata: VectorMetadata;
}

/** One result of a query. */
export interface VectorMatch {
  readonly id: string;
  /** Higher is more similar, whatever the distance. */
  readonly score: number;
  /** Empty unless the query set `includeVectors`. */
  readonly vector: number[];
  /** Empty when the query set `includeMetadata: false`. */
  readonly metadata: VectorMetadata;
  readonly text: string | undefined;
}

/** A query: exactly one of `vector` and `text`. */
export interface VectorQuery {
  readonly vector?: readonly number[];
  /** Embedded with the collection's embedding model. */
  readonly text?: string;
  /** How many matches at most; default 10. */
  readonly topK?: number;
  readonly filter?: FilterInit;
  /** Only matches scoring at least this. */
  readonly minScore?: number;
  /** Return each match's vector (default false). */
  readonly includeVectors?: boolean;
  /** Return each match's metadata and text (default true). */
  readonly includeMetadata?: boolean;
}

/** A value a metadata field is compared with. */
export type FilterScalar = string | number | boolean;

function filterValue(value: FilterScalar): MessageInitShape<typeof FilterValueSchema> {
  switch (typeof value) {
    case "string":
      return { kind: { case: "stringValue", value } };
    case "number":
      return { kind: { case: "numberValue", value } };
    case "boolean":
      return { kind: { case: "boolValue", value } };
  }
  throw new TypeError(`a filter value is a string, a number or a boolean, not ${typeof value}`);
}

/**
 * Filter builders. Fields are metadata keys; a dotted path such as `author.name` reaches
 * into nested objects.
 *
 *     where.all(where.eq("lang", "en"), where.range("year", { gte: 2020 }))
 */
export const where = {
  /** `field == value` (numbers compare as numbers: 1 equals 1.0). */
  eq(field: string, value: FilterScalar): FilterInit {
    return { clause: { case: "equals", value: { field, value: filterValue(value) } } };
  },
  /** `field` equals one of `values`. */
  in(field: string, values: readonly FilterScalar[]): FilterInit {
    return { clause: { case: "in", value: { field, values: values.map(filterValue) } } };
  },
  /** `field` is a number within the bounds given (at least one). */
  range(field: string, bounds: { gt?: number; gte?: number; lt?: number; lte?: number }): FilterInit {
    return { clause: { case: "range", value: { field, ...bounds } } };
  },
  /** Every filter matches. */
  all(...filters: FilterInit[]): FilterInit {
    return { clause: { case: "all", value: { filters } } };
  },
  /** At least one filter matches. */
  any(...filters: FilterInit[]): FilterInit {
    return { clause: { case: "any", value: { filters } } };
  },
  /** The filter does not match. */
  not(filter: FilterInit): FilterInit {
    return { clause: { case: "negate", value: filter } };
  },
} as const;

type Unary = <T>(options: CallOptions, call: (options: ConnectCallOptions) => Promise<T>) => Promise<T>;

/** The vector store calls of a `PorticoClient`; reach them as `client.vectors`. */
export class Vectors {
  /** @internal Made by `PorticoClient`. */
  constructor(
    /** The generated client, for anything the wrapper does not cover. */
    readonly raw: Client<typeof VectorService>,
    private readonly unary: Unary,
  ) {}

  /** Creates a collection; ALREADY_EXISTS when the name is taken. */
  async createCollection(collection: CollectionInit, options: CallOptions = {}): Promise<Collection> {
    return this.unary(options, (call) => this.raw.createCollection({ collection }, call));
  }

  /** Gets a collection by name; NOT_FOUND when there is none. */
  async getCollection(name: string, options: CallOptions = {}): Promise<Collection> {
    return this.unary(options, (call) => this.raw.getCollection({ name }, call));
  }

  /** Every collection, by name: it follows the gateway's pages; `options` apply to each page's call. */
  async listCollections(options: CallOptions = {}): Promise<Collection[]> {
    const all: Collection[] = [];
    let pageToken = "";
    do {
      const page = await this.unary(options, (call) => this.raw.listCollections({ pageToken }, call));
      all.push(...page.collections);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return all;
  }

  /** Deletes a collection and every record in it. */
  async deleteCollection(name: string, options: CallOptions = {}): Promise<void> {
    await this.unary(options, (call) => this.raw.deleteCollection({ name }, call));
  }

  /** Inserts records, replacing any with the same id; records without a vector are embedded from their text. */
  async upsert(
    collection: string,
    records: readonly VectorRecordInput[],
    options: CallOptions = {},
  ): Promise<UpsertResponse> {
    const init = records.map((r) => ({
      id: r.id,
      vector: r.vector === undefined ? [] : [...r.vector],
      text: r.text,
      metadataJson: r.metadata === undefined ? "" : JSON.stringify(r.metadata),
    }));
    return this.unary(options, (call) => this.raw.upsert({ collection, records: init }, call));
  }

  /** Upserts texts for the gateway to embed, keyed by record id. */
  async upsertTexts(
    collection: string,
    texts: Readonly<{ [id: string]: string }>,
    options: CallOptions = {},
  ): Promise<UpsertResponse> {
    return this.upsert(collection, Object.entries(texts).map(([id, text]) => ({ id, text })), options);
  }

  /** The records most similar to `query.vector` or `query.text`, best first. */
  async query(collection: string, query: VectorQuery, options: CallOptions = {}): Promise<VectorMatch[]> {
    const response = await this.unary(options, (call) =>
      this.raw.query(
        {
          collection,
          vector: query.vector === undefined ? [] : [...query.vector],
          text: query.text ?? "",
          topK: query.topK ?? 0,
          filter: query.filter,
          minScore: query.minScore,
          includeVectors: query.includeVectors ?? false,
          includeMetadata: query.includeMetadata,
        },
        call,
      ),
    );
    return response.matches.map((m) => ({
      id: m.id,
      score: m.score,
      vector: m.vector,
      metadata: parseMetadata(m.metadataJson),
      text: m.text,
    }));
  }

  /** The records with these ids, in the order asked; ids not found are left out. */
  async get(collection: string, ids: readonly string[], options: CallOptions = {}): Promise<VectorRecord[]> {
    const response = await this.unary(options, (call) => this.raw.get({ collection, ids: [...ids] }, call));
    return response.records.map(recordOf);
  }

  /** Deletes the records with these ids (ids not found are ignored); resolves to how many it deleted. */
  async delete(collection: string, ids: readonly string[], options: CallOptions = {}): Promise<number> {
    const response = await this.unary(options, (call) => this.raw.delete({ collection, ids: [...ids] }, call));
    return Number(response.deletedCount);
  }

  /** Deletes every record the filter matches; resolves to how many. */
  async deleteWhere(collection: string, filter: FilterInit, options: CallOptions = {}): Promise<number> {
    const response = await this.unary(options, (call) => this.raw.delete({ collection, filter }, call));
    return Number(response.deletedCount);
  }

  /** Counts the records of a collection, or those the filter matches. */
  async count(collection: string, filter?: FilterInit, options: CallOptions = {}): Promise<number> {
    const response = await this.unary(options, (call) => this.raw.count({ collection, filter }, call));
    return Number(response.count);
  }
}

function parseMetadata(text: string): VectorMetadata {
  return text === "" ? {} : (JSON.parse(text) as VectorMetadata);
}

function recordOf(r: RecordMessage): VectorRecord {
  return { id: r.id, vector: r.vector, text: r.text, metadata: parseMetadata(r.metadataJson) };
}
