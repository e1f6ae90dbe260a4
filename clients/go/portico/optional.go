package portico

// The optional fields of a request (temperature, top_p, max_tokens, seed, dimensions)
// are pointers in the generated Go types, so that "unset" differs from zero. These
// helpers make them one expression:
//
//	req := &porticov1.ChatRequest{Temperature: portico.Float(0.2), MaxTokens: portico.Int(256)}

// Float returns a pointer to v, for an optional double field such as Temperature or TopP.
func Float(v float64) *float64 { return &v }

// Int returns a pointer to v, for an optional int32 field such as MaxTokens or Dimensions.
func Int(v int32) *int32 { return &v }

// Int64 returns a pointer to v, for an optional int64 field such as Seed.
func Int64(v int64) *int64 { return &v }

// String returns a pointer to v, for an optional string field.
func String(v string) *string { return &v }

// Bool returns a pointer to v, for an optional bool field.
func Bool(v bool) *bool { return &v }
