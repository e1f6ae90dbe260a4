package portico_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"google.golang.org/grpc/codes"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
	"portico.dev/clients/go/portico"
)

// The examples are compiled with the tests (they have no Output, so they do not run):
// the Go client page's snippets (docs/clients/go.md) are copied from here and cannot drift from the API.

func Example() {
	client, err := portico.Dial("127.0.0.1:50051",
		portico.WithDefaultTimeout(30*time.Second),
		portico.WithMetadata("x-team", "search"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ctx := context.Background()
	resp, err := client.Chat(ctx, &porticov1.ChatRequest{
		Model:    "fake-chat",
		Messages: []*porticov1.Message{portico.UserMessage("Hello, Portico")},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetContent())

	// Optional fields are pointers, so that unset differs from zero.
	resp, err = client.Chat(ctx, &porticov1.ChatRequest{
		Model:       "fake-chat",
		Messages:    []*porticov1.Message{portico.UserMessage("Hello again")},
		Temperature: portico.Float(0.2),
		MaxTokens:   portico.Int(256),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetContent())

	// Streaming: a range loop over the chunks (or a Recv loop, see ChatStream.Recv).
	stream, err := client.Stream(ctx, &porticov1.ChatRequest{
		Model:    "fake-chat",
		Messages: []*porticov1.Message{portico.UserMessage("Tell me a story")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	for chunk, err := range stream.Chunks() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(chunk.GetContent())
		if chunk.GetFinal() {
			fmt.Println("\nstop reason:", chunk.GetStopReason())
		}
	}

	vectors, err := client.Embed(ctx, &porticov1.EmbedRequest{
		Model:  "fake-embed",
		Inputs: []string{"first text", "second text"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(vectors.GetEmbeddings()), "vectors")
}

func ExampleError() {
	client, err := portico.Dial("127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	_, err = client.Chat(context.Background(), &porticov1.ChatRequest{
		Model:       "fake-chat",
		Temperature: portico.Float(5), // out of range: the gateway refuses it
		Messages:    []*porticov1.Message{portico.UserMessage("hi")},
	})
	var perr *portico.Error
	switch {
	case errors.As(err, &perr) && perr.Code == codes.InvalidArgument:
		for _, v := range perr.FieldViolations {
			fmt.Printf("bad field %s: %s\n", v.Field, v.Description)
		}
	case errors.As(err, &perr) && perr.Retryable():
		fmt.Printf("%s; try again in %s\n", perr.Reason, perr.RetryAfter)
	case err != nil:
		log.Fatal(err)
	}
}

func ExampleChatStream_Recv() {
	client, err := portico.Dial("127.0.0.1:50051")
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	stream, err := client.Stream(context.Background(), &porticov1.ChatRequest{
		Model:    "fake-chat",
		Messages: []*porticov1.Message{portico.UserMessage("Hello")},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break // the final chunk has been received
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(chunk.GetContent())
	}
}

func ExampleToolFor() {
	client, err := portico.Dial("portico.internal:443",
		portico.WithAPIKey(os.Getenv("PORTICO_API_KEY")),
		portico.WithTLS("/etc/portico/ca.pem"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	type WeatherArgs struct {
		City  string `json:"city" jsonschema:"description=The city\\, e.g. Paris"`
		Units string `json:"units,omitempty" jsonschema:"enum=celsius,enum=fahrenheit"`
	}
	tool, err := portico.ToolFor[WeatherArgs]("get_weather", "The weather in a city.")
	if err != nil {
		log.Fatal(err)
	}
	var trace portico.Trace
	resp, err := client.Chat(context.Background(), &porticov1.ChatRequest{
		Model:    "fake-chat",
		Messages: []*porticov1.Message{portico.UserMessage("What is the weather in Paris?")},
		Tools:    []*porticov1.ToolDefinition{tool},
	}, portico.CaptureTrace(&trace))
	if err != nil {
		log.Fatal(err)
	}
	for _, call := range resp.GetToolCalls() {
		var args WeatherArgs
		if err := json.Unmarshal([]byte(call.GetArguments()), &args); err != nil {
			log.Fatal(err)
		}
		fmt.Println(call.GetName(), args.City)
	}
	fmt.Println("sent", trace.ClientAttempts, "time(s); gateway overhead", trace.Overhead)
}
