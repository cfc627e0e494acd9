package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/callcast/callcast/internal/twilio"
)

// Message types, each with its schema version.
const (
	TypeStreamStarted = "callcast.stream.started.v1"
	TypeStreamEvent   = "callcast.stream.event.v1"
)

// MaxMessageSize bounds every bus message a callcast process decodes.
const MaxMessageSize = 1 << 20

// Errors returned by the decoders. Each wraps ErrBadMessage.
var (
	ErrBadMessage = errors.New("bus: bad message")
	ErrTooLarge   = fmt.Errorf("%w: too large", ErrBadMessage)
)

// StreamStarted is published on SubjectStreamStarted for every Twilio start.
type StreamStarted struct {
	Type             string             `json:"type"`
	StreamSid        string             `json:"streamSid"`
	CallSid          string             `json:"callSid"`
	AccountSid       string             `json:"accountSid"`
	CustomParameters map[string]string  `json:"customParameters"`
	MediaFormat      twilio.MediaFormat `json:"mediaFormat"`
	Edge             string             `json:"edge"`
	Time             time.Time          `json:"time"`
	// AudioByEdge says the edge has queued the call's own audio itself
	// (customParameters.audio, else its DEFAULT_AUDIO; "none": nothing):
	// workers do not queue it again. Absent (an edge of before this
	// field, or one configured without a default audio): a worker does.
	AudioByEdge bool `json:"audioByEdge,omitempty"`
}

// DecodeStreamStarted decodes and checks a StreamStarted.
func DecodeStreamStarted(data []byte) (*StreamStarted, error) {
	var m StreamStarted
	if err := decode(data, &m); err != nil {
		return nil, err
	}
	if m.Type != TypeStreamStarted {
		return nil, fmt.Errorf("%w: type %.64q, want %q", ErrBadMessage, m.Type, TypeStreamStarted)
	}
	if err := CheckStreamSid(m.StreamSid); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return &m, nil
}

// OutMessage is what producers publish on StreamOut(sid): Twilio's outbound
// message without the streamSid, which the edge adds. Event is "media" (with
// Media.Payload: base64 of raw μ-law 8 kHz mono), "mark" (with Mark.Name) or
// "clear".
type OutMessage struct {
	Event string       `json:"event"`
	Media *OutMedia    `json:"media,omitempty"`
	Mark  *twilio.Mark `json:"mark,omitempty"`
}

var (
	mediaHead = []byte(`{"event":"media","media":{"payload":"`)
	mediaTail = []byte(`"}}`)
	markHead  = []byte(`{"event":"mark","mark":{"name":"`)
	markTail  = []byte(`"}}`)
)

// OutMedia is the body of a media OutMessage.
type OutMedia struct {
	Payload string `json:"payload"`
}

// DecodeOut decodes and checks an OutMessage: a known event with a valid
// body (padded standard base64 for media, a name for mark).
func DecodeOut(data []byte) (*OutMessage, error) {
	// Every path, fast or slow, is bounded: a server configured for larger
	// payloads must not relay more than a callcast process accepts.
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxMessageSize)
	}
	// Workers' media messages have exactly this shape: skip encoding/json.
	if payload, ok := bytes.CutPrefix(data, mediaHead); ok {
		if payload, ok = bytes.CutSuffix(payload, mediaTail); ok && bytes.IndexAny(payload, `"\`) < 0 {
			p := string(payload)
			if err := twilio.CheckPayload(p); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
			}
			return &OutMessage{Event: twilio.EventMedia, Media: &OutMedia{Payload: p}}, nil
		}
	}
	// And their marks this one.
	if rest, ok := bytes.CutPrefix(data, markHead); ok {
		if name, ok := bytes.CutSuffix(rest, markTail); ok && twilio.PlainJSONString(name) && len(name) <= twilio.MaxMarkNameLen {
			return &OutMessage{Event: twilio.EventMark, Mark: &twilio.Mark{Name: string(name)}}, nil
		}
	}
	return decodeOut(data)
}

// decodeOut is DecodeOut with encoding/json, for any message.
func decodeOut(data []byte) (*OutMessage, error) {
	var m OutMessage
	if err := decode(data, &m); err != nil {
		return nil, err
	}
	switch m.Event {
	case twilio.EventMedia:
		if m.Media == nil {
			return nil, fmt.Errorf("%w: media without media.payload", ErrBadMessage)
		}
		if err := twilio.CheckPayload(m.Media.Payload); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
		}
	case twilio.EventMark:
		if m.Mark == nil || m.Mark.Name == "" {
			return nil, fmt.Errorf("%w: mark without mark.name", ErrBadMessage)
		}
		if len(m.Mark.Name) > twilio.MaxMarkNameLen {
			return nil, fmt.Errorf("%w: mark.name longer than %d bytes", ErrBadMessage, twilio.MaxMarkNameLen)
		}
	case twilio.EventClear:
	default:
		return nil, fmt.Errorf("%w: event %.32q is not media, mark or clear", ErrBadMessage, m.Event)
	}
	return &m, nil
}

// Event kinds published on StreamEvents(sid).
const (
	EventMark  = "mark"  // Twilio echoed a mark: the audio before it was played (or cleared)
	EventDTMF  = "dtmf"  // the caller pressed a key
	EventClear = "clear" // the edge relayed a clear to Twilio
	EventStop  = "stop"  // the stream ended; Stop.Reason says how

	EventPlaybackStarted     = "playback.started"     // the edge relayed the playback's first audio to Twilio
	EventPlaybackFinished    = "playback.finished"    // Twilio echoed the playback's last mark: all of it was played
	EventPlaybackInterrupted = "playback.interrupted" // the playback stopped early; Playback.HeardMs says how much was heard
	EventPlaybackFailed      = "playback.failed"      // the playback could not start or go on; Error says why
)

// Stop reasons.
const (
	StopReasonTwilio   = "stop"      // Twilio sent stop: the call or stream ended
	StopReasonClosed   = "closed"    // the socket closed without a stop
	StopReasonShutdown = "shutdown"  // the edge is shutting down
	StopReasonError    = "error"     // the edge closed the socket after an error
	StopReasonSlowPeer = "slow_peer" // the peer fell more than the lead behind real time, or stopped reading
)

// Event is a call event published on StreamEvents(sid).
type Event struct {
	Type      string       `json:"type"`
	Event     string       `json:"event"`
	StreamSid string       `json:"streamSid"`
	Time      time.Time    `json:"time"`
	Mark      *twilio.Mark `json:"mark,omitempty"`
	DTMF      *DTMF        `json:"dtmf,omitempty"`
	Stop      *Stop        `json:"stop,omitempty"`
	Playback  *Playback    `json:"playback,omitempty"`
	Error     *Error       `json:"error,omitempty"`
	Speech    *Speech      `json:"speech,omitempty"`
}

// Playback is the body of the playback.* Events.
type Playback struct {
	ID         string `json:"id"`                   // the playback's ID, unique across workers
	RequestID  string `json:"requestId,omitempty"`  // the producer's own ID for it, if it gave one
	Audio      string `json:"audio,omitempty"`      // the audio's name (files)
	Stream     string `json:"stream,omitempty"`     // the stream's format (streamed playbacks), as StreamFormat.String
	DurationMs int64  `json:"durationMs,omitempty"` // length of the audio
	SentMs     int64  `json:"sentMs,omitempty"`     // audio sent to the call so far
	HeardMs    int64  `json:"heardMs,omitempty"`    // audio Twilio confirmed as played
	Reason     string `json:"reason,omitempty"`     // why it was interrupted: stop, clear, interrupt, shutdown, barge_in
}

// DTMF is the body of a dtmf Event.
type DTMF struct {
	Digit string `json:"digit"`
}

// Stop is the body of a stop Event.
type Stop struct {
	Reason  string `json:"reason"`
	CallSid string `json:"callSid,omitempty"`
}

// Error is the body of a playback.failed Event, and of error replies.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Audio   string `json:"audio,omitempty"`
}

// Error codes.
const (
	CodeBadRequest   = "bad_request"   // the request is malformed
	CodeUnknownAudio = "unknown_audio" // no such audio, or a name outside the library
	CodeBadAudio     = "bad_audio"     // the audio exists but cannot be decoded
	CodeBusy         = "busy"          // no worker had room for the playback
	CodeInternal     = "internal"      // anything else
)

// NewEvent returns an Event of the given kind for sid, stamped now.
func NewEvent(sid, kind string) Event {
	return Event{Type: TypeStreamEvent, Event: kind, StreamSid: sid, Time: time.Now().UTC()}
}

// DecodeEvent decodes and checks an Event.
func DecodeEvent(data []byte) (*Event, error) {
	if m := decodeMarkEvent(data); m != nil {
		return m, nil
	}
	return decodeEvent(data)
}

// markEventHead starts a mark Event as the edge encodes it.
var markEventHead = []byte(`{"type":"` + TypeStreamEvent + `","event":"mark","streamSid":"`)

// AppendMarkEvent appends the mark Event of sid at time at for the echoed
// mark name, encoded as encoding/json encodes it, without allocating when
// sid and name need no escaping (otherwise it falls back to encoding/json).
func AppendMarkEvent(dst []byte, sid string, at time.Time, name string) []byte {
	if !plainASCII(sid) || !plainASCII(name) {
		ev := NewEvent(sid, EventMark)
		ev.Time = at
		ev.Mark = &twilio.Mark{Name: name}
		data, err := json.Marshal(ev)
		if err != nil { // a time json cannot encode (year past 9999): none of ours
			return dst
		}
		return append(dst, data...)
	}
	dst = append(dst, markEventHead...)
	dst = append(dst, sid...)
	dst = append(dst, `","time":"`...)
	dst = at.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","mark":{"name":"`...)
	dst = append(dst, name...)
	return append(dst, `"}}`...)
}

// plainASCII reports whether encoding/json writes s as it is: printable
// ASCII with nothing it escapes.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// decodeMarkEvent decodes a mark Event encoded exactly as the edge encodes
// it, five a second per call, without encoding/json; anything else returns
// nil. What it decodes, encoding/json decodes to the same Event.
func decodeMarkEvent(data []byte) *Event {
	rest, ok := bytes.CutPrefix(data, markEventHead)
	if !ok {
		return nil
	}
	sid, rest, ok := bytes.Cut(rest, []byte(`","time":"`))
	if !ok || !twilio.PlainJSONString(sid) {
		return nil
	}
	at, rest, ok := bytes.Cut(rest, []byte(`","mark":{"name":"`))
	if !ok || !twilio.PlainJSONString(at) {
		return nil
	}
	name, ok := bytes.CutSuffix(rest, []byte(`"}}`))
	if !ok || !twilio.PlainJSONString(name) {
		return nil
	}
	m := &Event{Type: TypeStreamEvent, Event: EventMark, StreamSid: string(sid), Mark: &twilio.Mark{Name: string(name)}}
	if m.Time.UnmarshalText(at) != nil { // as encoding/json parses it
		return nil
	}
	return m
}

// decodeEvent is DecodeEvent with encoding/json, for any message.
func decodeEvent(data []byte) (*Event, error) {
	var m Event
	if err := decode(data, &m); err != nil {
		return nil, err
	}
	if m.Type != TypeStreamEvent {
		return nil, fmt.Errorf("%w: type %.64q, want %q", ErrBadMessage, m.Type, TypeStreamEvent)
	}
	if m.Event == "" {
		return nil, fmt.Errorf("%w: event missing", ErrBadMessage)
	}
	return &m, nil
}

func decode(data []byte, v any) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxMessageSize)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return nil
}
