package dev.portico.client;

import com.google.gson.Gson;
import com.google.gson.JsonParseException;
import com.google.gson.reflect.TypeToken;
import dev.portico.v1.Collection;
import dev.portico.v1.CountRequest;
import dev.portico.v1.CreateCollectionRequest;
import dev.portico.v1.DeleteCollectionRequest;
import dev.portico.v1.DeleteRequest;
import dev.portico.v1.Filter;
import dev.portico.v1.GetCollectionRequest;
import dev.portico.v1.GetRequest;
import dev.portico.v1.ListCollectionsRequest;
import dev.portico.v1.ListCollectionsResponse;
import dev.portico.v1.Match;
import dev.portico.v1.QueryRequest;
import dev.portico.v1.Record;
import dev.portico.v1.UpsertRequest;
import dev.portico.v1.UpsertResponse;
import dev.portico.v1.VectorServiceGrpc;
import dev.portico.v1.VectorServiceGrpc.VectorServiceBlockingStub;
import io.grpc.Channel;
import io.grpc.StatusRuntimeException;
import java.lang.reflect.Type;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * The gateway's vector store ({@code portico.v1.VectorService}): collections of vectors with
 * JSON metadata, searched by similarity. Get it with {@link PorticoClient#vectors()}; it shares
 * the client's channel, caller key, deadline and retry policy, and every method throws {@link
 * PorticoException} when the call fails, decoded like the client's own calls.
 *
 * <pre>{@code
 * Vectors vectors = client.vectors();
 * vectors.createCollection(Collection.newBuilder().setName("docs").setDimensions(384)
 *     .setDistance(Distance.DISTANCE_COSINE).build());
 * vectors.upsert("docs", List.of(Vectors.textRecord("a", "Paris is in France", Map.of("lang", "en"))));
 * List<Match> best = vectors.queryText("docs", "capital of France", 5, VectorFilters.eq("lang", "en"));
 * }</pre>
 */
public final class Vectors {
  private static final Gson GSON = new Gson();
  private static final Type METADATA = new TypeToken<Map<String, Object>>() {}.getType();

  private final VectorServiceBlockingStub stub;
  private final String address;
  private final Duration deadline;
  private final RetryPolicy retryPolicy;

  Vectors(Channel channel, String address, Duration deadline, RetryPolicy retryPolicy) {
    this.stub = VectorServiceGrpc.newBlockingStub(channel);
    this.address = address;
    this.deadline = deadline;
    this.retryPolicy = retryPolicy;
  }

  /** Creates a collection; ALREADY_EXISTS when the name is taken. */
  public Collection createCollection(Collection collection) {
    return call(s -> s.createCollection(CreateCollectionRequest.newBuilder().setCollection(collection).build()));
  }

  /** Gets a collection by name; NOT_FOUND when there is none. */
  public Collection getCollection(String name) {
    return call(s -> s.getCollection(GetCollectionRequest.newBuilder().setName(name).build()));
  }

  /** Every collection by name, following the gateway's pages; each page's call gets the deadline. */
  public List<Collection> listCollections() {
    List<Collection> all = new ArrayList<>();
    String token = "";
    do {
      ListCollectionsRequest request = ListCollectionsRequest.newBuilder().setPageToken(token).build();
      ListCollectionsResponse page = call(s -> s.listCollections(request));
      all.addAll(page.getCollectionsList());
      token = page.getNextPageToken();
    } while (!token.isEmpty());
    return all;
  }

  /** Deletes a collection and every record in it. */
  public void deleteCollection(String name) {
    call(s -> s.deleteCollection(DeleteCollectionRequest.newBuilder().setName(name).build()));
  }

  /** Inserts records, replacing any with the same id; records without a vector are embedded from their text. */
  public UpsertResponse upsert(String collection, List<Record> records) {
    UpsertRequest request = UpsertRequest.newBuilder().setCollection(collection).addAllRecords(records).build();
    return call(s -> s.upsert(request));
  }

  /** Upserts texts for the gateway to embed, keyed by record id, without metadata. */
  public UpsertResponse upsertTexts(String collection, Map<String, String> texts) {
    List<Record> records = new ArrayList<>(texts.size());
    texts.forEach((id, text) -> records.add(textRecord(id, text, Map.of())));
    return upsert(collection, records);
  }

  /**
   * The matches of a query built with {@link QueryRequest#newBuilder()}: set its collection and
   * exactly one of vector and text; best first.
   */
  public List<Match> query(QueryRequest request) {
    return call(s -> s.query(request)).getMatchesList();
  }

  /** The {@code topK} records most similar to {@code text}, best first; {@code filter} may be null. */
  public List<Match> queryText(String collection, String text, int topK, Filter filter) {
    QueryRequest.Builder request = QueryRequest.newBuilder().setCollection(collection).setText(text).setTopK(topK);
    if (filter != null) {
      request.setFilter(filter);
    }
    return query(request.build());
  }

  /** The {@code topK} records most similar to {@code vector}, best first; {@code filter} may be null. */
  public List<Match> queryVector(String collection, List<Float> vector, int topK, Filter filter) {
    QueryRequest.Builder request =
        QueryRequest.newBuilder().setCollection(collection).addAllVector(vector).setTopK(topK);
    if (filter != null) {
      request.setFilter(filter);
    }
    return query(request.build());
  }

  /** The records with these ids, in the order asked; ids not found are left out. */
  public List<Record> get(String collection, List<String> ids) {
    GetRequest request = GetRequest.newBuilder().setCollection(collection).addAllIds(ids).build();
    return call(s -> s.get(request)).getRecordsList();
  }

  /** Deletes the records with these ids (ids not found are ignored); returns how many it deleted. */
  public long delete(String collection, List<String> ids) {
    DeleteRequest request = DeleteRequest.newBuilder().setCollection(collection).addAllIds(ids).build();
    return call(s -> s.delete(request)).getDeletedCount();
  }

  /** Deletes every record the filter matches; returns how many. */
  public long deleteWhere(String collection, Filter filter) {
    DeleteRequest request = DeleteRequest.newBuilder().setCollection(collection).setFilter(filter).build();
    return call(s -> s.delete(request)).getDeletedCount();
  }

  /** Counts the records of a collection. */
  public long count(String collection) {
    return call(s -> s.count(CountRequest.newBuilder().setCollection(collection).build())).getCount();
  }

  /** Counts the records the filter matches. */
  public long count(String collection, Filter filter) {
    CountRequest request = CountRequest.newBuilder().setCollection(collection).setFilter(filter).build();
    return call(s -> s.count(request)).getCount();
  }

  /** A record the gateway embeds from {@code text}; {@code metadata} is stored as a JSON object. */
  public static Record textRecord(String id, String text, Map<String, ?> metadata) {
    return Record.newBuilder().setId(id).setText(text).setMetadataJson(metadataJson(metadata)).build();
  }

  /** A record with its own vector; {@code metadata} is stored as a JSON object. */
  public static Record vectorRecord(String id, List<Float> vector, Map<String, ?> metadata) {
    return Record.newBuilder().setId(id).addAllVector(vector).setMetadataJson(metadataJson(metadata)).build();
  }

  /** A match's metadata as a map (JSON numbers become {@code Double}); empty when omitted. */
  public static Map<String, Object> metadata(Match match) {
    return parseMetadata(match.getMetadataJson());
  }

  /** A record's metadata as a map (JSON numbers become {@code Double}). */
  public static Map<String, Object> metadata(Record record) {
    return parseMetadata(record.getMetadataJson());
  }

  private static String metadataJson(Map<String, ?> metadata) {
    return metadata == null || metadata.isEmpty() ? "" : GSON.toJson(metadata);
  }

  private static Map<String, Object> parseMetadata(String json) {
    if (json.isEmpty()) {
      return Map.of();
    }
    try {
      return GSON.fromJson(json, METADATA);
    } catch (JsonParseException error) {
      throw new IllegalStateException("the gateway sent metadata that is not a JSON object: " + json, error);
    }
  }

  // Every VectorService call is safe to send again: an upsert replaces whole records.
  private <T> T call(Function<VectorServiceBlockingStub, T> rpc) {
    Attempts attempts = new Attempts(retryPolicy, deadline);
    while (true) {
      try {
        VectorServiceBlockingStub attemptStub = attempts.remaining()
            .map(left -> stub.withDeadlineAfter(left.toNanos(), TimeUnit.NANOSECONDS))
            .orElse(stub);
        return rpc.apply(attemptStub);
      } catch (StatusRuntimeException error) {
        PorticoException failure = ErrorDecoder.decode(error, address);
        Duration delay = attempts.delayBeforeNext(failure).orElseThrow(() -> failure);
        Attempts.waitBeforeRetry(delay, failure);
      }
    }
  }
}
