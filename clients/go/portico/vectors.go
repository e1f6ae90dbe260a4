package portico

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
)

// Vectors is the gateway's vector store (portico.v1.VectorService): collections of
// vectors with JSON metadata, searched by similarity. It shares its Client's
// connection, caller key, default deadline, retries and error decoding; get it with
// Client.Vectors.
//
//	vs := client.Vectors()
//	_, err := vs.CreateCollection(ctx, &porticov1.Collection{Name: "docs", Dimensions: 384, Distance: porticov1.Distance_DISTANCE_COSINE})
//	_, err = vs.Upsert(ctx, "docs", portico.TextRecord("a", "Paris is in France", map[string]any{"lang": "en"}))
//	matches, err := vs.Query(ctx, "docs", portico.VectorQuery{Text: "capital of France", Filter: portico.Eq("lang", "en")})
type Vectors struct {
	client *Client
}

// Vectors returns the vector store calls of this client.
func (c *Client) Vectors() *Vectors { return &Vectors{client: c} }

// Service returns the generated VectorService client, for calls made without this
// package's defaults and error decoding.
func (v *Vectors) Service() porticov1.VectorServiceClient { return v.client.vectors }

// Record is one stored item. On upsert, a record without a Vector is embedded by the
// gateway from its Text, with the collection's embedding model.
type Record struct {
	ID     string
	Vector []float32
	// Text is stored with the record and returned with it; nil for none.
	Text *string
	// Metadata is stored as a JSON object; filters match its keys. In answers it holds
	// what encoding/json decodes: numbers are float64.
	Metadata map[string]any
}

// TextRecord is a record the gateway embeds from text.
func TextRecord(id, text string, metadata map[string]any) Record {
	return Record{ID: id, Text: &text, Metadata: metadata}
}

// VectorRecord is a record with its own vector.
func VectorRecord(id string, vector []float32, metadata map[string]any) Record {
	return Record{ID: id, Vector: vector, Metadata: metadata}
}

// Match is one result of a query.
type Match struct {
	ID    string
	Score float64 // higher is more similar, whatever the distance
	// Vector is set when the query asked for vectors.
	Vector []float32
	// Metadata and Text are empty when the query omitted metadata.
	Metadata map[string]any
	Text     *string
}

// VectorQuery asks for the records most similar to a vector or a text: set exactly one
// of Vector and Text.
type VectorQuery struct {
	Vector []float32
	Text   string
	// TopK is how many matches at most; 0 means the gateway's default (10).
	TopK int32
	// Filter keeps only records whose metadata matches (see Eq, In, Range, All, Any, Not).
	Filter *porticov1.Filter
	// MinScore keeps only matches scoring at least this; nil for no minimum.
	MinScore *float64
	// IncludeVectors returns each match's vector.
	IncludeVectors bool
	// OmitMetadata leaves out each match's metadata and text.
	OmitMetadata bool
}

// CreateCollection creates a collection; ALREADY_EXISTS when the name is taken.
func (v *Vectors) CreateCollection(ctx context.Context, collection *porticov1.Collection, opts ...grpc.CallOption) (*porticov1.Collection, error) {
	return vectorCall(ctx, v, opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.Collection, error) {
		return v.client.vectors.CreateCollection(ctx, &porticov1.CreateCollectionRequest{Collection: collection}, opts...)
	})
}

// GetCollection gets a collection by name; NOT_FOUND when there is none.
func (v *Vectors) GetCollection(ctx context.Context, name string, opts ...grpc.CallOption) (*porticov1.Collection, error) {
	return vectorCall(ctx, v, opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.Collection, error) {
		return v.client.vectors.GetCollection(ctx, &porticov1.GetCollectionRequest{Name: name}, opts...)
	})
}

// ListCollections lists every collection by name, following the gateway's pages; the
// call's deadline covers them all.
func (v *Vectors) ListCollections(ctx context.Context, opts ...grpc.CallOption) ([]*porticov1.Collection, error) {
	ctx, cancel := v.client.callContext(ctx)
	defer cancel()
	var all []*porticov1.Collection
	req := &porticov1.ListCollectionsRequest{}
	for {
		page, err := retryUnary(ctx, v.client.settings.retryPolicy(), opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.ListCollectionsResponse, error) {
			return v.client.vectors.ListCollections(ctx, req, opts...)
		})
		if err != nil {
			return nil, err
		}
		all = append(all, page.GetCollections()...)
		if page.GetNextPageToken() == "" {
			return all, nil
		}
		req = &porticov1.ListCollectionsRequest{PageToken: page.GetNextPageToken()}
	}
}

// DeleteCollection deletes a collection and every record in it.
func (v *Vectors) DeleteCollection(ctx context.Context, name string, opts ...grpc.CallOption) error {
	_, err := vectorCall(ctx, v, opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.DeleteCollectionResponse, error) {
		return v.client.vectors.DeleteCollection(ctx, &porticov1.DeleteCollectionRequest{Name: name}, opts...)
	})
	return err
}

// Upsert inserts records, replacing any with the same id. A record's metadata that
// encoding/json cannot encode fails here, before any call.
func (v *Vectors) Upsert(ctx context.Context, collection string, records []Record, opts ...grpc.CallOption) (*porticov1.UpsertResponse, error) {
	req := &porticov1.UpsertRequest{Collection: collection, Records: make([]*porticov1.Record, 0, len(records))}
	for i, r := range records {
		meta, err := metadataJSON(r.Metadata)
		if err != nil {
			return nil, fmt.Errorf("portico: records[%d].metadata: %w", i, err)
		}
		req.Records = append(req.Records, &porticov1.Record{Id: r.ID, Vector: r.Vector, Text: r.Text, MetadataJson: meta})
	}
	return vectorCall(ctx, v, opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.UpsertResponse, error) {
		return v.client.vectors.Upsert(ctx, req, opts...)
	})
}

// UpsertTexts upserts texts for the gateway to embed, keyed by id, without metadata.
func (v *Vectors) UpsertTexts(ctx context.Context, collection string, texts map[string]string, opts ...grpc.CallOption) (*porticov1.UpsertResponse, error) {
	records := make([]Record, 0, len(texts))
	for id, text := range texts {
		records = append(records, TextRecord(id, text, nil))
	}
	return v.Upsert(ctx, collection, records, opts...)
}

// Query returns the records most similar to q.Vector or q.Text, best first.
func (v *Vectors) Query(ctx context.Context, collection string, q VectorQuery, opts ...grpc.CallOption) ([]Match, error) {
	req := &porticov1.QueryRequest{
		Collection:     collection,
		Vector:         q.Vector,
		Text:           q.Text,
		TopK:           q.TopK,
		Filter:         q.Filter,
		MinScore:       q.MinScore,
		IncludeVectors: q.IncludeVectors,
	}
	if q.OmitMetadata {
		req.IncludeMetadata = Bool(false)
	}
	resp, err := vectorCall(ctx, v, opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.QueryResponse, error) {
		return v.client.vectors.Query(ctx, req, opts...)
	})
	if err != nil {
		return nil, err
	}
	matches := make([]Match, 0, len(resp.GetMatches()))
	for _, m := range resp.GetMatches() {
		meta, err := decodeMetadata(m.GetMetadataJson())
		if err != nil {
			return nil, fmt.Errorf("portico: the metadata of match %q: %w", m.GetId(), err)
		}
		matches = append(matches, Match{ID: m.GetId(), Score: m.GetScore(), Vector: m.GetVector(), Metadata: meta, Text: m.Text})
	}
	return matches, nil
}

// Get returns the records with these ids, in the order asked; ids not found are left out.
func (v *Vectors) Get(ctx context.Context, collection string, ids []string, opts ...grpc.CallOption) ([]Record, error) {
	resp, err := vectorCall(ctx, v, opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.GetResponse, error) {
		return v.client.vectors.Get(ctx, &porticov1.GetRequest{Collection: collection, Ids: ids}, opts...)
	})
	if err != nil {
		return nil, err
	}
	records := make([]Record, 0, len(resp.GetRecords()))
	for _, r := range resp.GetRecords() {
		meta, err := decodeMetadata(r.GetMetadataJson())
		if err != nil {
			return nil, fmt.Errorf("portico: the metadata of record %q: %w", r.GetId(), err)
		}
		records = append(records, Record{ID: r.GetId(), Vector: r.GetVector(), Text: r.Text, Metadata: meta})
	}
	return records, nil
}

// Delete deletes the records with these ids (ids not found are ignored) and returns
// how many it deleted.
func (v *Vectors) Delete(ctx context.Context, collection string, ids []string, opts ...grpc.CallOption) (int64, error) {
	return v.delete(ctx, &porticov1.DeleteRequest{Collection: collection, Ids: ids}, opts)
}

// DeleteWhere deletes every record the filter matches and returns how many.
func (v *Vectors) DeleteWhere(ctx context.Context, collection string, filter *porticov1.Filter, opts ...grpc.CallOption) (int64, error) {
	return v.delete(ctx, &porticov1.DeleteRequest{Collection: collection, Filter: filter}, opts)
}

func (v *Vectors) delete(ctx context.Context, req *porticov1.DeleteRequest, opts []grpc.CallOption) (int64, error) {
	resp, err := vectorCall(ctx, v, opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.DeleteResponse, error) {
		return v.client.vectors.Delete(ctx, req, opts...)
	})
	if err != nil {
		return 0, err
	}
	return resp.GetDeletedCount(), nil
}

// Count counts the records of a collection, or those filter matches (nil: all).
func (v *Vectors) Count(ctx context.Context, collection string, filter *porticov1.Filter, opts ...grpc.CallOption) (int64, error) {
	resp, err := vectorCall(ctx, v, opts, func(ctx context.Context, opts []grpc.CallOption) (*porticov1.CountResponse, error) {
		return v.client.vectors.Count(ctx, &porticov1.CountRequest{Collection: collection, Filter: filter}, opts...)
	})
	if err != nil {
		return 0, err
	}
	return resp.GetCount(), nil
}

// vectorCall makes one call with the client's metadata, deadline and retries; every
// VectorService method is safe to send again (an upsert replaces whole records).
func vectorCall[T any](ctx context.Context, v *Vectors, opts []grpc.CallOption, call func(context.Context, []grpc.CallOption) (T, error)) (T, error) {
	ctx, cancel := v.client.callContext(ctx)
	defer cancel()
	return retryUnary(ctx, v.client.settings.retryPolicy(), opts, call)
}

func metadataJSON(metadata map[string]any) (string, error) {
	if len(metadata) == 0 {
		return "", nil
	}
	text, err := json.Marshal(metadata)
	return string(text), err
}

func decodeMetadata(text string) (map[string]any, error) {
	if text == "" {
		return nil, nil
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(text), &meta); err != nil {
		return nil, err
	}
	return meta, nil
}

// FilterScalar is a value a metadata field can be compared with.
type FilterScalar interface {
	string | bool | int | int32 | int64 | float32 | float64
}

// Eq matches records whose field (a metadata key, or a dotted path into nested
// objects) equals value. Numbers compare as numbers: 1 equals 1.0.
func Eq[T FilterScalar](field string, value T) *porticov1.Filter {
	return &porticov1.Filter{Clause: &porticov1.Filter_Equals{Equals: &porticov1.FieldEquals{Field: field, Value: filterValue(value)}}}
}

// In matches records whose field equals one of values.
func In[T FilterScalar](field string, values ...T) *porticov1.Filter {
	in := &porticov1.FieldIn{Field: field}
	for _, value := range values {
		in.Values = append(in.Values, filterValue(value))
	}
	return &porticov1.Filter{Clause: &porticov1.Filter_In{In: in}}
}

// Bounds are the ends of a numeric Range; nil ends are open. Use Float for each.
type Bounds struct {
	Gt, Gte, Lt, Lte *float64
}

// Range matches records whose field is a number within bounds.
func Range(field string, b Bounds) *porticov1.Filter {
	return &porticov1.Filter{Clause: &porticov1.Filter_Range{Range: &porticov1.FieldRange{Field: field, Gt: b.Gt, Gte: b.Gte, Lt: b.Lt, Lte: b.Lte}}}
}

// All matches records every filter matches.
func All(filters ...*porticov1.Filter) *porticov1.Filter {
	return &porticov1.Filter{Clause: &porticov1.Filter_All{All: &porticov1.FilterList{Filters: filters}}}
}

// Any matches records at least one filter matches.
func Any(filters ...*porticov1.Filter) *porticov1.Filter {
	return &porticov1.Filter{Clause: &porticov1.Filter_Any{Any: &porticov1.FilterList{Filters: filters}}}
}

// Not matches records the filter does not match.
func Not(filter *porticov1.Filter) *porticov1.Filter {
	return &porticov1.Filter{Clause: &porticov1.Filter_Negate{Negate: filter}}
}

func filterValue[T FilterScalar](value T) *porticov1.FilterValue {
	var number float64
	switch v := any(value).(type) {
	case string:
		return &porticov1.FilterValue{Kind: &porticov1.FilterValue_StringValue{StringValue: v}}
	case bool:
		return &porticov1.FilterValue{Kind: &porticov1.FilterValue_BoolValue{BoolValue: v}}
	case int:
		number = float64(v)
	case int32:
		number = float64(v)
	case int64:
		number = float64(v)
	case float32:
		number = float64(v)
	case float64:
		number = v
	}
	return &porticov1.FilterValue{Kind: &porticov1.FilterValue_NumberValue{NumberValue: number}}
}
