package portico_test

import (
	"encoding/json"
	"strings"
	"testing"

	"portico.dev/clients/go/portico"
)

func TestToolKeepsJSONTextAsItIs(t *testing.T) {
	// Property order matters to models; text passes through untouched.
	const schema = `{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"number"}}}`
	for _, value := range []any{schema, []byte(schema), json.RawMessage(schema)} {
		tool, err := portico.Tool("t", "d", value)
		if err != nil {
			t.Fatalf("Tool(%T): %v", value, err)
		}
		if tool.GetParametersJsonSchema() != schema {
			t.Errorf("Tool(%T) schema = %s", value, tool.GetParametersJsonSchema())
		}
	}
}

func TestToolMarshalsAStructInFieldOrder(t *testing.T) {
	type property struct {
		Type string `json:"type"`
	}
	type schema struct {
		Type       string `json:"type"`
		Properties struct {
			Zeta  property `json:"zeta"`
			Alpha property `json:"alpha"`
		} `json:"properties"`
	}
	s := schema{Type: "object"}
	s.Properties.Zeta.Type, s.Properties.Alpha.Type = "string", "number"
	tool, err := portico.Tool("t", "", s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"number"}}}`
	if tool.GetParametersJsonSchema() != want {
		t.Errorf("schema = %s, want %s", tool.GetParametersJsonSchema(), want)
	}
}

func TestToolRefusesASchemaThatIsNotAnObject(t *testing.T) {
	for _, value := range []any{`[1,2]`, `not json`, 42, "null"} {
		if _, err := portico.Tool("bad", "", value); err == nil || !strings.Contains(err.Error(), "JSON object") {
			t.Errorf("Tool(%#v) error = %v, want a JSON-object complaint", value, err)
		}
	}
	if tool, err := portico.Tool("noargs", "", nil); err != nil || tool.GetParametersJsonSchema() != "" {
		t.Errorf("Tool(nil) = %v, %v; want an empty schema (no arguments)", tool, err)
	}
}
