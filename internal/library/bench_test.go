package library

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/audio"
)

// firstAudio opens name and reads its first 100 ms message, as a worker
// does before it publishes the first frame.
func firstAudio(tb testing.TB, l *Library, name string, buf []byte) {
	s, err := l.Open(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.ReadFull(s, buf); err != nil {
		tb.Fatal(err)
	}
	s.Close()
}

// BenchmarkFirstAudio measures Open to the first 100 ms of μ-law: from
// memory, from the shared cache, and transcoding (local file, no cache).
func BenchmarkFirstAudio(b *testing.B) {
	dir := b.TempDir()
	writeFile(b, dir, "speech.mp3", readTestdata(b, "speech.mp3"))
	ns := runNATS(b, true)
	js := connectJS(b, ns)
	warm := newLibrary(b, Options{Dir: dir, JS: js})
	play(b, warm, "speech.mp3")
	waitFor(b, "the shared cache write", func() bool { return warm.Stats().SharedStored == 1 })

	tests := []struct {
		name   string
		lib    *Library
		cached bool
	}{
		{"memory", warm, true},
		{"shared", newLibrary(b, Options{Dir: dir, JS: js, MemoryBytes: -1}), true},
		{"transcode", newLibrary(b, Options{Dir: dir, MemoryBytes: -1}), false},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			buf := make([]byte, 5*audio.FrameSize)
			before := tt.lib.Stats().Transcodes
			b.ReportAllocs()
			for b.Loop() {
				firstAudio(b, tt.lib, "speech.mp3", buf)
			}
			if decoded := tt.lib.Stats().Transcodes != before; decoded == tt.cached {
				b.Fatalf("decoded %v, want %v", decoded, !tt.cached)
			}
		})
	}
}

// TestMemoryHitAllocs bounds the allocations of a memory hit: opening the
// file to check it is unchanged, and the Stream.
func TestMemoryHitAllocs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "tone.wav", toneWAV(time.Second, 440))
	l := newLibrary(t, Options{Dir: dir})
	play(t, l, "tone.wav")
	buf := make([]byte, 5*audio.FrameSize)
	allocs := testing.AllocsPerRun(100, func() { firstAudio(t, l, "tone.wav", buf) })
	t.Logf("%.0f allocations a memory hit", allocs)
	if allocs > 20 {
		t.Errorf("%.0f allocations a memory hit, want <= 20", allocs)
	}
}
