package portico

import (
	"bytes"
	"encoding/json"
	"fmt"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
)

// SystemMessage returns a system message: instructions for the model.
func SystemMessage(text string) *porticov1.Message {
	return &porticov1.Message{Role: porticov1.Role_ROLE_SYSTEM, Content: text}
}

// UserMessage returns a message from the end user.
func UserMessage(text string) *porticov1.Message {
	return &porticov1.Message{Role: porticov1.Role_ROLE_USER, Content: text}
}

// AssistantMessage returns an earlier answer of the model, with the tool calls it made.
func AssistantMessage(text string, calls ...*porticov1.ToolCall) *porticov1.Message {
	return &porticov1.Message{Role: porticov1.Role_ROLE_ASSISTANT, Content: text, ToolCalls: calls}
}

// ToolResultMessage returns the result of the tool call whose id is callID.
func ToolResultMessage(callID, result string) *porticov1.Message {
	return &porticov1.Message{Role: porticov1.Role_ROLE_TOOL, Content: result, ToolCallId: callID}
}

// Tool returns a tool definition whose parameters are the JSON Schema schema: JSON text
// (a string, []byte or json.RawMessage, sent as it is) or a value that encoding/json
// turns into an object. Property order can change what a model generates, and a Go map
// marshals with its keys sorted: pass JSON text or a struct to keep an order.
func Tool(name, description string, schema any) (*porticov1.ToolDefinition, error) {
	text, err := schemaText(schema)
	if err != nil {
		return nil, fmt.Errorf("portico: tool %q: %w", name, err)
	}
	return &porticov1.ToolDefinition{Name: name, Description: description, ParametersJsonSchema: text}, nil
}

func schemaText(schema any) (string, error) {
	var raw []byte
	switch s := schema.(type) {
	case nil:
		return "", nil
	case string:
		raw = []byte(s)
	case []byte:
		raw = s
	case json.RawMessage:
		raw = s
	default:
		encoded, err := json.Marshal(s)
		if err != nil {
			return "", fmt.Errorf("parameters schema: %w", err)
		}
		raw = encoded
	}
	// The gateway refuses anything but a JSON object; say so here, where the caller
	// can still see which value it was.
	var object map[string]json.RawMessage
	if err := json.Unmarshal(raw, &object); err != nil || object == nil {
		return "", fmt.Errorf("parameters schema must be a JSON object, got %.40q", bytes.TrimSpace(raw))
	}
	return string(raw), nil
}
