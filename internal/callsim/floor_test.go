package callsim

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/calltest"
)

func serveFloor(t *testing.T, cfg FloorConfig) string {
	t.Helper()
	f, err := NewFloor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return "ws://" + calltest.Serve(t, "floor", f) + "/media-stream"
}

// TestFloorPlaysTheClip: a call to the floor hears the clip byte for byte,
// in 200 ms messages each followed by a mark, never more than the lead
// ahead of what it has heard.
func TestFloorPlaysTheClip(t *testing.T) {
	calltest.CheckGoroutines(t)
	clip := make([]byte, 8000*3+800) // 3.1 s: the last message is short
	for i := range clip {
		clip[i] = byte(i % 251)
	}
	url := serveFloor(t, FloorConfig{Clip: clip, Lead: time.Second})
	c, err := Dial(testCtx(t), Config{URL: url, Speed: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Every mark echoed: the clip has played (however slowly the machine
	// lets the floor send it).
	deadline := time.Now().Add(30 * time.Second)
	for c.Stats().Echoed < 16 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if !bytes.Equal(c.Played(), clip) {
		t.Errorf("played %d bytes, want the %d of the clip", len(c.Played()), len(clip))
	}
	if st.Media != 16 || st.Marks != 16 || st.Echoed != 16 {
		t.Errorf("%d media, %d marks, %d echoed; want 16 each", st.Media, st.Marks, st.Echoed)
	}
	if st.MaxBuffered > time.Second+200*time.Millisecond {
		t.Errorf("max buffered %v, want at most the lead and a chunk", st.MaxBuffered)
	}
	if st.Errors != 0 || c.Err() != nil {
		t.Errorf("errors %d (%v), err %v", st.Errors, c.Errs(), c.Err())
	}
}

// TestFloorShutdownEndsCalls: Shutdown closes the calls in progress and
// waits for their goroutines.
func TestFloorShutdownEndsCalls(t *testing.T) {
	calltest.CheckGoroutines(t)
	f, err := NewFloor(FloorConfig{Clip: make([]byte, 8000*60)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln) }()
	c, err := Dial(testCtx(t), Config{URL: "ws://" + ln.Addr().String() + "/media-stream"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Media == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no audio")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the call did not end with the floor")
	}
}
