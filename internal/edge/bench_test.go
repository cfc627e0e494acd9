package edge

import (
	"encoding/base64"
	"testing"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/twilio"
)

// BenchmarkRelayMedia is the edge's per-message hot path: a worker's 100 ms
// media message from the bus, checked and re-encoded for Twilio.
func BenchmarkRelayMedia(b *testing.B) {
	payload := base64.StdEncoding.EncodeToString(make([]byte, 800))
	msg := []byte(`{"event":"media","media":{"payload":"` + payload + `"}}`)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(800)
	for b.Loop() {
		out, err := bus.DecodeOut(msg)
		if err != nil {
			b.Fatal(err)
		}
		buf = twilio.AppendMediaBase64(buf[:0], "MZ0123456789abcdef0123456789abcdef", out.Media.Payload)
	}
}

// BenchmarkParseCallerMedia is what an inbound caller media message costs
// when decoded in full (the read loop skips it once the stream has started).
func BenchmarkParseCallerMedia(b *testing.B) {
	msg := []byte(`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` +
		base64.StdEncoding.EncodeToString(make([]byte, 160)) + `"},"streamSid":"MZ0123456789abcdef0123456789abcdef"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := twilio.ParseMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}
