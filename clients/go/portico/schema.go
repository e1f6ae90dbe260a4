package portico

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/invopop/jsonschema"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
)

// ToolFor returns a tool definition whose parameters are the JSON Schema of the struct
// type T, the type the model's arguments decode into:
//
//	type WeatherArgs struct {
//		City  string `json:"city" jsonschema:"description=The city\\, e.g. Paris"`
//		Units string `json:"units,omitempty" jsonschema:"enum=celsius,enum=fahrenheit"`
//	}
//	tool, err := portico.ToolFor[WeatherArgs]("get_weather", "The weather in a city.")
//	...
//	var args WeatherArgs
//	err = json.Unmarshal([]byte(call.GetArguments()), &args)
//
// The schema comes from github.com/invopop/jsonschema: property names and optionality
// from the json tags (a field without omitempty or omitzero is required), everything
// else (description, enum, minimum, ...) from jsonschema tags, properties in field
// order, nested structs inline and additionalProperties false.
func ToolFor[T any](name, description string) (*porticov1.ToolDefinition, error) {
	schema, err := SchemaFor[T]()
	if err != nil {
		return nil, fmt.Errorf("portico: tool %q: %w", name, err)
	}
	return &porticov1.ToolDefinition{Name: name, Description: description, ParametersJsonSchema: schema}, nil
}

// SchemaFor returns the JSON Schema of the struct type T (or pointer to one) as JSON
// text, in the form ToolFor puts in a tool definition.
func SchemaFor[T any]() (string, error) {
	t := reflect.TypeFor[T]()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return "", fmt.Errorf("parameters schema: %s is not a struct, and tool arguments are a JSON object", t)
	}
	reflector := jsonschema.Reflector{
		// One self-contained object: providers differ in how they follow $ref and $id.
		Anonymous:      true,
		DoNotReference: true,
		ExpandedStruct: true,
	}
	schema := reflector.ReflectFromType(t)
	schema.Version = "" // "$schema" is noise to a model, and some providers refuse it
	text, err := json.Marshal(schema)
	if err != nil {
		return "", fmt.Errorf("parameters schema of %s: %w", t, err)
	}
	return string(text), nil
}
