package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
)

// Event kinds.
const (
	EventPlaybackStarted     = bus.EventPlaybackStarted     // the playback's first audio went to Twilio
	EventPlaybackFinished    = bus.EventPlaybackFinished    // Twilio played all of it: the caller heard it
	EventPlaybackInterrupted = bus.EventPlaybackInterrupted // stopped early; Playback.Reason says why, HeardMs how much was heard
	EventPlaybackFailed      = bus.EventPlaybackFailed      // could not start or go on; Error says why
	EventMark                = bus.EventMark                // Twilio echoed a mark: the audio before it was played (or cleared)
	EventDTMF                = bus.EventDTMF                // the caller pressed a key
	EventClear               = bus.EventClear               // a clear went to Twilio
	EventSpeechStarted       = bus.EventSpeechStarted       // the caller started speaking
	EventSpeechStopped       = bus.EventSpeechStopped       // the caller stopped speaking
	EventStop                = bus.EventStop                // the call's stream ended
)

// Event is something that happened on a call. Kind says what, and which
// body is set: Playback for playback.* (and Error for playback.failed),
// Mark, DTMF, Speech or Stop.
type Event struct {
	Kind      string
	StreamSid string
	Time      time.Time
	Playback  *Playback
	Error     *Error
	Mark      *Mark
	DTMF      *DTMF
	Speech    *Speech
	Stop      *Stop
}

// Mark is the body of a mark event.
type Mark struct {
	Name string
}

// DTMF is the body of a dtmf event.
type DTMF struct {
	Digit string // "0"–"9", "*", "#"
}

// Speech is the body of the speech.* events, in stream time (ms since the
// stream started, by Twilio's media timestamps).
type Speech struct {
	AtMs       int64 // when the caller started or stopped speaking
	DurationMs int64 // speech.stopped: how long the caller spoke
}

// Stop is the body of a stop event.
type Stop struct {
	Reason  string // stop (Twilio ended it), closed, error or shutdown
	CallSid string
}

func eventOf(m *bus.Event) Event {
	ev := Event{Kind: m.Event, StreamSid: m.StreamSid, Time: m.Time}
	if p := m.Playback; p != nil {
		ev.Playback = &Playback{ID: p.ID, StreamSid: m.StreamSid, RequestID: p.RequestID, Audio: p.Audio, Stream: p.Stream,
			DurationMs: p.DurationMs, SentMs: p.SentMs, HeardMs: p.HeardMs, Reason: p.Reason}
	}
	if e := m.Error; e != nil {
		ev.Error = &Error{Code: e.Code, Message: e.Message}
	}
	if k := m.Mark; k != nil {
		ev.Mark = &Mark{Name: k.Name}
	}
	if d := m.DTMF; d != nil {
		ev.DTMF = &DTMF{Digit: d.Digit}
	}
	if s := m.Speech; s != nil {
		ev.Speech = &Speech{AtMs: s.AtMs, DurationMs: s.DurationMs}
	}
	if s := m.Stop; s != nil {
		ev.Stop = &Stop{Reason: s.Reason, CallSid: s.CallSid}
	}
	return ev
}

// Events follows the events of one call, or of every call. Create it with
// Client.Events before doing what you want to hear about. It is safe for
// concurrent use.
type Events struct {
	sub *nats.Subscription
	one bool // one call: its stop ends the events

	mu    sync.Mutex
	ended bool             // one call's stop was delivered
	ends  map[string]Event // terminal events by playback ID, for WaitPlayback
	order []string         // ends' keys, oldest first
}

// maxEnds bounds the terminal events Events remembers.
const maxEnds = 1024

// Events subscribes to the events of the call of streamSid, or of every
// call when streamSid is empty, and returns once the NATS server has the
// subscription. Events published before are not delivered.
func (c *Client) Events(ctx context.Context, streamSid string) (*Events, error) {
	subject := bus.StreamEvents("*")
	if streamSid != "" {
		if err := bus.CheckStreamSid(streamSid); err != nil {
			return nil, fmt.Errorf("client: events: %w: %w", ErrBadRequest, err)
		}
		subject = bus.StreamEvents(streamSid)
	}
	sub, err := c.nc.SubscribeSync(subject)
	if err != nil {
		return nil, opError("events", err)
	}
	if err := c.flush(ctx); err != nil {
		_ = sub.Unsubscribe()
		return nil, opError("events", err)
	}
	return &Events{sub: sub, one: streamSid != "", ends: map[string]Event{}}, nil
}

// Next returns the next event. Once the stop event of a single call has
// been returned, Next returns io.EOF; after Close, ErrClosed. Messages that
// are not events are skipped.
func (e *Events) Next(ctx context.Context) (Event, error) {
	for {
		e.mu.Lock()
		ended := e.ended
		e.mu.Unlock()
		if ended {
			return Event{}, io.EOF
		}
		msg, err := e.sub.NextMsgWithContext(ctx)
		if errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed) {
			return Event{}, fmt.Errorf("client: events: %w", ErrClosed)
		}
		if err != nil {
			return Event{}, opError("events", err)
		}
		m, err := bus.DecodeEvent(msg.Data)
		if err != nil {
			continue
		}
		ev := eventOf(m)
		e.note(ev)
		return ev, nil
	}
}

// note remembers terminal playback events and a single call's end.
func (e *Events) note(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch ev.Kind {
	case EventStop:
		if e.one {
			e.ended = true
		}
	case EventPlaybackFinished, EventPlaybackInterrupted, EventPlaybackFailed:
		if ev.Playback == nil {
			return
		}
		if _, ok := e.ends[ev.Playback.ID]; ok {
			return
		}
		if len(e.order) == maxEnds {
			delete(e.ends, e.order[0])
			e.order = e.order[1:]
		}
		e.ends[ev.Playback.ID] = ev
		e.order = append(e.order, ev.Playback.ID)
	}
}

// WaitPlayback waits for the end of the playback with ID id and returns
// its terminal event: playback.finished with a nil error (the caller heard
// all of it), playback.interrupted with ErrInterrupted, or playback.failed
// with its *Error (errors.Is(err, ErrStalled)…). Events read meanwhile are
// consumed (Next does not return them); a terminal event Next returned
// earlier still counts. Following one call, its end before the playback's
// returns ErrCallEnded.
func (e *Events) WaitPlayback(ctx context.Context, id string) (Event, error) {
	for {
		e.mu.Lock()
		ev, ok := e.ends[id]
		ended := e.ended
		e.mu.Unlock()
		if ok {
			return ev, playbackResult(ev)
		}
		if ended {
			return Event{}, fmt.Errorf("client: playback %s: %w", id, ErrCallEnded)
		}
		if _, err := e.Next(ctx); err != nil && err != io.EOF {
			return Event{}, err
		}
	}
}

func playbackResult(ev Event) error {
	switch ev.Kind {
	case EventPlaybackInterrupted:
		return fmt.Errorf("client: playback %s: %w (%s, heard %d ms)", ev.Playback.ID, ErrInterrupted, ev.Playback.Reason, ev.Playback.HeardMs)
	case EventPlaybackFailed:
		if ev.Error == nil {
			return fmt.Errorf("client: playback %s: %w", ev.Playback.ID, ErrInternal)
		}
		return fmt.Errorf("client: playback %s: %w", ev.Playback.ID, ev.Error)
	}
	return nil
}

// Close stops following the events.
func (e *Events) Close() error {
	err := e.sub.Unsubscribe()
	if err == nil || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		return nil
	}
	return opError("events", err)
}
