package client_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/client"
	"github.com/callcast/callcast/internal/bus"
)

// A StreamWriter's Write of one chunk allocates three times: the
// Callcast-Seq value, and nats.go's encoding of the headers (two). The
// message itself is reused: NATS copies it out before Write returns.
func TestStreamWriteAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	nc := natsConn(t, 0)
	respond(t, nc, bus.SubjectPlay, func(*nats.Msg) []byte {
		return mustJSON(t, bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: "pb1", AudioSubject: bus.PlaybackAudio("pb1")})
	})
	w, err := client.New(nc, client.Options{}).Stream(context.Background(), sid, client.PCM(24000, 1), client.PlayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	chunk := make([]byte, 960)
	if n := testing.AllocsPerRun(1000, func() { _, _ = w.Write(chunk) }); n > 3 {
		t.Errorf("%.1f allocations per Write, want at most 3", n)
	}
}
