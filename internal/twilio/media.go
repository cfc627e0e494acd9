package twilio

import (
	"bytes"
	"fmt"
	"strconv"
)

// InboundMedia is a caller media message cut out of its JSON: slices of the
// message itself, valid as long as it is.
type InboundMedia struct {
	StreamSid []byte
	Track     []byte
	// Chunk is Twilio's number of the 20 ms frame, counting from 1.
	Chunk int64
	// Timestamp is the frame's presentation time, ms since the stream
	// started.
	Timestamp int64
	// Payload is the audio as sent: padded standard base64 of μ-law.
	// CutMedia checks only its alphabet; decoding it checks the rest.
	Payload []byte
}

var (
	inMediaHead    = []byte(`{"event":"media","sequenceNumber":"`)
	inMediaSidHead = []byte(`","streamSid":"`)
	inMediaBody    = []byte(`","media":{"track":"`)
	inMediaChunk   = []byte(`","chunk":"`)
	inMediaTime    = []byte(`","timestamp":"`)
	inMediaPayload = []byte(`","payload":"`)
	inMediaSidTail = []byte(`"},"streamSid":"`)
)

// CutMedia reads a caller media message written as Twilio writes it,
// 50 a second per call, without encoding/json and without allocating:
//
//	{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"…"},"streamSid":"MZ…"}
//
// or with streamSid before media. Anything else, including any other
// spacing or field order, returns false: parse it with ParseMessage. What
// it takes, ParseMessage takes as the same message.
func CutMedia(data []byte) (m InboundMedia, ok bool) {
	rest, ok := bytes.CutPrefix(data, inMediaHead)
	if !ok {
		return m, false
	}
	seq, rest, ok := cutQuoted(rest)
	if !ok || !digits(seq) {
		return m, false
	}
	// rest starts just after the closing quote of sequenceNumber.
	sidFirst := false
	switch {
	case bytes.HasPrefix(rest, inMediaSidHead[1:]):
		sidFirst = true
		rest = rest[len(inMediaSidHead)-1:]
		m.StreamSid, rest, ok = cutQuoted(rest)
		if !ok {
			return m, false
		}
		if rest, ok = bytes.CutPrefix(rest, inMediaBody[1:]); !ok {
			return m, false
		}
	default:
		if rest, ok = bytes.CutPrefix(rest, inMediaBody[1:]); !ok {
			return m, false
		}
	}
	if m.Track, rest, ok = cutQuoted(rest); !ok || !PlainJSONString(m.Track) {
		return m, false
	}
	var num []byte
	if rest, ok = bytes.CutPrefix(rest, inMediaChunk[1:]); !ok {
		return m, false
	}
	if num, rest, ok = cutQuoted(rest); !ok {
		return m, false
	}
	if m.Chunk, ok = parseDigits(num); !ok {
		return m, false
	}
	if rest, ok = bytes.CutPrefix(rest, inMediaTime[1:]); !ok {
		return m, false
	}
	if num, rest, ok = cutQuoted(rest); !ok {
		return m, false
	}
	if m.Timestamp, ok = parseDigits(num); !ok {
		return m, false
	}
	if rest, ok = bytes.CutPrefix(rest, inMediaPayload[1:]); !ok {
		return m, false
	}
	// The payload: base64's alphabet up to the quote.
	i := bytes.IndexByte(rest, '"')
	if i <= 0 || !payloadChars(rest[:i]) {
		return m, false
	}
	m.Payload, rest = rest[:i], rest[i+1:]
	if sidFirst {
		if !bytes.Equal(rest, []byte(`}}`)) {
			return m, false
		}
	} else {
		if rest, ok = bytes.CutPrefix(rest, inMediaSidTail[1:]); !ok {
			return m, false
		}
		if m.StreamSid, ok = bytes.CutSuffix(rest, []byte(`"}`)); !ok {
			return m, false
		}
	}
	if !sidToken(m.StreamSid) {
		return m, false
	}
	return m, true
}

// cutQuoted cuts b at its first '"', refusing a backslash before it: the
// string's body, decoded by JSON to itself, and what follows the quote.
func cutQuoted(b []byte) (body, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '"')
	if i < 0 {
		return nil, nil, false
	}
	body = b[:i]
	for _, c := range body {
		if c < 0x20 || c == '\\' {
			return nil, nil, false
		}
	}
	return body, b[i+1:], true
}

// notPayload is 1 for the bytes that are not in a padded standard base64
// payload, 0 for those that are.
var notPayload = notIn(func() (t [256]bool) {
	t = isBase64
	t['='] = true
	return t
}())

// payloadChars reports whether p holds only the bytes of a padded standard
// base64 payload (a 20 ms payload is 216 of them, the longest field of a
// media message).
func payloadChars(p []byte) bool { return onlyIn(p, &notPayload) }

// sidToken is CheckStreamSid for bytes, without allocating.
func sidToken(b []byte) bool {
	if len(b) == 0 || len(b) > MaxStreamSidLen {
		return false
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func digits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseDigits parses 1 to 18 decimal digits.
func parseDigits(b []byte) (int64, bool) {
	if len(b) > 18 || !digits(b) {
		return 0, false
	}
	var n int64
	for _, c := range b {
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// MediaOf returns the InboundMedia of a media message ParseMessage
// accepted, whose chunk and timestamp must be decimal integers.
func MediaOf(m *Message) (InboundMedia, error) {
	if m.Event != EventMedia || m.Media == nil {
		return InboundMedia{}, fmt.Errorf("%w: not a media message", ErrBadField)
	}
	chunk, err := strconv.ParseInt(m.Media.Chunk, 10, 64)
	if err != nil || chunk < 0 {
		return InboundMedia{}, fmt.Errorf("%w: media.chunk %.32q", ErrBadField, m.Media.Chunk)
	}
	ts, err := strconv.ParseInt(m.Media.Timestamp, 10, 64)
	if err != nil || ts < 0 {
		return InboundMedia{}, fmt.Errorf("%w: media.timestamp %.32q", ErrBadField, m.Media.Timestamp)
	}
	return InboundMedia{
		StreamSid: []byte(m.StreamSid), Track: []byte(m.Media.Track),
		Chunk: chunk, Timestamp: ts, Payload: []byte(m.Media.Payload),
	}, nil
}
