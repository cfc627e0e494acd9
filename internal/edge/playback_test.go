package edge

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
)

// TestSilentWorkersExhaustAttempts: workers that take a playback and never
// send anything are replaced, attempt after attempt, until RenderAttempts
// is used up and the producer hears playback.failed.
func TestSilentWorkersExhaustAttempts(t *testing.T) {
	const timeout = 150 * time.Millisecond
	addr, nc := serve(t, Config{RenderTimeout: timeout, RenderAttempts: 3})
	var mu sync.Mutex
	var attempts []int
	sub, err := nc.Subscribe(bus.SubjectRender, func(m *nats.Msg) {
		rr, err := bus.DecodeRenderRequest(m.Data)
		if err != nil {
			t.Errorf("render request: %v", err)
			return
		}
		mu.Lock()
		attempts = append(attempts, rr.Attempt)
		mu.Unlock()
		reply, _ := json.Marshal(bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: rr.PlaybackID})
		_ = m.Respond(reply) // accepted, and then silence
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	p := dialPeer(t, addr)
	events := subscribe(t, nc, bus.StreamEvents(p.sid))
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	p.start(nil)
	started.wait(t, 1)
	req, _ := json.Marshal(bus.Enqueue{Type: bus.TypeEnqueue, PlaybackID: "pb1", Audio: "a.mp3", Mode: bus.ModeQueue})
	begin := time.Now()
	if _, err := nc.Request(bus.StreamPlay(p.sid), req, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	evs := events.events(t, 1)
	took := time.Since(begin)
	if evs[0].Event != bus.EventPlaybackFailed || evs[0].Error == nil || evs[0].Error.Code != bus.CodeNoWorkers {
		t.Fatalf("event %+v %+v, want playback.failed no_workers", evs[0], evs[0].Error)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 3 || attempts[0] != 0 || attempts[1] != 1 || attempts[2] != 2 {
		t.Fatalf("render attempts %v, want [0 1 2]", attempts)
	}
	if took < 3*timeout {
		t.Errorf("failed after %s, before three silences of %s", took, timeout)
	}
	t.Logf("three silent workers, then playback.failed after %s", took.Round(time.Millisecond))
}
