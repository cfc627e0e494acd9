package client_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/client"
	"github.com/callcast/callcast/internal/bus"
)

// BenchmarkStreamWrite publishes 20 ms chunks of 24 kHz mono PCM, a TTS
// engine's usual, through a StreamWriter to an in-process NATS server that
// delivers them to a subscriber, as to the edge.
func BenchmarkStreamWrite(b *testing.B) {
	nc := natsConn(b, 0)
	var got atomic.Int64
	respond(b, nc, bus.SubjectPlay, func(*nats.Msg) []byte {
		sub, err := nc.Subscribe(bus.PlaybackAudio("pb1"), func(m *nats.Msg) { got.Add(int64(len(m.Data))) })
		if err != nil {
			b.Error(err)
		}
		b.Cleanup(func() { _ = sub.Unsubscribe() })
		_ = sub.SetPendingLimits(-1, -1)
		return mustJSON(b, bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: "pb1", AudioSubject: bus.PlaybackAudio("pb1")})
	})
	c := client.New(nc, client.Options{})
	w, err := c.Stream(context.Background(), sid, client.PCM(24000, 1), client.PlayOptions{})
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 960)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}
