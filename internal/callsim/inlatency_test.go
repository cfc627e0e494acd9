package callsim

import (
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
