// Package portico is the Go client of the Portico LLM gateway.
//
// It wraps the generated LLMService client (package
// portico.dev/clients/go/gen/portico/v1) and adds only what every caller would
// otherwise write again: the connection (plaintext, TLS with a CA file, mutual TLS),
// the caller key and other metadata sent with every call, a default deadline, retries
// of what the gateway marks safe to repeat, a chat stream read with a Recv loop or a
// range-over-func iterator, the gateway's attempt trace, errors that carry its decoded
// google.rpc details, tool schemas reflected from Go structs (ToolFor) and pointers for
// optional request fields (Float, Int, ...).
//
//	client, err := portico.Dial("127.0.0.1:50051", portico.WithDefaultTimeout(30*time.Second))
//	if err != nil { ... }
//	defer client.Close()
//	resp, err := client.Chat(ctx, &porticov1.ChatRequest{
//		Model:    "fake-chat",
//		Messages: []*porticov1.Message{portico.UserMessage("Hello")},
//	})
//	var perr *portico.Error
//	if errors.As(err, &perr) && perr.Code == codes.InvalidArgument {
//		for _, v := range perr.FieldViolations { fmt.Println(v.Field, v.Description) }
//	}
//
// Nothing in this package edits or copies generated code: requests and responses are
// the generated message types.
package portico
