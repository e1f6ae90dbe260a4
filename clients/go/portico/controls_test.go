package portico_test

import (
	"testing"
	"time"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
	"portico.dev/clients/go/portico"
)

// A gateway whose fake provider reports, in the answer's metadata, the reasoning
// controls, cache breakpoints and media types that reached it.
const controlsConfig = `
server: {health_probe_interval: 0, shutdown_grace: 1}
providers:
  - {name: controls, kind: fake, models: [fake-chat], options: {report_controls: true}}
`

func TestReasoningCacheAndDocumentHelpersReachTheProvider(t *testing.T) {
	gw, err := startGateway(controlsConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.stop() })
	client, err := portico.Dial(gw.address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })

	tool, err := portico.Tool("lookup", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	request := &porticov1.ChatRequest{
		Model: "fake-chat",
		Messages: []*porticov1.Message{
			portico.Cache(portico.SystemMessage("Long shared rules."), time.Hour),
			portico.UserParts(
				portico.Cache(portico.DocumentPart([]byte("%PDF-1.7 tiny"), ""), 0),
				portico.TextPart("Summarise it."),
			),
		},
		Tools:     []*porticov1.ToolDefinition{portico.Cache(tool, 5*time.Minute)},
		Reasoning: portico.Reasoning(porticov1.ReasoningEffort_REASONING_EFFORT_HIGH, 4096),
	}
	resp, err := client.Chat(callContext(t), request)
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	want := map[string]string{
		"received_reasoning": "effort=high budget=4096",
		"received_cache":     "messages[0]=3600 messages[1].parts[0]=default tools[0]=300",
		"received_media":     "messages[1].parts[0]=application/pdf",
	}
	for key, value := range want {
		if got := resp.GetMetadata()[key]; got != value {
			t.Errorf("metadata[%s] = %q, want %q", key, got, value)
		}
	}

	// An effort alone, and no budget: the budget stays unset.
	request.Reasoning = portico.Reasoning(porticov1.ReasoningEffort_REASONING_EFFORT_LOW, 0)
	if resp, err = client.Chat(callContext(t), request); err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if got := resp.GetMetadata()["received_reasoning"]; got != "effort=low budget=0" {
		t.Errorf("metadata[received_reasoning] = %q, want effort=low budget=0", got)
	}
}
