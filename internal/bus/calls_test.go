package bus

import (
	"errors"
	"testing"
)

func init() {
	decoders["CallsRequest"] = func(b []byte) error { _, err := DecodeCallsRequest(b); return err }
	decoders["CallsReply"] = func(b []byte) error { _, err := DecodeCallsReply(b); return err }
}

func TestDecodeCalls(t *testing.T) {
	requests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"empty body", "", true},
		{"blank body", " \n", true},
		{"empty object", "{}", true},
		{"typed", `{"type":"callcast.calls.v1"}`, true},
		{"other type", `{"type":"callcast.play.v1"}`, false},
		{"not json", `calls please`, false},
	}
	for _, tt := range requests {
		t.Run("request/"+tt.name, func(t *testing.T) {
			_, err := DecodeCallsRequest([]byte(tt.in))
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrBadMessage) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	replies := []struct {
		name string
		in   string
		ok   bool
	}{
		{"no calls", `{"type":"callcast.calls.reply.v1","edge":"e1","calls":[]}`, true},
		{"a call", `{"type":"callcast.calls.reply.v1","edge":"e1","calls":[{"streamSid":"MZ1","callSid":"CA1","customParameters":{"a":"b"},"startedAt":"2026-11-27T06:00:00.123Z"}]}`, true},
		{"no type", `{"edge":"e1","calls":[]}`, false},
		{"bad sid", `{"type":"callcast.calls.reply.v1","calls":[{"streamSid":"MZ.>","startedAt":"2026-11-27T06:00:00Z"}]}`, false},
		{"no startedAt", `{"type":"callcast.calls.reply.v1","calls":[{"streamSid":"MZ1"}]}`, false},
		{"bad startedAt", `{"type":"callcast.calls.reply.v1","calls":[{"streamSid":"MZ1","startedAt":"yesterday"}]}`, false},
		{"calls not a list", `{"type":"callcast.calls.reply.v1","calls":{}}`, false},
	}
	for _, tt := range replies {
		t.Run("reply/"+tt.name, func(t *testing.T) {
			_, err := DecodeCallsReply([]byte(tt.in))
			if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrBadMessage) {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
