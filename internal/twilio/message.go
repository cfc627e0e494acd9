// Package twilio implements the Twilio Media Streams WebSocket protocol for
// bidirectional streams (<Connect><Stream>): the JSON messages Twilio sends
// (connected, start, media, dtmf, mark, stop) and the three it accepts back
// (media, mark, clear), plus the TwiML that opens a stream.
//
// Audio on the wire is base64 (standard alphabet, padded) of raw G.711 μ-law,
// 8000 Hz, mono, with no file header; Twilio sends 160 bytes (20 ms) per
// inbound media message. Outbound messages must carry exactly the documented
// fields: an extra or missing field makes Twilio reject the message (error
// 31951), so the encoders here write them byte for byte.
package twilio

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Event names used on the wire.
const (
	EventConnected = "connected"
	EventStart     = "start"
	EventMedia     = "media"
	EventDTMF      = "dtmf"
	EventMark      = "mark"
	EventStop      = "stop"
	EventClear     = "clear"
)

// Fixed media format of every Twilio Media Stream.
const (
	Encoding   = "audio/x-mulaw"
	SampleRate = 8000
	Channels   = 1
)

// Limits applied when parsing.
const (
	// MaxStreamSidLen bounds a stream SID. Twilio's are "MZ" + 32 hex digits.
	MaxStreamSidLen = 64
	// MaxMarkNameLen bounds a mark name.
	MaxMarkNameLen = 256
)

// Errors returned by the parsers. Each wraps ErrProtocol.
var (
	ErrProtocol       = errors.New("twilio: protocol error")
	ErrBadJSON        = fmt.Errorf("%w: invalid JSON", ErrProtocol)
	ErrUnknownEvent   = fmt.Errorf("%w: unknown event", ErrProtocol)
	ErrMissingField   = fmt.Errorf("%w: missing field", ErrProtocol)
	ErrBadField       = fmt.Errorf("%w: invalid field", ErrProtocol)
	ErrUnexpectedData = fmt.Errorf("%w: unexpected field", ErrProtocol)
)

// Message is one message Twilio sends over the stream's WebSocket. Exactly one
// of the event-specific pointers is set, matching Event; Connected messages
// carry Protocol and Version instead.
type Message struct {
	Event          string `json:"event"`
	SequenceNumber string `json:"sequenceNumber,omitempty"`
	StreamSid      string `json:"streamSid,omitempty"`
	Protocol       string `json:"protocol,omitempty"`
	Version        string `json:"version,omitempty"`
	Start          *Start `json:"start,omitempty"`
	Media          *Media `json:"media,omitempty"`
	DTMF           *DTMF  `json:"dtmf,omitempty"`
	Mark           *Mark  `json:"mark,omitempty"`
	Stop           *Stop  `json:"stop,omitempty"`
}

// Start is the body of a start message.
type Start struct {
	StreamSid        string            `json:"streamSid"`
	AccountSid       string            `json:"accountSid"`
	CallSid          string            `json:"callSid"`
	Tracks           []string          `json:"tracks"`
	CustomParameters map[string]string `json:"customParameters"`
	MediaFormat      MediaFormat       `json:"mediaFormat"`
}

// MediaFormat describes the stream's audio; for Twilio it is always
// audio/x-mulaw, 8000 Hz, 1 channel.
type MediaFormat struct {
	Encoding   string `json:"encoding"`
	SampleRate int    `json:"sampleRate"`
	Channels   int    `json:"channels"`
}

// Media is the body of an inbound media message. Chunk and Timestamp are
// integers carried as JSON strings.
type Media struct {
	Track     string `json:"track"`
	Chunk     string `json:"chunk"`
	Timestamp string `json:"timestamp"`
	Payload   string `json:"payload"`
}

// DTMF is the body of a dtmf message.
type DTMF struct {
	Track string `json:"track"`
	Digit string `json:"digit"`
}

// Mark is the body of a mark message, in either direction.
type Mark struct {
	Name string `json:"name"`
}

// Stop is the body of a stop message.
type Stop struct {
	AccountSid string `json:"accountSid"`
	CallSid    string `json:"callSid"`
}

// ParseMessage decodes and checks one message from Twilio. It checks what the
// edge relies on: a known event, the matching body, a usable streamSid on
// every message after connected, and a start whose media format is the one
// Twilio documents. Unknown extra fields are tolerated, as Twilio may add some.
func ParseMessage(data []byte) (*Message, error) {
	m := parseMarkEcho(data)
	if m == nil {
		return parseMessage(data)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// parseMarkEcho decodes a mark echo written as Twilio writes it, five a
// second per call, without encoding/json; anything else returns nil. What it
// decodes, encoding/json decodes to the same Message.
func parseMarkEcho(data []byte) *Message {
	rest, ok := bytes.CutPrefix(data, []byte(`{"event":"mark","sequenceNumber":"`))
	if !ok {
		return nil
	}
	seq, rest, ok := bytes.Cut(rest, []byte(`","streamSid":"`))
	if !ok || !PlainJSONString(seq) {
		return nil
	}
	sid, rest, ok := bytes.Cut(rest, []byte(`","mark":{"name":"`))
	if !ok || !PlainJSONString(sid) {
		return nil
	}
	name, ok := bytes.CutSuffix(rest, []byte(`"}}`))
	if !ok || !PlainJSONString(name) {
		return nil
	}
	return &Message{Event: EventMark, SequenceNumber: string(seq), StreamSid: string(sid), Mark: &Mark{Name: string(name)}}
}

// parseMessage is ParseMessage with encoding/json, for any message.
func parseMessage(data []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadJSON, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *Message) validate() error {
	if m.Event != EventConnected {
		if err := CheckStreamSid(m.StreamSid); err != nil {
			return err
		}
	}
	switch m.Event {
	case EventConnected:
		return nil
	case EventStart:
		s := m.Start
		if s == nil {
			return fmt.Errorf("%w: start", ErrMissingField)
		}
		if s.StreamSid != "" && s.StreamSid != m.StreamSid {
			return fmt.Errorf("%w: start.streamSid %q differs from streamSid %q", ErrBadField, s.StreamSid, m.StreamSid)
		}
		if s.CallSid == "" {
			return fmt.Errorf("%w: start.callSid", ErrMissingField)
		}
		f := s.MediaFormat
		if f.Encoding != Encoding || f.SampleRate != SampleRate || f.Channels != Channels {
			return fmt.Errorf("%w: start.mediaFormat %s/%d/%d, want %s/%d/%d",
				ErrBadField, f.Encoding, f.SampleRate, f.Channels, Encoding, SampleRate, Channels)
		}
	case EventMedia:
		if m.Media == nil {
			return fmt.Errorf("%w: media", ErrMissingField)
		}
	case EventDTMF:
		if m.DTMF == nil || m.DTMF.Digit == "" {
			return fmt.Errorf("%w: dtmf.digit", ErrMissingField)
		}
	case EventMark:
		if m.Mark == nil || m.Mark.Name == "" {
			return fmt.Errorf("%w: mark.name", ErrMissingField)
		}
		if len(m.Mark.Name) > MaxMarkNameLen {
			return fmt.Errorf("%w: mark.name longer than %d bytes", ErrBadField, MaxMarkNameLen)
		}
	case EventStop:
		return nil
	case "":
		return fmt.Errorf("%w: event", ErrMissingField)
	default:
		return fmt.Errorf("%w: %.32q", ErrUnknownEvent, m.Event)
	}
	return nil
}

// CheckStreamSid reports whether sid can name a stream: non-empty, at most
// MaxStreamSidLen bytes of ASCII letters, digits, '-' and '_'. Anything else
// could not be used safely in a NATS subject or copied into JSON unescaped.
func CheckStreamSid(sid string) error {
	if sid == "" {
		return fmt.Errorf("%w: streamSid", ErrMissingField)
	}
	if len(sid) > MaxStreamSidLen {
		return fmt.Errorf("%w: streamSid longer than %d bytes", ErrBadField, MaxStreamSidLen)
	}
	for i := 0; i < len(sid); i++ {
		c := sid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w: streamSid has character %q", ErrBadField, c)
		}
	}
	return nil
}

// AppendMedia appends the outbound media message for sid carrying the μ-law
// bytes ulaw, base64-encoded. sid must satisfy CheckStreamSid.
func AppendMedia(dst []byte, sid string, ulaw []byte) []byte {
	dst = append(dst, `{"event":"media","streamSid":"`...)
	dst = append(dst, sid...)
	dst = append(dst, `","media":{"payload":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, ulaw)
	return append(dst, `"}}`...)
}

// AppendMediaBase64 is AppendMedia for a payload that is already base64.
// payload must be valid standard base64 (see CheckPayload).
func AppendMediaBase64(dst []byte, sid, payload string) []byte {
	dst = append(dst, `{"event":"media","streamSid":"`...)
	dst = append(dst, sid...)
	dst = append(dst, `","media":{"payload":"`...)
	dst = append(dst, payload...)
	return append(dst, `"}}`...)
}

// AppendMark appends the outbound mark message for sid. The name is escaped
// as JSON requires.
func AppendMark(dst []byte, sid, name string) []byte {
	dst = append(dst, `{"event":"mark","streamSid":"`...)
	dst = append(dst, sid...)
	dst = append(dst, `","mark":{"name":`...)
	dst = appendJSONString(dst, name)
	return append(dst, `}}`...)
}

// AppendClear appends the outbound clear message for sid.
func AppendClear(dst []byte, sid string) []byte {
	dst = append(dst, `{"event":"clear","streamSid":"`...)
	dst = append(dst, sid...)
	return append(dst, `"}`...)
}

func appendJSONString(dst []byte, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil { // cannot happen for a string
		return append(dst, `""`...)
	}
	return append(dst, b...)
}

// CheckPayload reports whether payload is non-empty, valid, padded standard
// base64, as Twilio expects. It does not allocate.
func CheckPayload(payload string) error { return checkPayload(payload) }

// checkPayload is CheckPayload for a string or bytes.
func checkPayload[T string | []byte](payload T) error {
	n := len(payload)
	if n == 0 {
		return fmt.Errorf("%w: media.payload", ErrMissingField)
	}
	if n%4 != 0 {
		return fmt.Errorf("%w: media.payload is not padded base64", ErrBadField)
	}
	body := payload[:n-2]
	if !base64Chars(body) {
		for i := 0; i < len(body); i++ {
			if !isBase64[body[i]] {
				return fmt.Errorf("%w: media.payload is not standard base64 (byte %d)", ErrBadField, i)
			}
		}
	}
	// The last two may be padding: "x=" or "==".
	switch a, b := payload[n-2], payload[n-1]; {
	case !isBase64[a] && (a != '=' || b != '='):
		return fmt.Errorf("%w: media.payload is not standard base64 (byte %d)", ErrBadField, n-2)
	case !isBase64[b] && b != '=':
		return fmt.Errorf("%w: media.payload is not standard base64 (byte %d)", ErrBadField, n-1)
	}
	return nil
}

// notBase64 is 1 for the bytes outside standard base64's alphabet (padding
// included), 0 for those in it.
var notBase64 = notIn(isBase64)

// base64Chars reports whether p holds only standard base64's alphabet, no
// padding (a worker's 200 ms media message carries 2136 of them).
func base64Chars[T string | []byte](p T) bool { return onlyIn(p, &notBase64) }

// notIn is the table of the bytes not marked in ok: 1 for those, 0 for
// the others.
func notIn(ok [256]bool) (t [256]byte) {
	for c := range t {
		if !ok[c] {
			t[c] = 1
		}
	}
	return t
}

// onlyIn reports whether p holds none of the bytes not marks, eight bytes
// a step without a branch per byte.
func onlyIn[T string | []byte](p T, not *[256]byte) bool {
	var bad byte
	for len(p) >= 8 {
		bad |= not[p[0]] | not[p[1]] | not[p[2]] | not[p[3]] |
			not[p[4]] | not[p[5]] | not[p[6]] | not[p[7]]
		p = p[8:]
	}
	for i := 0; i < len(p); i++ {
		bad |= not[p[i]]
	}
	return bad == 0
}

// PayloadLen is the number of μ-law bytes in a payload CheckPayload
// accepted: what it decodes to, without decoding it.
func PayloadLen(payload string) int {
	n := len(payload) / 4 * 3
	for i := len(payload) - 1; i >= 0 && payload[i] == '='; i-- {
		n--
	}
	return n
}

// isBase64 marks the characters of the standard base64 alphabet.
var isBase64 = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = true
	}
	return t
}()

// Outbound is a message sent to Twilio, as decoded by ParseOutbound.
type Outbound struct {
	Event     string `json:"event"`
	StreamSid string `json:"streamSid"`
	Media     *struct {
		Payload string `json:"payload"`
	} `json:"media,omitempty"`
	Mark *Mark `json:"mark,omitempty"`
}

// ParseOutbound decodes a message meant for Twilio and checks it as strictly
// as Twilio does: a known event, streamSid present, exactly the documented
// fields and no others. Twilio's side of a test uses it to reject what the
// real service would reject with error 31951.
func ParseOutbound(data []byte) (*Outbound, error) {
	if o := parseCanonical(data); o != nil {
		return o, nil
	}
	return parseOutbound(data)
}

// parseOutbound is ParseOutbound with encoding/json, for any message.
func parseOutbound(data []byte) (*Outbound, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadJSON, err)
	}
	var o Outbound
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnexpectedData, err)
	}
	if err := CheckStreamSid(o.StreamSid); err != nil {
		return nil, err
	}
	want := map[string]bool{"event": true, "streamSid": true}
	switch o.Event {
	case EventMedia:
		if o.Media == nil {
			return nil, fmt.Errorf("%w: media", ErrMissingField)
		}
		if err := CheckPayload(o.Media.Payload); err != nil {
			return nil, err
		}
		if !onlyKey(raw["media"], "payload") {
			return nil, fmt.Errorf("%w: media must hold only payload", ErrUnexpectedData)
		}
		want["media"] = true
	case EventMark:
		if o.Mark == nil || o.Mark.Name == "" {
			return nil, fmt.Errorf("%w: mark.name", ErrMissingField)
		}
		if !onlyKey(raw["mark"], "name") {
			return nil, fmt.Errorf("%w: mark must hold only name", ErrUnexpectedData)
		}
		want["mark"] = true
	case EventClear:
	default:
		return nil, fmt.Errorf("%w: %.32q", ErrUnknownEvent, o.Event)
	}
	for k := range raw {
		if !want[k] {
			return nil, fmt.Errorf("%w: %q in %s", ErrUnexpectedData, k, o.Event)
		}
	}
	return &o, nil
}

// parseCanonical decodes a media or mark message written exactly as
// AppendMedia or AppendMark write it, without encoding/json; anything else
// returns nil, for the full parser to judge. What it accepts, the full
// parser accepts as the same message.
func parseCanonical(data []byte) *Outbound {
	if rest, ok := bytes.CutPrefix(data, []byte(`{"event":"media","streamSid":"`)); ok {
		sid, rest, ok := bytes.Cut(rest, []byte(`","media":{"payload":"`))
		if !ok || CheckStreamSid(string(sid)) != nil {
			return nil
		}
		payload, ok := bytes.CutSuffix(rest, []byte(`"}}`))
		if !ok || checkPayload(payload) != nil {
			return nil
		}
		o := &Outbound{Event: EventMedia, StreamSid: string(sid)}
		o.Media = &struct {
			Payload string `json:"payload"`
		}{Payload: string(payload)}
		return o
	}
	if rest, ok := bytes.CutPrefix(data, []byte(`{"event":"mark","streamSid":"`)); ok {
		sid, rest, ok := bytes.Cut(rest, []byte(`","mark":{"name":"`))
		if !ok || CheckStreamSid(string(sid)) != nil {
			return nil
		}
		name, ok := bytes.CutSuffix(rest, []byte(`"}}`))
		if !ok || !PlainJSONString(name) {
			return nil
		}
		return &Outbound{Event: EventMark, StreamSid: string(sid), Mark: &Mark{Name: string(name)}}
	}
	return nil
}

// PlainJSONString reports whether b is a non-empty JSON string body that
// decodes to itself: valid UTF-8 with no escape, quote or control character.
// Fast paths that cut strings out of JSON by their quotes rely on it.
func PlainJSONString(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.Valid(b)
}

// onlyKey reports whether obj is a JSON object whose one key is exactly key.
// encoding/json matches struct fields case-insensitively; Twilio does not, so
// "Payload" or "NAME" must not pass for "payload" or "name".
func onlyKey(obj json.RawMessage, key string) bool {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil || len(m) != 1 {
		return false
	}
	_, ok := m[key]
	return ok
}
