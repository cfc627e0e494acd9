package client

import (
	"errors"

	"github.com/callcast/callcast/internal/bus"
)

// Error is an error callcast answered: a request's error reply, or the
// error of a playback.failed event. Code is the contract's code; errors.Is
// matches an Error to the sentinel of its code (ErrBusy, ErrUnknownStream…).
type Error struct {
	Code    string // bad_request, unknown_stream, unknown_audio, …
	Message string // what went wrong, for people
	cause   error  // what the client saw, when it made the Error itself
}

// Unwrap is the error the client saw when it found the code itself (the
// library's context deadline, say); nil for what callcast answered.
func (e *Error) Unwrap() error { return e.cause }

// Error is the code and message; the client's methods return it wrapped
// in "client: <operation>: ", as every error they return.
func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels of callcast's error codes, for errors.Is. Each is an *Error
// with the code alone.
var (
	// ErrBadRequest: the request is malformed (a bad stream SID or format,
	// a missing audio name…). Nothing changed on the call.
	ErrBadRequest = &Error{Code: bus.CodeBadRequest}
	// ErrUnknownStream: no edge holds a live call with that stream SID.
	ErrUnknownStream = &Error{Code: bus.CodeUnknownStream}
	// ErrUnknownAudio: no such audio in the library.
	ErrUnknownAudio = &Error{Code: bus.CodeUnknownAudio}
	// ErrBadAudio: the audio is not playable (a playback.failed event can
	// say so of a stream too).
	ErrBadAudio = &Error{Code: bus.CodeBadAudio}
	// ErrBusy: no worker had room for the playback.
	ErrBusy = &Error{Code: bus.CodeBusy}
	// ErrQueueFull: the call already has as many playbacks queued as the
	// edge allows.
	ErrQueueFull = &Error{Code: bus.CodeQueueFull}
	// ErrNoWorkers: no worker answered (none runs, or none is connected).
	ErrNoWorkers = &Error{Code: bus.CodeNoWorkers}
	// ErrUnavailable: a store or service the request needs is down: try
	// again.
	ErrUnavailable = &Error{Code: bus.CodeUnavailable}
	// ErrTooLarge: a streamed playback ran further ahead of what the
	// caller heard than the edge holds (playback.failed).
	ErrTooLarge = &Error{Code: bus.CodeTooLarge}
	// ErrStalled: a streamed playback got neither audio nor its end for
	// the edge's idle timeout (playback.failed).
	ErrStalled = &Error{Code: bus.CodeStalled}
	// ErrInternal: anything else that went wrong in callcast.
	ErrInternal = &Error{Code: bus.CodeInternal}
)

// Errors of the client itself. Like the sentinels above, they come
// wrapped in "client: <operation>: ".
var (
	// ErrClosed is returned by a StreamWriter's Write after Close, and by
	// Next after Close.
	ErrClosed = errors.New("closed")
	// ErrNoEdges is returned by Calls when no edge is subscribed to
	// callcast.calls: none runs, or none reaches this NATS server.
	ErrNoEdges = errors.New("no edge answered")
	// ErrInterrupted is returned by WaitPlayback for a playback that was
	// stopped before the caller heard all of it; the event says why.
	ErrInterrupted = errors.New("playback interrupted")
	// ErrCallEnded is returned by WaitPlayback when the call ended before
	// the playback did.
	ErrCallEnded = errors.New("call ended")
	// ErrBadReply: callcast answered something this client cannot read.
	ErrBadReply = errors.New("bad reply")
)

// replyError turns a reply's error body into an *Error.
func replyError(e *bus.Error) error {
	if e == nil {
		return nil
	}
	return &Error{Code: e.Code, Message: e.Message}
}
