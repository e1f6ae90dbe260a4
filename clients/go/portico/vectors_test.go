package portico_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
	"portico.dev/clients/go/portico"
)

// The package's gateway runs with no vectors section, so it serves its default vector
// store, and the fake provider (16 dimensions) embeds text: the same text always gets
// the same vector, so a query with a stored text finds that record with score 1.
func TestVectorsCreateUpsertTextQueryDelete(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := portico.Dial(gatewayAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	vs := client.Vectors()
	// Unique per run: the default store may outlive the gateway.
	name := fmt.Sprintf("go-test-%d", os.Getpid())

	created, err := vs.CreateCollection(ctx, &porticov1.Collection{
		Name: name, Dimensions: 16, Distance: porticov1.Distance_DISTANCE_COSINE, EmbeddingProvider: "fake",
	})
	if err != nil {
		t.Fatalf("CreateCollection: %v", err)
	}
	defer func() { _ = vs.DeleteCollection(context.Background(), name) }()
	if created.GetName() != name || created.GetDimensions() != 16 {
		t.Fatalf("created %v", created)
	}

	_, err = vs.CreateCollection(ctx, &porticov1.Collection{Name: name, Dimensions: 16, Distance: porticov1.Distance_DISTANCE_COSINE})
	if perr, ok := portico.AsError(err); !ok || perr.Code != codes.AlreadyExists {
		t.Fatalf("creating it again: want ALREADY_EXISTS, got %v", err)
	}

	upserted, err := vs.Upsert(ctx, name, []portico.Record{
		portico.TextRecord("paris", "Paris is the capital of France", map[string]any{"lang": "en", "year": 2024}),
		portico.TextRecord("berlin", "Berlin is the capital of Germany", map[string]any{"lang": "en", "year": 2019}),
		portico.TextRecord("rom", "Rom ist die Hauptstadt Italiens", map[string]any{"lang": "de", "year": 2024}),
	})
	if err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	if upserted.GetUpsertedCount() != 3 || upserted.GetEmbeddedCount() != 3 {
		t.Fatalf("upserted %v, want 3 records all embedded", upserted)
	}

	matches, err := vs.Query(ctx, name, portico.VectorQuery{Text: "Paris is the capital of France", TopK: 2})
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if len(matches) != 2 || matches[0].ID != "paris" || math.Abs(matches[0].Score-1) > 1e-5 {
		t.Fatalf("matches %+v: want paris first with score 1, then one more", matches)
	}
	if matches[0].Text == nil || *matches[0].Text != "Paris is the capital of France" || matches[0].Metadata["lang"] != "en" {
		t.Fatalf("the best match lost its text or metadata: %+v", matches[0])
	}

	filtered, err := vs.Query(ctx, name, portico.VectorQuery{
		Text:   "Paris is the capital of France",
		Filter: portico.All(portico.Eq("lang", "en"), portico.Range("year", portico.Bounds{Lt: portico.Float(2020)})),
	})
	if err != nil {
		t.Fatalf("Query with a filter: %v", err)
	}
	if len(filtered) != 1 || filtered[0].ID != "berlin" {
		t.Fatalf("filtered matches %+v: want berlin alone", filtered)
	}

	_, err = vs.Query(ctx, name, portico.VectorQuery{Vector: []float32{1, 2, 3}})
	perr, ok := portico.AsError(err)
	if !ok || perr.Code != codes.InvalidArgument {
		t.Fatalf("a 3-dimensional query vector: want INVALID_ARGUMENT, got %v", err)
	}
	if _, named := perr.FieldViolation("vector"); !named {
		t.Fatalf("the error names no field \"vector\": %+v", perr.FieldViolations)
	}

	deleted, err := vs.Delete(ctx, name, []string{"paris", "nobody"})
	if err != nil || deleted != 1 {
		t.Fatalf("Delete: %d, %v; want 1 deleted", deleted, err)
	}
	deleted, err = vs.DeleteWhere(ctx, name, portico.Eq("lang", "de"))
	if err != nil || deleted != 1 {
		t.Fatalf("DeleteWhere: %d, %v; want 1 deleted", deleted, err)
	}
	left, err := vs.Get(ctx, name, []string{"paris", "berlin", "rom"})
	if err != nil || len(left) != 1 || left[0].ID != "berlin" || len(left[0].Vector) != 16 {
		t.Fatalf("Get after deleting: %+v, %v; want berlin alone, with its vector", left, err)
	}
	if n, err := vs.Count(ctx, name, nil); err != nil || n != 1 {
		t.Fatalf("Count: %d, %v; want 1", n, err)
	}

	if err := vs.DeleteCollection(ctx, name); err != nil {
		t.Fatalf("DeleteCollection: %v", err)
	}
	_, err = vs.GetCollection(ctx, name)
	if perr, ok := portico.AsError(err); !ok || perr.Code != codes.NotFound {
		t.Fatalf("GetCollection after deleting it: want NOT_FOUND, got %v", err)
	}
}

func TestVectorsUpsertRefusesMetadataJSONCannotEncode(t *testing.T) {
	client, err := portico.Dial(gatewayAddress)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, err = client.Vectors().Upsert(context.Background(), "any", []portico.Record{
		portico.TextRecord("a", "fine", nil),
		portico.TextRecord("b", "not fine", map[string]any{"when": make(chan int)}),
	})
	if err == nil || !strings.Contains(err.Error(), "records[1].metadata") {
		t.Fatalf("want an error naming records[1].metadata, got %v", err)
	}
	if _, isCallError := portico.AsError(err); isCallError {
		t.Fatalf("the gateway was called: %v", err)
	}
}
