package portico_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
	"portico.dev/clients/go/portico"
)

type weatherArgs struct {
	City  string   `json:"city" jsonschema:"description=The city\\, e.g. Paris"`
	Units string   `json:"units,omitempty" jsonschema:"enum=celsius,enum=fahrenheit"`
	Days  int      `json:"days,omitempty" jsonschema:"minimum=1,maximum=7"`
	Where *address `json:"where,omitempty"`
}

type address struct {
	Country string `json:"country"`
}

func TestToolForReflectsTheStructIntoOneSelfContainedSchema(t *testing.T) {
	tool, err := portico.ToolFor[weatherArgs]("get_weather", "The weather in a city.")
	if err != nil {
		t.Fatal(err)
	}
	text := tool.GetParametersJsonSchema()
	for _, absent := range []string{`"$schema"`, `"$ref"`, `"$defs"`, `"$id"`} {
		if strings.Contains(text, absent) {
			t.Errorf("schema has %s: %s", absent, text)
		}
	}
	// Properties keep the struct's field order: models read them in that order.
	if i, j := strings.Index(text, `"city"`), strings.Index(text, `"units"`); i < 0 || j < i {
		t.Errorf("city does not come before units: %s", text)
	}
	var schema struct {
		Type       string `json:"type"`
		Required   []string
		Additional *bool `json:"additionalProperties"`
		Properties map[string]struct {
			Type        string   `json:"type"`
			Description string   `json:"description"`
			Enum        []string `json:"enum"`
			Minimum     *float64 `json:"minimum"`
			Properties  map[string]json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(text), &schema); err != nil {
		t.Fatalf("%v: %s", err, text)
	}
	if schema.Type != "object" || !reflect.DeepEqual(schema.Required, []string{"city"}) || schema.Additional == nil || *schema.Additional {
		t.Errorf("schema = %s, want an object requiring only city, with no other properties", text)
	}
	p := schema.Properties
	if p["city"].Type != "string" || p["city"].Description != "The city, e.g. Paris" ||
		!reflect.DeepEqual(p["units"].Enum, []string{"celsius", "fahrenheit"}) ||
		p["days"].Type != "integer" || p["days"].Minimum == nil || *p["days"].Minimum != 1 ||
		p["where"].Type != "object" || p["where"].Properties["country"] == nil {
		t.Errorf("properties = %s", text)
	}

	if _, err := portico.ToolFor[[]string]("list", "not an object"); err == nil || !strings.Contains(err.Error(), "not a struct") {
		t.Errorf("ToolFor[[]string] error = %v, want one saying it is not a struct", err)
	}
}

func TestAToolFromAStructIsCalledAndItsArgumentsDecodeIntoIt(t *testing.T) {
	client := newClient(t)
	tool, err := portico.ToolFor[weatherArgs]("get_weather", "The weather in a city.")
	if err != nil {
		t.Fatal(err)
	}
	req := chatRequest("fake", "What is the weather in Paris?")
	req.Tools = []*porticov1.ToolDefinition{tool}
	req.Temperature, req.MaxTokens = portico.Float(0.2), portico.Int(64)
	resp, err := client.Chat(callContext(t), req)
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	calls := resp.GetToolCalls()
	if len(calls) != 1 {
		t.Fatalf("tool calls = %v, want one", calls)
	}
	var args weatherArgs
	if err := json.Unmarshal([]byte(calls[0].GetArguments()), &args); err != nil || args.City != "Paris" {
		t.Errorf("arguments %s decode to %+v (%v), want city Paris", calls[0].GetArguments(), args, err)
	}
}

func TestOptionalFieldHelpersSetTheFields(t *testing.T) {
	req := &porticov1.ChatRequest{Temperature: portico.Float(0), TopP: portico.Float(0.9), MaxTokens: portico.Int(256), Seed: portico.Int64(7)}
	// Zero is a value, distinct from unset: that is what the pointers are for.
	if req.Temperature == nil || req.GetTemperature() != 0 || req.GetTopP() != 0.9 || req.GetMaxTokens() != 256 || req.GetSeed() != 7 {
		t.Errorf("request = %v", req)
	}
	if *portico.String("x") != "x" || !*portico.Bool(true) {
		t.Error("String / Bool do not point at their value")
	}
}
