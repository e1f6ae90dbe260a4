package portico

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
)

// ErrorDomain is the ErrorInfo domain of every error the gateway itself makes.
const ErrorDomain = "portico"

// retrySafeKey is the ErrorInfo metadata key that says whether a call may be re-sent.
const retrySafeKey = "retry_safe"

// Error is a failed call: the gRPC status plus the google.rpc details the gateway put
// in it. Every error this package returns from a call is an *Error (except
// ErrIncompleteStream); failures that never reached the gateway, such as a refused
// connection or the caller's own deadline, are too, with an empty Reason.
//
//	var perr *portico.Error
//	if errors.As(err, &perr) && perr.RetryAfter > 0 { time.Sleep(perr.RetryAfter) }
type Error struct {
	// Code is the gRPC status code, e.g. codes.InvalidArgument.
	Code codes.Code
	// Message is the status message as the gateway sent it.
	Message string
	// Reason is ErrorInfo.reason, an ErrorReason value name such as
	// "ERROR_REASON_UPSTREAM_RATE_LIMITED"; "" when the status has no ErrorInfo.
	Reason string
	// Domain is ErrorInfo.domain: ErrorDomain for errors the gateway made.
	Domain string
	// Metadata is ErrorInfo.metadata: dynamic values such as "provider" or "limit".
	Metadata map[string]string
	// RetryAfter is RetryInfo.retry_delay: how long to wait before trying again; zero
	// when the status has no RetryInfo, which means waiting is not known to help.
	RetryAfter time.Duration
	// FieldViolations lists the request fields the gateway refused (BadRequest).
	FieldViolations []FieldViolation
	// Attempts is the gateway's attempt trace of the failed call (the
	// portico-attempts trailer), in order; nil when it sent none.
	Attempts []Attempt
	// Overhead is the gateway's own time on the call (portico-overhead-ms).
	Overhead time.Duration
	// ClientAttempts is how many times this client sent the call before giving up
	// (0 for a failure that came before any attempt, such as a bad option).
	ClientAttempts int

	status *status.Status
}

// FieldViolation is one refused request field, from a google.rpc.BadRequest detail.
type FieldViolation struct {
	// Field is a path into the request, e.g. "temperature" or "messages[0].role".
	Field string
	// Description says why the value is not accepted.
	Description string
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("portico: %s (%s): %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("portico: %s: %s", e.Code, e.Message)
}

// GRPCStatus returns the status the error was decoded from, so status.FromError and
// status.Code work on an *Error as on any gRPC error.
func (e *Error) GRPCStatus() *status.Status {
	if e.status == nil {
		return status.New(e.Code, e.Message)
	}
	return e.status
}

// Is makes errors.Is(err, context.Canceled) and errors.Is(err, context.DeadlineExceeded)
// hold for the matching status codes, whichever side ended the call.
func (e *Error) Is(target error) bool {
	switch target {
	case context.Canceled:
		return e.Code == codes.Canceled
	case context.DeadlineExceeded:
		return e.Code == codes.DeadlineExceeded
	}
	return false
}

// ReasonCode returns Reason as the generated enum, for a switch; ERROR_REASON_UNSPECIFIED
// when there is no reason or it is one this client does not know yet.
func (e *Error) ReasonCode() porticov1.ErrorReason {
	return porticov1.ErrorReason(porticov1.ErrorReason_value[e.Reason])
}

// RetrySafe reports whether the gateway said that sending the same call again cannot
// start a second generation at a provider (ErrorInfo metadata retry_safe = "true"):
// the request never left the gateway, or the provider refused it before doing work.
// An upstream 500, a malformed or cut-off answer, or a failure after a stream's first
// chunk is not retry-safe, and neither is a status without the gateway's details.
func (e *Error) RetrySafe() bool {
	return e.Domain == ErrorDomain && e.Metadata[retrySafeKey] == "true"
}

// Retryable reports whether making the same call again is both safe (RetrySafe) and
// may succeed: the status is UNAVAILABLE, or the gateway said how long to wait. The
// client has already retried such a failure as far as its RetryPolicy allows.
func (e *Error) Retryable() bool {
	return e.RetrySafe() && (e.Code == codes.Unavailable || e.RetryAfter > 0)
}

// FieldViolation returns the description of the violation of field, and whether
// there is one.
func (e *Error) FieldViolation(field string) (string, bool) {
	for _, v := range e.FieldViolations {
		if v.Field == field {
			return v.Description, true
		}
	}
	return "", false
}

// AsError returns err as an *Error when it is one or wraps one.
func AsError(err error) (*Error, bool) {
	var perr *Error
	ok := errors.As(err, &perr)
	return perr, ok
}

// decodeError turns an error from a generated-client call into an *Error; nil stays nil.
func decodeError(err error) error {
	if err == nil {
		return nil
	}
	if perr, ok := err.(*Error); ok { // already decoded, with what the trailers added
		return perr
	}
	st, ok := status.FromError(err)
	if !ok {
		// Not a gRPC error at all; gRPC-Go returns none of those, but do not hide one.
		return err
	}
	return fromStatus(st)
}

func fromStatus(st *status.Status) *Error {
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	// Details decodes each Any through the global type registry, which the errdetails
	// import fills; a detail of a type this client does not link comes back as an error
	// value and is skipped.
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if e.Reason == "" { // AIP-193: exactly one ErrorInfo; keep the first if not
				e.Reason, e.Domain, e.Metadata = d.GetReason(), d.GetDomain(), d.GetMetadata()
			}
		case *errdetails.RetryInfo:
			e.RetryAfter = d.GetRetryDelay().AsDuration()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.FieldViolations = append(e.FieldViolations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		}
	}
	return e
}
