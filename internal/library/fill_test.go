package library

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/audio"
)

// TestSimultaneousMissesDecodeOnce: calls starting together on a new prompt
// share one transcode, all hear it whole, and it is cached as soon as the
// decode ends.
func TestSimultaneousMissesDecodeOnce(t *testing.T) {
	dir := t.TempDir()
	src := toneWAV(3*time.Second, 440)
	writeFile(t, dir, "prompt.wav", src)
	want := reference(t, src)
	l := newLibrary(t, Options{Dir: dir})
	// Hold the decode until every call has opened, as a decode slower than
	// the opens would: otherwise late opens may find the cache already.
	allOpen := make(chan struct{})
	l.fillStarting = func() { holdUntil(l, allOpen) }

	const n = 20
	streams := make([]*Stream, n)
	var opened sync.WaitGroup
	for i := range n {
		opened.Go(func() {
			s, err := l.Open(context.Background(), "prompt.wav")
			if err != nil {
				t.Error(err)
				return
			}
			streams[i] = s
		})
	}
	opened.Wait()
	close(allOpen)
	var read sync.WaitGroup
	got := make([][]byte, n)
	for i, s := range streams {
		if s == nil {
			t.FailNow()
		}
		read.Go(func() {
			defer s.Close()
			b, err := io.ReadAll(s)
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		})
	}
	read.Wait()
	for i, b := range got {
		if !bytes.Equal(b, want) {
			t.Fatalf("stream %d: %d bytes, want the transcoder's %d (equal %v)", i, len(b), len(want), bytes.Equal(b, want))
		}
	}
	st := l.Stats()
	if st.Transcodes != 1 || st.Misses != 1 || st.Joins != n-1 {
		t.Fatalf("%d simultaneous opens: %+v, want one transcode and %d joins", n, st, n-1)
	}
	waitFor(t, "the fill to be cached", func() bool { return l.Stats().Stored == 1 })
	if _, cached := play(t, l, "prompt.wav"); !cached {
		t.Fatal("not cached after the shared transcode")
	}
}

// TestFillFailureReachesEveryReader: a source that breaks part way gives
// every sharer the audio before the break, then the error, and is not
// cached.
func TestFillFailureReachesEveryReader(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "cut.mp3", readTestdata(t, "truncated.mp3"))
	l := newLibrary(t, Options{Dir: dir})
	bothOpen := make(chan struct{})
	l.fillStarting = func() { holdUntil(l, bothOpen) }
	a, err := l.Open(context.Background(), "cut.mp3")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := l.Open(context.Background(), "cut.mp3")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	close(bothOpen)
	ga, errA := io.ReadAll(a)
	gb, errB := io.ReadAll(b)
	if len(ga) == 0 || !bytes.Equal(ga, gb) {
		t.Fatalf("sharers read %d and %d bytes", len(ga), len(gb))
	}
	if !errors.Is(errA, audio.ErrTruncated) || !errors.Is(errB, audio.ErrTruncated) {
		t.Fatalf("sharers ended with %v / %v, want audio.ErrTruncated", errA, errB)
	}
	// The fill has ended (its readers saw the error): nothing was cached.
	if st := l.Stats(); st.Stored != 0 || st.Transcodes != 1 {
		t.Fatalf("a broken transcode was cached or decoded twice: %+v", st)
	}
}

// holdUntil blocks until c is closed or l is.
func holdUntil(l *Library, c <-chan struct{}) {
	select {
	case <-c:
	case <-l.ctx.Done():
	}
}
