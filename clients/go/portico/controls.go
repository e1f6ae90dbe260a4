package portico

import (
	"fmt"
	"time"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
)

// Reasoning returns reasoning controls for ChatRequest.Reasoning: an effort (UNSPECIFIED
// for none) and a token budget (0 for none). Each provider maps them to its own knob; a
// model without one fails the call with FAILED_PRECONDITION.
func Reasoning(effort porticov1.ReasoningEffort, budgetTokens int32) *porticov1.ReasoningConfig {
	config := &porticov1.ReasoningConfig{Effort: effort}
	if budgetTokens > 0 {
		config.BudgetTokens = &budgetTokens
	}
	return config
}

// Cacheable is what can carry a prompt-cache breakpoint.
type Cacheable interface {
	*porticov1.Message | *porticov1.ContentPart | *porticov1.ToolDefinition
}

// Cache marks a message, part or tool as a prompt-cache breakpoint and returns it: the
// provider may cache the prompt up to and including it (Anthropic cache_control;
// providers that cache on their own ignore it). ttl 0 means the provider's default;
// Anthropic takes 5 and 60 minutes.
func Cache[T Cacheable](item T, ttl time.Duration) T {
	breakpoint := &porticov1.CacheBreakpoint{}
	if ttl > 0 {
		seconds := int32(ttl / time.Second)
		breakpoint.TtlSeconds = &seconds
	}
	switch v := any(item).(type) {
	case *porticov1.Message:
		v.Cache = breakpoint
	case *porticov1.ContentPart:
		v.Cache = breakpoint
	case *porticov1.ToolDefinition:
		v.Cache = breakpoint
	default:
		panic(fmt.Sprintf("portico.Cache: unexpected %T", item))
	}
	return item
}

// TextPart returns a text part.
func TextPart(text string) *porticov1.ContentPart {
	return &porticov1.ContentPart{Part: &porticov1.ContentPart_Text{Text: text}}
}

// DocumentPart returns a document (or image) part with inline bytes. mimeType may be
// empty for PNG, JPEG, GIF, WebP and PDF, which the gateway recognises.
func DocumentPart(data []byte, mimeType string) *porticov1.ContentPart {
	media := &porticov1.Media{MimeType: mimeType, Source: &porticov1.Media_Data{Data: data}}
	return &porticov1.ContentPart{Part: &porticov1.ContentPart_Media{Media: media}}
}

// DocumentURIPart returns a document (or image) part the provider fetches: an http(s),
// gs:// or data: URI.
func DocumentURIPart(uri, mimeType string) *porticov1.ContentPart {
	media := &porticov1.Media{MimeType: mimeType, Source: &porticov1.Media_Uri{Uri: uri}}
	return &porticov1.ContentPart{Part: &porticov1.ContentPart_Media{Media: media}}
}

// UserParts returns a message from the end user made of parts (text, documents, images).
func UserParts(parts ...*porticov1.ContentPart) *porticov1.Message {
	return &porticov1.Message{Role: porticov1.Role_ROLE_USER, Parts: parts}
}
