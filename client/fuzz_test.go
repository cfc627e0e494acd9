package client

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
)

// FuzzReplies feeds the client's own decoding of outside bytes (a listen
// reply, the headers of a caller audio message) anything: an error of the
// client's, or a lease the renewal loop can live with, never a panic.
func FuzzReplies(f *testing.F) {
	for _, s := range []string{
		`{"type":"callcast.listen.reply.v1","leaseMs":10000,"subject":"callcast.stream.MZ1.in"}`,
		`{"type":"callcast.listen.reply.v1","error":{"code":"unknown_stream","message":"x"}}`,
		`{"type":"callcast.listen.reply.v1","leaseMs":-5}`,
		`{"type":"callcast.listen.reply.v1","leaseMs":9223372036854775807}`,
		`{"type":"callcast.listen.reply.v1","subject":"callcast.stream.MZ2.in"}`,
		`null`, `[]`, ``,
	} {
		f.Add([]byte(s), "12", "20")
	}
	f.Fuzz(func(t *testing.T, data []byte, seq, ts string) {
		lease, err := leaseOf(data, "MZ1")
		if err != nil {
			var e *Error
			if !errors.Is(err, ErrBadReply) && !errors.As(err, &e) {
				t.Fatalf("error %v is neither ErrBadReply nor an *Error", err)
			}
		} else if lease <= 0 || lease > time.Hour {
			t.Fatalf("lease %v from %q", lease, data)
		}
		msg := &nats.Msg{Data: data, Header: nats.Header{}}
		msg.Header.Set(bus.HeaderSeq, seq)
		msg.Header.Set(bus.HeaderTimestamp, ts)
		if c := chunkOf(msg); len(c.Audio) != len(data) {
			t.Fatalf("chunk of %d bytes from %d", len(c.Audio), len(data))
		}
	})
}
