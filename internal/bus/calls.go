package bus

import (
	"bytes"
	"fmt"
	"time"
)

// MaxCallsPerReply bounds the calls one CallsReply may list; an edge
// holding more answers with several replies.
const MaxCallsPerReply = 1000

// DecodeCallsRequest decodes and checks a CallsRequest. An empty body is a
// request too.
func DecodeCallsRequest(data []byte) (*CallsRequest, error) {
	var m CallsRequest
	if len(bytes.TrimSpace(data)) == 0 {
		return &m, nil
	}
	if err := decode(data, &m); err != nil {
		return nil, err
	}
	if m.Type != "" && m.Type != TypeCallsRequest {
		return nil, fmt.Errorf("%w: type %.64q, want %q", ErrBadMessage, m.Type, TypeCallsRequest)
	}
	return &m, nil
}

// DecodeCallsReply decodes and checks a CallsReply: every call has a
// usable stream SID and an RFC 3339 start time.
func DecodeCallsReply(data []byte) (*CallsReply, error) {
	var m CallsReply
	if err := decode(data, &m); err != nil {
		return nil, err
	}
	if m.Type != TypeCallsReply {
		return nil, fmt.Errorf("%w: type %.64q, want %q", ErrBadMessage, m.Type, TypeCallsReply)
	}
	if len(m.Calls) > MaxCallsPerReply {
		return nil, fmt.Errorf("%w: %d calls in one reply, limit %d", ErrBadMessage, len(m.Calls), MaxCallsPerReply)
	}
	for i := range m.Calls {
		c := &m.Calls[i]
		if err := CheckStreamSid(c.StreamSid); err != nil {
			return nil, fmt.Errorf("%w: call %d: %w", ErrBadMessage, i, err)
		}
		if _, err := time.Parse(time.RFC3339, c.StartedAt); err != nil {
			return nil, fmt.Errorf("%w: call %d: startedAt %.40q is not RFC 3339", ErrBadMessage, i, c.StartedAt)
		}
	}
	return &m, nil
}
