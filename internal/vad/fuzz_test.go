package vad

import (
	"encoding/binary"
	"testing"
)

// FuzzProcess feeds arbitrary bytes in arbitrary pieces at arbitrary
// timestamps: no panic, and the events stay well formed.
func FuzzProcess(f *testing.F) {
	f.Add([]byte{0xFF, 0x00, 0x7F, 0x80}, uint16(160), int64(0))
	f.Add(burst(1, 1200, 200, 700, -50, -20), uint16(160), int64(20))
	f.Add(burst(2, 1200, 100, 900, -40, -10), uint16(3), int64(-1<<40))
	f.Fuzz(func(t *testing.T, b []byte, size uint16, ts int64) {
		d := New(Config{StartMs: 20, HangoverMs: 40})
		chunk := max(1, int(size))
		var evs []Event
		for i := 0; i < len(b); i += chunk {
			piece := b[i:min(len(b), i+chunk)]
			// Timestamps from the bytes: jumps back and forth too.
			step := int64(len(piece)) / 8
			if len(piece) >= 2 {
				step = int64(int16(binary.LittleEndian.Uint16(piece)))
			}
			for ev, ok := d.Process(piece, ts); ok; ev, ok = d.Next() {
				evs = append(evs, ev)
			}
			ts += step
		}
		for i, ev := range evs {
			want := SpeechStarted
			if i%2 == 1 {
				want = SpeechStopped
			}
			if ev.Kind != want || ev.DurationMs < 0 || (ev.Kind == SpeechStarted && ev.DurationMs != 0) {
				t.Fatalf("event %d: %+v in %+v", i, ev, evs)
			}
		}
	})
}
