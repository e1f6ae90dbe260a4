package portico

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	porticov1 "portico.dev/clients/go/gen/portico/v1"
)

// ErrIncompleteStream is what Recv returns when a stream ends without its final chunk.
// The gateway never ends a stream that way on purpose (a failure ends it with an error
// status), so this means a proxy or the connection cut it short.
var ErrIncompleteStream = errors.New("portico: the stream ended without its final chunk")

// ChatStream is a streamed answer. Read it to the end with Recv or Chunks, or call
// Close to stop early: closing cancels the call, and the gateway then closes its
// request to the provider at once instead of generating an answer nobody reads.
//
// A request may let the gateway move the stream to another target after its first
// chunk (ChatRequest.StreamFailover). A chunk whose Failover is set then says so: on
// STREAM_FAILOVER_RESTART everything received before it belongs to an abandoned answer,
// on STREAM_FAILOVER_CONTINUE it stays. Response holds only the final answer either way.
//
// A ChatStream is read by one goroutine at a time.
type ChatStream struct {
	call   grpc.ServerStreamingClient[porticov1.StreamChunk]
	cancel context.CancelFunc

	// Retrying before the first chunk: the call's context, how to start it again, the
	// policy, and the attempts made so far.
	ctx      context.Context
	start    func() (grpc.ServerStreamingClient[porticov1.StreamChunk], error)
	retry    RetryPolicy
	attempts int
	received bool
	// traceInto is the caller's CaptureTrace, filled when the stream ends; nil if none.
	traceInto *Trace

	err       error // sticky: io.EOF after the final chunk, or the error that ended the stream
	final     *porticov1.StreamChunk
	content   strings.Builder
	reasoning strings.Builder
	model     string
	provider  string
	failovers []*porticov1.Failover
	trace     Trace
}

// Recv returns the next chunk. After the final chunk (Final set) it returns io.EOF;
// a failure returns an *Error (or ErrIncompleteStream), and so does every later call.
func (s *ChatStream) Recv() (*porticov1.StreamChunk, error) {
	if s.err != nil {
		return nil, s.err
	}
	chunk, err := s.recvFirst()
	switch {
	case errors.Is(err, io.EOF):
		s.finish(ErrIncompleteStream)
		return nil, s.err
	case err != nil:
		s.finish(err)
		return nil, s.err
	}
	s.received = true
	if marker := chunk.GetFailover(); marker != nil {
		s.failOver(marker)
		return chunk, nil
	}
	s.content.WriteString(chunk.GetContent())
	s.reasoning.WriteString(chunk.GetReasoningContent())
	if chunk.GetModel() != "" {
		s.model = chunk.GetModel()
	}
	if chunk.GetProvider() != "" {
		s.provider = chunk.GetProvider()
	}
	if chunk.GetFinal() {
		s.final = chunk
		s.finish(s.readEnd())
	}
	return chunk, nil
}

// failOver records a marker; on RESTART it drops the answer assembled so far.
func (s *ChatStream) failOver(marker *porticov1.Failover) {
	s.failovers = append(s.failovers, marker)
	if marker.GetMode() == porticov1.StreamFailover_STREAM_FAILOVER_RESTART {
		s.content.Reset()
		s.reasoning.Reset()
	}
	if marker.GetProvider() != "" {
		s.provider = marker.GetProvider()
	}
	if marker.GetModel() != "" {
		s.model = marker.GetModel()
	}
}

// Failovers returns the failover markers received so far, in order: each says another
// target took over the stream.
func (s *ChatStream) Failovers() []*porticov1.Failover { return s.failovers }

// Trace returns the gateway's attempt trace, read from the stream's trailers once the
// stream has ended (after Recv returned io.EOF or an error); empty before.
func (s *ChatStream) Trace() Trace { return s.trace }

// recvFirst receives the next chunk. Until the first one has arrived, a retry-safe
// failure starts the call again as the retry policy allows; after it, a retry would
// repeat text the caller already has, so every failure is final. Errors are decoded.
func (s *ChatStream) recvFirst() (*porticov1.StreamChunk, error) {
	for {
		chunk, err := s.call.Recv()
		if err == nil || errors.Is(err, io.EOF) {
			return chunk, err
		}
		err = decodeError(err)
		if s.received {
			return nil, err
		}
		delay, again := s.retry.delayBefore(s.ctx, s.attempts, err)
		if !again {
			return nil, err
		}
		if werr := wait(s.ctx, delay); werr != nil {
			return nil, werr
		}
		call, serr := s.start()
		if serr != nil {
			return nil, decodeError(serr)
		}
		s.call = call
		s.attempts++
	}
}

// readEnd reads the status that follows the final chunk, so the call ends cleanly
// even when the caller stops reading at the final chunk: cancelling instead would
// show up in the gateway's logs and metrics as a cancelled call. The gateway sends the
// status right after the final chunk, so this does not wait.
func (s *ChatStream) readEnd() error {
	extra, err := s.call.Recv()
	switch {
	case err == nil:
		return &Error{Code: codes.Internal, Message: fmt.Sprintf("the gateway sent a chunk after the final one: %v", extra)}
	case errors.Is(err, io.EOF):
		return io.EOF
	default:
		return decodeError(err)
	}
}

// Chunks returns the stream as an iterator for a range loop:
//
//	for chunk, err := range stream.Chunks() {
//		if err != nil { return err }
//		fmt.Print(chunk.GetContent())
//	}
//
// It ends after the final chunk, or after yielding the error that ended the stream.
// Breaking out of the loop early closes the stream.
func (s *ChatStream) Chunks() iter.Seq2[*porticov1.StreamChunk, error] {
	return func(yield func(*porticov1.StreamChunk, error) bool) {
		for {
			chunk, err := s.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if !yield(chunk, err) {
				s.Close()
				return
			}
			if err != nil {
				return
			}
		}
	}
}

// Response reads whatever is left of the stream and returns the whole answer as Chat
// would have: the text and reasoning joined (after a RESTART marker, only the new
// target's), the final chunk's tool calls, stop reason and usage.
func (s *ChatStream) Response() (*porticov1.CompletionResponse, error) {
	for s.err == nil {
		if _, err := s.Recv(); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
	}
	if s.final == nil {
		return nil, s.err
	}
	return &porticov1.CompletionResponse{
		Content:          s.content.String(),
		Role:             porticov1.Role_ROLE_ASSISTANT,
		ToolCalls:        s.final.GetToolCalls(),
		StopReason:       s.final.GetStopReason(),
		RawStopReason:    s.final.GetRawStopReason(),
		Usage:            s.final.GetUsage(),
		Model:            s.model,
		Provider:         s.provider,
		ReasoningContent: s.reasoning.String(),
	}, nil
}

// Final returns the final chunk once Recv has returned it, else nil.
func (s *ChatStream) Final() *porticov1.StreamChunk { return s.final }

// Close cancels the call if it is still running. It is safe to call more than once,
// after the stream ended, and from another goroutine than the reader: a Recv waiting
// for the next chunk then returns a CANCELED *Error.
func (s *ChatStream) Close() { s.cancel() }

func (s *ChatStream) finish(err error) {
	// The trailers are there once Recv has returned an error or io.EOF.
	s.trace = traceFromMetadata(s.call.Trailer())
	s.trace.ClientAttempts = s.attempts
	if perr, ok := AsError(err); ok {
		if perr.Attempts == nil {
			perr.Attempts, perr.Overhead = s.trace.Attempts, s.trace.Overhead
		}
		perr.ClientAttempts = s.attempts
	}
	if s.traceInto != nil {
		*s.traceInto = s.trace
	}
	s.err = err
	s.cancel()
}
