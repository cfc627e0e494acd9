package callsim

import (
	"bytes"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/audio"
)

func TestStamp(t *testing.T) {
	frame := make([]byte, FrameBytes)
	before := time.Now()
	if _, err := (stampReader{}).Read(frame); err != nil {
		t.Fatal(err)
	}
	got, ok := readStamp(frame)
	if !ok || got.Before(before.Truncate(time.Nanosecond)) || time.Since(got) > time.Second {
		t.Fatalf("stamp %v (%v), read at %v", got, ok, before)
	}
	// A stamp is quiet: within 16 μ-law steps of silence.
	for i, b := range frame {
		if s := audio.DecodeMulaw(b); s > 120 || s < -120 {
			t.Fatalf("byte %d = %#x decodes to %d", i, b, s)
		}
	}
	if _, ok := readStamp(make([]byte, FrameBytes)); ok {
		t.Fatal("zeros read as a stamp")
	}
}

// TestCallerFrameAllocs: a stamped caller frame and its media message
// cost the load generator no allocation, fifty a second per call.
func TestCallerFrameAllocs(t *testing.T) {
	frame := make([]byte, FrameBytes)
	buf := make([]byte, 0, 512)
	var src stampReader
	if n := testing.AllocsPerRun(100, func() {
		_, _ = src.Read(frame)
		buf = appendCallerMedia(buf[:0], 7, "MZ0123456789abcdef0123456789abcdef", 5, 80, frame)
	}); n != 0 {
		t.Fatalf("%v allocations per frame, want 0", n)
	}
	if _, ok := readStamp(frame); !ok {
		t.Fatal("frame not stamped")
	}
}

// TestRestamp: the stamp is replaced and the old one returned; a frame
// without one is left alone.
func TestRestamp(t *testing.T) {
	frame := make([]byte, FrameBytes)
	var src stampReader
	_, _ = src.Read(frame)
	was, _ := readStamp(frame)
	at := was.Add(3 * time.Millisecond)
	if got, ok := Restamp(frame, at); !ok || !got.Equal(was) {
		t.Fatalf("Restamp returned %v, %v; want %v", got, ok, was)
	}
	if got, ok := readStamp(frame); !ok || !got.Equal(at) {
		t.Fatalf("stamp now %v, want %v", got, at)
	}
	quiet := bytes.Repeat([]byte{0xFF}, FrameBytes)
	if _, ok := Restamp(quiet, at); ok || !bytes.Equal(quiet, bytes.Repeat([]byte{0xFF}, FrameBytes)) {
		t.Fatal("a frame without a stamp was restamped")
	}
}
