package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/library"
	"github.com/callcast/callcast/internal/worker"
)

// jsSystem is the product on loopback with JetStream, with no local audio
// and a worker that can be restarted.
type jsSystem struct {
	*system
	ns *server.Server

	wnc  *nats.Conn
	reg  *prometheus.Registry // the running worker's metrics
	stop func()               // shuts the running worker down, once
}

func startJSSystem(t *testing.T, opts ...func(*edge.Config)) *jsSystem {
	t.Helper()
	ns := calltest.NATS(t, bus.ServerOptions{JetStream: true})
	s := &jsSystem{system: &system{}, ns: ns}
	s.startWorker(t)

	cfg := edge.Config{ID: "edge-test"}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := edge.New(s.connect(t, "edge"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.wsURL = "ws://" + calltest.Serve(t, "edge", srv) + edge.PathMediaStream
	s.nc = s.connect(t, "producer")
	return s
}

func (s *jsSystem) connect(t *testing.T, name string) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(bus.ConnOptions{URL: s.ns.ClientURL(), Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close(nc, 5*time.Second) })
	return nc
}

// bucket opens a bucket of the library (library.AudioBucket,
// library.CacheBucket) through the producer's connection, as any Object
// Store client would.
func (s *jsSystem) bucket(t *testing.T, name string) jetstream.ObjectStore {
	t.Helper()
	js, err := jetstream.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

// startWorker starts a worker with an empty memory cache, its own
// connection and its own metrics.
func (s *jsSystem) startWorker(t *testing.T) {
	t.Helper()
	s.wnc = s.connect(t, "worker")
	s.reg = prometheus.NewRegistry()
	w, err := worker.New(s.wnc, worker.Config{
		AudioDir: t.TempDir(), DefaultAudio: worker.NoDefaultAudio, JetStream: true, Registerer: s.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	s.worker = w
	s.stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("worker shutdown: %v", err)
		}
	})
	t.Cleanup(s.stop)
}

// restartWorker replaces the worker with a new one.
func (s *jsSystem) restartWorker(t *testing.T) {
	t.Helper()
	s.stop()
	_ = bus.Close(s.wnc, 5*time.Second)
	s.startWorker(t)
}

// metric returns the running worker's sample of name with the given
// label value (or none), or -1.
func (s *jsSystem) metric(t *testing.T, name, label string) float64 {
	t.Helper()
	return gathered(t, s.reg, name, label)
}

// gathered is reg's sample of name with the given label value (or the
// first, for none), counter or gauge; -1 if there is none.
func gathered(t *testing.T, reg prometheus.Gatherer, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetValue() == label }) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// firstFrames times, for each playback, the render request and the first
// media frame the worker publishes, both as seen on the bus.
type firstFrames struct {
	mu     sync.Mutex
	render map[string]time.Time
	first  map[string]time.Time
	poke   chan struct{}
}

func watchFirstFrames(t *testing.T, nc *nats.Conn, sid string) *firstFrames {
	t.Helper()
	f := &firstFrames{render: map[string]time.Time{}, first: map[string]time.Time{}, poke: make(chan struct{}, 1)}
	subR, err := nc.Subscribe(bus.SubjectRender, func(m *nats.Msg) {
		now := time.Now()
		rr, err := bus.DecodeRenderRequest(m.Data)
		if err != nil || rr.StreamSid != sid || rr.Attempt > 1 {
			return
		}
		f.mu.Lock()
		f.render[rr.PlaybackID] = now
		f.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	subO, err := nc.Subscribe(bus.StreamOut(sid), func(m *nats.Msg) {
		now := time.Now()
		id, _, ok := strings.Cut(m.Header.Get(bus.HeaderPlayback), "/")
		if !ok || !bytes.Contains(m.Data, []byte(`"media"`)) {
			return
		}
		f.mu.Lock()
		if _, seen := f.first[id]; !seen {
			f.first[id] = now
		}
		f.mu.Unlock()
		select {
		case f.poke <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = subR.Unsubscribe(); _ = subO.Unsubscribe() })
	return f
}

// wait returns the time from playback id's render request to its first
// frame.
func (f *firstFrames) wait(t *testing.T, id string) time.Duration {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		f.mu.Lock()
		r, okR := f.render[id]
		first, okF := f.first[id]
		f.mu.Unlock()
		if okR && okF {
			return first.Sub(r)
		}
		select {
		case <-f.poke:
		case <-deadline:
			t.Fatalf("no render request or frame for playback %s", id)
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// TestObjectStorePromptPlaysFromCache uploads a prompt to the Object Store,
// plays it into a call by name (transcoding it once), plays it again after
// a worker restart from the shared cache, then times cached playbacks.
func TestObjectStorePromptPlaysFromCache(t *testing.T) {
	s := startJSSystem(t)
	const prompt = "prompts/welcome.mp3"
	src, err := os.ReadFile("testdata/audio/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Put as any Object Store client would (nats object put): the worker
	// transcodes it on first play.
	if _, err := s.bucket(t, library.AudioBucket).PutBytes(ctx, prompt, src); err != nil {
		t.Fatal(err)
	}

	// Call 1: a miss, transcoded from the object.
	sid := newSid("MZ")
	ev := watch(t, s.nc, sid)
	frames := watchFirstFrames(t, s.nc, sid)
	call := dial(t, s.system, sid, "")
	waitForStart(t, s.system, sid)
	r := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: prompt})
	ev.playback(t, bus.EventPlaybackFinished, r.PlaybackID, 15*time.Second)
	cold := frames.wait(t, r.PlaybackID)
	checkCall(t, call, sid, readRef(t, "speech.ref.ulaw"))
	if got := s.metric(t, "callcast_worker_cache_misses_total", ""); got != 1 {
		t.Errorf("misses = %v, want 1", got)
	}

	// The μ-law reaches the shared cache under the source's hash.
	cacheBucket := s.bucket(t, library.CacheBucket)
	key := fmt.Sprintf("%x.%s", sha256.Sum256(src), audio.PipelineVersion)
	waitFor(t, "the shared cache entry", 5*time.Second, func() bool {
		_, err := cacheBucket.GetInfo(ctx, key)
		return err == nil
	})

	// Call 2, after a worker restart: from the shared cache, no decoding.
	s.restartWorker(t)
	sid2 := newSid("MZ")
	ev2 := watch(t, s.nc, sid2)
	frames2 := watchFirstFrames(t, s.nc, sid2)
	call2 := dial(t, s.system, sid2, "")
	waitForStart(t, s.system, sid2)
	r2 := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid2, Audio: prompt})
	ev2.playback(t, bus.EventPlaybackFinished, r2.PlaybackID, 15*time.Second)
	shared := frames2.wait(t, r2.PlaybackID)
	checkCall(t, call2, sid2, readRef(t, "speech.ref.ulaw"))
	if m, h := s.metric(t, "callcast_worker_cache_misses_total", ""), s.metric(t, "callcast_worker_cache_hits_total", "shared"); m != 0 || h < 1 {
		t.Errorf("restarted worker: misses %v, shared hits %v; want 0 and at least 1", m, h)
	}
	if n := s.metric(t, "callcast_worker_cache_memory_bytes", ""); n != float64(len(readRef(t, "speech.ref.ulaw"))) && n < 20000 {
		t.Errorf("memory cache holds %v bytes", n)
	}

	// Cached playbacks: each interrupts the last; time the render request
	// to the first frame at the worker, and the play request to the first
	// frame for the producer.
	const n = 200
	var render, play []time.Duration
	for range n {
		start := time.Now()
		r := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid2, Audio: prompt, Mode: bus.ModeInterrupt})
		render = append(render, frames2.wait(t, r.PlaybackID))
		frames2.mu.Lock()
		play = append(play, frames2.first[r.PlaybackID].Sub(start))
		frames2.mu.Unlock()
	}
	if h := s.metric(t, "callcast_worker_cache_hits_total", "memory"); h < 2*n {
		t.Errorf("memory hits %v, want at least %d (probe and open of each)", h, 2*n)
	}
	if m := s.metric(t, "callcast_worker_cache_misses_total", ""); m != 0 {
		t.Errorf("cached playbacks transcoded: misses %v", m)
	}
	p50, p99 := percentile(render, 0.5), percentile(render, 0.99)
	t.Logf("time to first audio, render request → first frame on the bus: cold (transcoded from the object store) %s; "+
		"shared cache after restart %s; memory cache over %d playbacks p50 %s p99 %s; play request → first frame p50 %s p99 %s",
		cold, shared, n, p50, p99, percentile(play, 0.5), percentile(play, 0.99))
	if !raceEnabled && p50 >= 5*time.Millisecond {
		t.Errorf("cached time to first audio p50 %s, want under 5 ms", p50)
	}

	// Uploaded with the library (worker upload): cached at upload, so the
	// first playback anywhere is a hit.
	js, err := jetstream.New(s.nc)
	if err != nil {
		t.Fatal(err)
	}
	uploader, err := library.New(ctx, library.Options{JS: js, MemoryBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer uploader.Close()
	tone, err := os.ReadFile("testdata/audio/tone440.mp3")
	if err != nil {
		t.Fatal(err)
	}
	if up, err := uploader.Put(ctx, "prompts/tone.mp3", bytes.NewReader(tone)); err != nil || !up.Cached {
		t.Fatalf("put: %+v, %v", up, err)
	}
	r3 := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid2, Audio: "prompts/tone.mp3", Mode: bus.ModeInterrupt})
	ev2.playback(t, bus.EventPlaybackFinished, r3.PlaybackID, 15*time.Second)
	if m := s.metric(t, "callcast_worker_cache_misses_total", ""); m != 0 {
		t.Errorf("an uploaded prompt was transcoded on play: misses %v", m)
	}

	// Calls that name the cached prompt when they start: the caller's
	// first audio.
	var firstMedia []time.Duration
	for range 10 {
		sid := newSid("MZ")
		call := dial(t, s.system, sid, prompt)
		waitFor(t, "first media", 5*time.Second, func() bool { return call.Stats().FirstMedia > 0 })
		firstMedia = append(firstMedia, call.Stats().FirstMedia)
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = call.Hangup(hctx)
		cancel()
	}
	t.Logf("cached prompt named at call start: Twilio start → first media at the caller p50 %s, max %s",
		percentile(firstMedia, 0.5), slices.Max(firstMedia))
}

// TestLibraryReplacementHeardAtOnce: a prompt an edge plays from its own
// cache is uploaded again with new audio; the next call hears the new
// audio, though the cache entry has most of an hour to live.
func TestLibraryReplacementHeardAtOnce(t *testing.T) {
	calltest.CheckGoroutines(t)
	edgeReg := prometheus.NewRegistry()
	s := startJSSystem(t, func(c *edge.Config) {
		c.AudioCacheBytes, c.AudioCacheTTL = 1<<20, time.Hour
		c.Registerer, c.Gatherer = edgeReg, edgeReg
	})
	const prompt = "prompts/greeting.wav"
	ctx := context.Background()
	lib := s.bucket(t, library.AudioBucket)
	old, replacement := randomMulaw(8000), randomMulaw(6000)
	play := func(want []byte, what string) {
		t.Helper()
		sid := newSid("MZ")
		ev := watch(t, s.nc, sid)
		call := dial(t, s.system, sid, edge.NoAudio)
		waitForStart(t, s.system, sid)
		r := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: prompt})
		ev.playback(t, bus.EventPlaybackFinished, r.PlaybackID, 15*time.Second)
		if d := firstDiff(call.Received(), want); d >= 0 {
			t.Fatalf("%s: received %d bytes, want %d; first difference at byte %d", what, len(call.Received()), len(want), d)
		}
	}

	if _, err := lib.PutBytes(ctx, prompt, mulawWAVOf(old)); err != nil {
		t.Fatal(err)
	}
	play(old, "first call, from a worker")
	play(old, "second call, from the edge's cache")
	if h := gathered(t, edgeReg, "callcast_edge_audio_cache_hits_total", ""); h != 1 {
		t.Fatalf("edge cache hits %v, want 1", h)
	}
	if _, err := lib.PutBytes(ctx, prompt, mulawWAVOf(replacement)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the edge to hear of the upload", 5*time.Second, func() bool {
		return gathered(t, edgeReg, "callcast_edge_audio_cache_invalidations_total", "") == 1
	})
	play(replacement, "the call after the upload")
	play(replacement, "the next, from the cache filled anew")
	if f := gathered(t, edgeReg, "callcast_edge_audio_cache_fills_total", ""); f != 2 {
		t.Errorf("edge cache fills %v, want 2", f)
	}
}
