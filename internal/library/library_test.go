package library

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/audio"
)

// testdata: speech.mp3 is 22.05 kHz mono VBR speech and truncated.mp3 the
// first 5000 bytes of a 44.1 kHz MP3, both from internal/audio/testdata
// (see its gen.sh).

// runNATS starts an in-process NATS server, with JetStream when js is set.
func runNATS(t testing.TB, js bool) *server.Server {
	t.Helper()
	opts := &server.Options{DontListen: true, NoLog: true, NoSigs: true, JetStream: js}
	if js {
		opts.StoreDir = t.TempDir()
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats: not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func connectJS(t testing.TB, ns *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func newLibrary(t testing.TB, o Options) *Library {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return l
}

// toneWAV is d of a sine at freq Hz as a 16 kHz 16-bit mono WAV, which the
// transcoder resamples.
func toneWAV(d time.Duration, freq float64) []byte {
	const rate = 16000
	n := int(d.Seconds() * rate)
	b := make([]byte, 44+2*n)
	le := binary.LittleEndian
	copy(b, "RIFF")
	le.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], 1)
	le.PutUint16(b[22:], 1)
	le.PutUint32(b[24:], rate)
	le.PutUint32(b[28:], 2*rate)
	le.PutUint16(b[32:], 2)
	le.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		le.PutUint16(b[44+2*i:], uint16(int16(8000*math.Sin(2*math.Pi*freq*float64(i)/rate))))
	}
	return b
}

func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reference is what the transcoder makes of src.
func reference(t testing.TB, src []byte) []byte {
	t.Helper()
	tr, err := audio.NewTranscoder(bytes.NewReader(src), audio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// play opens name and reads it to the end.
func play(t testing.TB, l *Library, name string) (data []byte, cached bool) {
	t.Helper()
	s, err := l.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("open %q: %v", name, err)
	}
	defer s.Close()
	data, err = io.ReadAll(s)
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	return data, s.Cached()
}

// waitFor polls cond until it holds or 5 s pass.
// idle reports whether l has no transcode running in the background: no
// Stream finished after its Close and no fill in progress.
func (l *Library) idle() bool {
	l.fillMu.Lock()
	defer l.fillMu.Unlock()
	return len(l.finishers) == 0 && len(l.fills) == 0
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestMissThenHit(t *testing.T) {
	dir := t.TempDir()
	src := toneWAV(2*time.Second, 440)
	writeFile(t, dir, "tone.wav", src)
	writeFile(t, dir, "same/tone-copy.wav", src)
	want := reference(t, src)
	l := newLibrary(t, Options{Dir: dir})

	got, cached := play(t, l, "tone.wav")
	if cached || !bytes.Equal(got, want) {
		t.Fatalf("first play: cached %v, %d bytes equal to the transcoder's %d: %v", cached, len(got), len(want), bytes.Equal(got, want))
	}
	st := l.Stats()
	if st.Misses != 1 || st.Stored != 1 || st.MemoryEntries != 1 || st.MemoryBytes != int64(len(want)) || st.Transcodes != 1 {
		t.Fatalf("after a miss: %+v", st)
	}

	tests := []struct {
		name, audio string
	}{
		{"same name", "tone.wav"},
		{"cleaned name", "./tone.wav"},
		{"same content, other name", "same/tone-copy.wav"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cached := play(t, l, tt.audio)
			if !cached || !bytes.Equal(got, want) {
				t.Fatalf("cached %v, bytes equal %v", cached, bytes.Equal(got, want))
			}
		})
	}
	if st := l.Stats(); st.Transcodes != 1 || st.MemoryHits != 3 {
		t.Fatalf("hits decoded: %+v", st)
	}

	// Probe: from the cache, with the exact duration.
	info, err := l.Probe(context.Background(), "tone.wav")
	if err != nil {
		t.Fatal(err)
	}
	if info.Duration != 2*time.Second || info.Format != "wav-pcm16" || info.SampleRate != 16000 || info.Channels != 1 {
		t.Errorf("probe: %+v", info)
	}
	if st := l.Stats(); st.Transcodes != 1 {
		t.Errorf("probe of a cached source decoded: %+v", st)
	}

	// New content under the same name is a miss: the key is the content.
	time.Sleep(10 * time.Millisecond) // a different modification time
	src2 := toneWAV(time.Second, 880)
	writeFile(t, dir, "tone.wav", src2)
	got, cached = play(t, l, "tone.wav")
	if cached || !bytes.Equal(got, reference(t, src2)) {
		t.Fatalf("changed file: cached %v, bytes equal %v", cached, bytes.Equal(got, reference(t, src2)))
	}
}

func TestMemoryEviction(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"a.wav", "b.wav", "c.wav"} {
		writeFile(t, dir, name, toneWAV(time.Second, 300+float64(100*i)))
	}
	// Room for two seconds of μ-law: two of the three.
	l := newLibrary(t, Options{Dir: dir, MemoryBytes: 2*audio.SampleRate + 100})
	play(t, l, "a.wav")
	play(t, l, "b.wav")
	if _, cached := play(t, l, "a.wav"); !cached { // a is now the most recent
		t.Fatal("a not cached")
	}
	play(t, l, "c.wav") // evicts b, the least recently used
	st := l.Stats()
	if st.Evictions != 1 || st.MemoryEntries != 2 || st.MemoryBytes != 2*audio.SampleRate {
		t.Fatalf("after the third source: %+v", st)
	}
	tests := []struct {
		audio  string
		cached bool
	}{
		{"a.wav", true},
		{"c.wav", true},
		{"b.wav", false}, // evicted; playing it evicts a
		{"c.wav", true},
		{"a.wav", false},
	}
	for _, tt := range tests {
		if _, cached := play(t, l, tt.audio); cached != tt.cached {
			t.Errorf("%s: cached %v, want %v (%+v)", tt.audio, cached, tt.cached, l.Stats())
		}
	}

	t.Run("larger than the cache", func(t *testing.T) {
		writeFile(t, dir, "long.wav", toneWAV(3*time.Second, 500))
		play(t, l, "long.wav")
		if _, cached := play(t, l, "long.wav"); cached {
			t.Error("an entry larger than the whole cache was kept")
		}
	})
	t.Run("no memory cache", func(t *testing.T) {
		l := newLibrary(t, Options{Dir: dir, MemoryBytes: -1})
		play(t, l, "a.wav")
		if _, cached := play(t, l, "a.wav"); cached {
			t.Error("cached with MemoryBytes < 0")
		}
	})
}

func TestFailedAndPartialTranscodesAreNotCached(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "truncated.mp3", readTestdata(t, "truncated.mp3"))
	writeFile(t, dir, "not-audio.mp3", []byte("this is not audio at all, only text"))
	writeFile(t, dir, "long.wav", toneWAV(3*time.Second, 440))
	l := newLibrary(t, Options{Dir: dir, MaxEntryBytes: 2 * audio.SampleRate})

	t.Run("truncated, read to the end", func(t *testing.T) {
		s, err := l.Open(context.Background(), "truncated.mp3")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, s)
		s.Close()
		if !errors.Is(err, audio.ErrTruncated) || n == 0 {
			t.Fatalf("read %d bytes, err %v; want some audio, then ErrTruncated", n, err)
		}
	})
	t.Run("truncated, stopped early", func(t *testing.T) {
		s, err := l.Open(context.Background(), "truncated.mp3")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, make([]byte, audio.FrameSize)); err != nil {
			t.Fatal(err)
		}
		s.Close() // finished in the background, to ErrTruncated
	})
	t.Run("not audio", func(t *testing.T) {
		if _, err := l.Open(context.Background(), "not-audio.mp3"); !errors.Is(err, audio.ErrBadInput) {
			t.Fatalf("open: %v, want ErrBadInput", err)
		}
	})
	t.Run("longer than MaxEntryBytes", func(t *testing.T) {
		got, _ := play(t, l, "long.wav")
		if len(got) != 3*audio.SampleRate {
			t.Fatalf("played %d bytes", len(got))
		}
	})
	waitFor(t, "background work", func() bool { return l.idle() })
	if st := l.Stats(); st.Stored != 0 || st.MemoryEntries != 0 || l.pending.Load() != 0 {
		t.Fatalf("stored: %+v, pending %d", st, l.pending.Load())
	}
	for _, name := range []string{"truncated.mp3", "long.wav"} {
		s, err := l.Open(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if s.Cached() {
			t.Errorf("%s was cached", name)
		}
		s.Close()
	}
}

func TestStoppedEarlyIsFinishedAndCached(t *testing.T) {
	dir := t.TempDir()
	src := readTestdata(t, "speech.mp3")
	writeFile(t, dir, "speech.mp3", src)
	l := newLibrary(t, Options{Dir: dir})
	s, err := l.Open(context.Background(), "speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 800)); err != nil {
		t.Fatal(err)
	}
	s.Close() // a caller hung up after 100 ms
	waitFor(t, "the rest to be transcoded", func() bool { return l.Stats().Stored == 1 })
	got, cached := play(t, l, "speech.mp3")
	if want := reference(t, src); !cached || !bytes.Equal(got, want) {
		t.Fatalf("cached %v, %d bytes, want %d equal to the transcoder's", cached, len(got), len(want))
	}
}

func TestSharedCacheWarmsARestartedWorker(t *testing.T) {
	ns := runNATS(t, true)
	dir := t.TempDir()
	src := readTestdata(t, "speech.mp3")
	writeFile(t, dir, "speech.mp3", src)
	want := reference(t, src)

	first := newLibrary(t, Options{Dir: dir, JS: connectJS(t, ns)})
	if !first.Shared() {
		t.Fatal("no shared cache")
	}
	if got, cached := play(t, first, "speech.mp3"); cached || !bytes.Equal(got, want) {
		t.Fatalf("first play: cached %v, equal %v", cached, bytes.Equal(got, want))
	}
	waitFor(t, "the shared cache write", func() bool { return first.Stats().SharedStored == 1 })

	// The object is the raw μ-law under "<sha256>.<pipeline version>".
	obs, err := connectJS(t, ns).ObjectStore(context.Background(), CacheBucket)
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("%x.%s", sha256.Sum256(src), audio.PipelineVersion)
	stored, err := obs.GetBytes(context.Background(), key)
	if err != nil || !bytes.Equal(stored, want) {
		t.Fatalf("cache object %s: %v, equal %v", key, err, bytes.Equal(stored, want))
	}

	// A restarted worker: empty memory, its own connection.
	restarted := newLibrary(t, Options{Dir: dir, JS: connectJS(t, ns)})
	info, err := restarted.Probe(context.Background(), "speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != "mp3" || info.SampleRate != 22050 || info.Channels != 1 ||
		info.Duration != time.Duration(len(want))*time.Second/audio.SampleRate {
		t.Errorf("probe from the shared cache: %+v", info)
	}
	got, cached := play(t, restarted, "speech.mp3")
	if !cached || !bytes.Equal(got, want) {
		t.Fatalf("restarted worker: cached %v, equal %v", cached, bytes.Equal(got, want))
	}
	if _, cached := play(t, restarted, "speech.mp3"); !cached {
		t.Fatal("not kept in memory after the shared hit")
	}
	st := restarted.Stats()
	if st.Transcodes != 0 || st.SharedHits != 2 || st.MemoryHits != 1 || st.Misses != 0 {
		t.Fatalf("restarted worker decoded or missed: %+v", st)
	}
	if first.Stats().SharedStored != 1 || restarted.Stats().SharedStored != 0 {
		t.Errorf("written to the shared cache more than once")
	}
}

func TestObjectStoreLibrary(t *testing.T) {
	ns := runNATS(t, true)
	src := readTestdata(t, "speech.mp3")
	want := reference(t, src)
	producer := newLibrary(t, Options{JS: connectJS(t, ns)})

	up, err := producer.Put(context.Background(), "prompts/welcome.mp3", bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if up.Name != "prompts/welcome.mp3" || up.Size != int64(len(src)) || up.SHA256 != fmt.Sprintf("%x", sha256.Sum256(src)) ||
		!up.Cached || up.Info.Format != "mp3" || up.Info.Duration != time.Duration(len(want))*time.Second/audio.SampleRate {
		t.Fatalf("put: %+v", up)
	}

	t.Run("played by name on another worker, from the shared cache", func(t *testing.T) {
		w := newLibrary(t, Options{Dir: t.TempDir(), JS: connectJS(t, ns)})
		got, cached := play(t, w, "prompts/welcome.mp3")
		if !cached || !bytes.Equal(got, want) || w.Stats().Transcodes != 0 {
			t.Fatalf("cached %v, equal %v, %+v", cached, bytes.Equal(got, want), w.Stats())
		}
	})

	// An object put by any Object Store client (nats object put) is
	// transcoded on its first play, then cached.
	js := connectJS(t, ns)
	obs, err := js.ObjectStore(context.Background(), AudioBucket)
	if err != nil {
		t.Fatal(err)
	}
	tone := toneWAV(time.Second, 440)
	if _, err := obs.PutBytes(context.Background(), "tone.wav", tone); err != nil {
		t.Fatal(err)
	}
	t.Run("put by another client: miss, then hit", func(t *testing.T) {
		w := newLibrary(t, Options{JS: connectJS(t, ns)})
		info, err := w.Probe(context.Background(), "tone.wav")
		if err != nil || info.Format != "wav-pcm16" || info.Duration != time.Second {
			t.Fatalf("probe: %+v, %v", info, err)
		}
		got, cached := play(t, w, "tone.wav")
		if cached || !bytes.Equal(got, reference(t, tone)) {
			t.Fatalf("first play: cached %v, equal %v", cached, bytes.Equal(got, reference(t, tone)))
		}
		if _, cached := play(t, w, "tone.wav"); !cached {
			t.Fatal("second play not cached")
		}
		waitFor(t, "the shared cache write", func() bool { return w.Stats().SharedStored == 1 })
	})
	t.Run("replaced object plays its new content", func(t *testing.T) {
		w := newLibrary(t, Options{JS: connectJS(t, ns)})
		play(t, w, "tone.wav")
		tone2 := toneWAV(time.Second/2, 660)
		if _, err := obs.PutBytes(context.Background(), "tone.wav", tone2); err != nil {
			t.Fatal(err)
		}
		if got, cached := play(t, w, "tone.wav"); cached || !bytes.Equal(got, reference(t, tone2)) {
			t.Fatalf("cached %v, equal %v", cached, bytes.Equal(got, reference(t, tone2)))
		}
	})
	t.Run("a local file shadows an object", func(t *testing.T) {
		dir := t.TempDir()
		local := toneWAV(time.Second/4, 1000)
		writeFile(t, dir, "prompts/welcome.mp3", local)
		w := newLibrary(t, Options{Dir: dir, JS: connectJS(t, ns)})
		if got, _ := play(t, w, "prompts/welcome.mp3"); !bytes.Equal(got, reference(t, local)) {
			t.Fatal("did not play the local file")
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := producer.Open(context.Background(), "nope.mp3"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("open: %v, want ErrNotFound", err)
		}
		if _, err := producer.Probe(context.Background(), "nope.mp3"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("probe: %v, want ErrNotFound", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		w := newLibrary(t, Options{JS: connectJS(t, ns), MaxFileSize: 1000})
		if _, err := w.Open(context.Background(), "tone.wav"); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("open: %v, want ErrTooLarge", err)
		}
	})
}

func TestPutRefuses(t *testing.T) {
	ns := runNATS(t, true)
	l := newLibrary(t, Options{JS: connectJS(t, ns), MaxFileSize: 64 << 10})
	speech := readTestdata(t, "speech.mp3")
	tests := []struct {
		name, audio string
		data        []byte
		want        error
	}{
		{"empty name", "", speech, ErrBadName},
		{"traversal", "../speech.mp3", speech, ErrBadName},
		{"absolute", "/speech.mp3", speech, ErrBadName},
		{"backslash", `a\speech.mp3`, speech, ErrBadName},
		{"NUL", "a\x00.mp3", speech, ErrBadName},
		{"dot", ".", speech, ErrBadName},
		{"too long", strings.Repeat("a", MaxNameLen+1), speech, ErrBadName},
		{"too large", "big.wav", toneWAV(3*time.Second, 440), ErrTooLarge},
		{"empty", "empty.mp3", nil, audio.ErrBadInput},
		{"not audio", "text.mp3", []byte("hello, this is text"), audio.ErrBadInput},
		{"unsupported", "song.ogg", append([]byte("OggS"), make([]byte, 100)...), audio.ErrUnsupported},
		{"truncated", "truncated.mp3", readTestdata(t, "truncated.mp3"), audio.ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Put(context.Background(), tt.audio, bytes.NewReader(tt.data))
			if !errors.Is(err, tt.want) {
				t.Fatalf("put: %v, want %v", err, tt.want)
			}
		})
	}
	obs, err := connectJS(t, ns).ObjectStore(context.Background(), AudioBucket)
	if err != nil {
		t.Fatal(err)
	}
	if list, err := obs.List(context.Background()); !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Fatalf("refused puts stored objects: %v %v", list, err)
	}
}

func TestWithoutJetStream(t *testing.T) {
	ns := runNATS(t, false)
	dir := t.TempDir()
	writeFile(t, dir, "tone.wav", toneWAV(time.Second, 440))
	l := newLibrary(t, Options{Dir: dir, JS: connectJS(t, ns)})
	if l.Shared() {
		t.Fatal("shared cache without JetStream")
	}
	play(t, l, "tone.wav")
	if _, cached := play(t, l, "tone.wav"); !cached {
		t.Error("no memory cache without JetStream")
	}
	if _, err := l.Open(context.Background(), "nope.wav"); !errors.Is(err, ErrNotFound) {
		t.Errorf("open missing: %v, want ErrNotFound", err)
	}
	if _, err := l.Put(context.Background(), "x.wav", bytes.NewReader(toneWAV(time.Second, 440))); !errors.Is(err, ErrNoStore) {
		t.Errorf("put: %v, want ErrNoStore", err)
	}
}

func TestJetStreamLateStart(t *testing.T) {
	// A worker that starts before JetStream is reachable binds the buckets
	// later, in the background.
	ns := runNATS(t, true)
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // New cannot reach the buckets
	l, err := New(ctx, Options{JS: js})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Shared() {
		t.Fatal("bound with a cancelled context")
	}
	l.bindMu.Lock()
	l.nextBind = time.Time{} // do not wait rebindInterval
	l.bindMu.Unlock()
	// Whether x.wav exists cannot be known yet: unavailable, not unknown.
	if _, err := l.Open(context.Background(), "x.wav"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("open: %v, want ErrUnavailable", err)
	}
	waitFor(t, "the buckets", l.Shared)
	if _, err := l.Open(context.Background(), "x.wav"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open once bound: %v, want ErrNotFound", err)
	}
}
