package e2e

import (
	"context"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/worker"
)

// startpathSystem is an edge queueing the call's own audio itself, with its
// audio cache, and the workers it may lose.
type startpathSystem struct {
	*cluster
	reg     *prometheus.Registry
	dir     string
	prompt  []byte // prompt.wav, the default audio
	second  []byte // second.wav
	wcfg    worker.Config
	workers []*failWorker
}

func startStartSystem(t *testing.T, ttl time.Duration) *startpathSystem {
	t.Helper()
	s := &startpathSystem{reg: prometheus.NewRegistry(), dir: t.TempDir()}
	s.prompt = randomMulaw(1200 * 8)
	s.second = randomMulaw(800 * 8) // the prompt's first bytes (the same seed): made to differ
	for i := range s.second {
		s.second[i] ^= 0x55
	}
	calltest.WriteFile(t, filepath.Join(s.dir, "prompt.wav"), mulawWAVOf(s.prompt))
	calltest.WriteFile(t, filepath.Join(s.dir, "second.wav"), mulawWAVOf(s.second))
	calltest.WriteFile(t, filepath.Join(s.dir, "long.wav"), mulawWAVOf(randomMulaw(4000*8)))
	s.wcfg = worker.Config{AudioDir: s.dir, DefaultAudio: "prompt.wav"}
	s.cluster = startCluster(t, 1, 0, s.wcfg, func(c *edge.Config) {
		c.AudioCacheBytes, c.AudioCacheTTL = 1<<20, ttl
		c.Registerer, c.Gatherer = s.reg, s.reg
	})
	s.addWorker(t)
	return s
}

// addWorker starts a worker the test may stop.
func (s *startpathSystem) addWorker(t *testing.T) *failWorker {
	t.Helper()
	cfg := s.wcfg
	cfg.ID = "worker-" + newSid("")[:6]
	w := startFailWorker(t, calltest.Connect(t, s.nc.ConnectedUrl(), cfg.ID), cfg)
	s.workers = append(s.workers, w)
	return w
}

func (s *startpathSystem) system() *system { return &system{wsURL: s.edges[0], nc: s.nc} }

// metric is the value of an edge metric without labels.
func (s *startpathSystem) metric(t *testing.T, name string) float64 {
	t.Helper()
	v := gathered(t, s.reg, name, "")
	if v < 0 {
		t.Fatalf("no metric %s", name)
	}
	return v
}

// startCall is one call and its events.
type startCall struct {
	sid  string
	call *callsim.Call
	ev   *events
}

func (s *startpathSystem) dial(t *testing.T, audio string, speed float64) *startCall {
	t.Helper()
	c := &startCall{sid: newSid("MZ")}
	c.ev = watch(t, s.nc, c.sid)
	c.call = dialSpeed(t, s.system(), c.sid, audio, speed)
	return c
}

// finished waits for the call's first playback to finish and returns its
// playback events, and the marks Twilio echoed, with the playback ID
// taken out.
func (c *startCall) finished(t *testing.T) ([]bus.Event, []string) {
	t.Helper()
	c.ev.wait(t, bus.EventPlaybackFinished, 15*time.Second)
	return c.shape()
}

var playbackID = regexp.MustCompile(`^cc:[^:]+:`)

func (c *startCall) shape() ([]bus.Event, []string) {
	c.ev.mu.Lock()
	defer c.ev.mu.Unlock()
	var evs []bus.Event
	var marks []string
	for _, ev := range c.ev.list {
		switch {
		case ev.Event == bus.EventMark:
			marks = append(marks, playbackID.ReplaceAllString(ev.Mark.Name, "cc:ID:"))
		case ev.Playback != nil:
			p := *ev.Playback
			p.ID = "ID"
			ev.Playback, ev.Time = &p, time.Time{}
			evs = append(evs, ev)
		}
	}
	return evs, marks
}

// TestStartFastPathPlaysWhatWorkersPlay: the edge queues the call's own
// audio itself at start. The first call's audio comes from a worker and
// fills the edge's cache; the second call's is played by the edge from the
// cache. Both hear the same bytes, with the same marks and events.
func TestStartFastPathPlaysWhatWorkersPlay(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := startStartSystem(t, time.Minute)

	first := s.dial(t, "", 8)
	evs1, marks1 := first.finished(t)
	if got := s.metric(t, "callcast_edge_audio_cache_fills_total"); got != 1 {
		t.Fatalf("cache fills %v after the first call, want 1", got)
	}
	// The stream's start is announced before its playback starts, though
	// the edge sends the cached audio first.
	var order []string
	var mu sync.Mutex
	sub, err := s.nc.Subscribe("callcast.stream.>", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		if m.Subject == bus.SubjectStreamStarted {
			order = append(order, "stream.started")
		} else if ev, err := bus.DecodeEvent(m.Data); err == nil && ev.Event == bus.EventPlaybackStarted {
			order = append(order, ev.Event)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := s.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	second := s.dial(t, "", 8)
	evs2, marks2 := second.finished(t)
	mu.Lock()
	if !slices.Equal(order, []string{"stream.started", bus.EventPlaybackStarted}) {
		t.Errorf("announced %v, want the stream's start, then its playback's", order)
	}
	mu.Unlock()
	if h, m := s.metric(t, "callcast_edge_audio_cache_hits_total"), s.metric(t, "callcast_edge_audio_cache_misses_total"); h != 1 || m != 1 {
		t.Errorf("cache hits %v, misses %v; want 1 and 1", h, m)
	}
	if b := s.metric(t, "callcast_edge_audio_cache_bytes"); b != float64(len(s.prompt)) {
		t.Errorf("cache bytes %v, want %d", b, len(s.prompt))
	}
	for i, c := range []*startCall{first, second} {
		if d := firstDiff(c.call.Received(), s.prompt); d >= 0 {
			t.Errorf("call %d: received %d bytes, prompt %d; first difference at byte %d", i+1, len(c.call.Received()), len(s.prompt), d)
		}
	}
	if !slices.EqualFunc(evs1, evs2, sameEvent) {
		t.Errorf("events differ:\nworker: %s\ncache:  %s", describe(evs1), describe(evs2))
	}
	if want := (bus.Playback{ID: "ID", Audio: "prompt.wav", DurationMs: 1200}); len(evs1) < 1 || *evs1[0].Playback != want {
		t.Errorf("first event %s, want playback.started %+v", describe(evs1), want)
	}
	if !slices.Equal(marks1, marks2) {
		t.Errorf("marks differ:\nworker: %v\ncache:  %v", marks1, marks2)
	}
}

func sameEvent(a, b bus.Event) bool {
	return a.Event == b.Event && *a.Playback == *b.Playback && (a.Error == nil) == (b.Error == nil) &&
		(a.Error == nil || *a.Error == *b.Error)
}

func describe(evs []bus.Event) string {
	s := ""
	for _, ev := range evs {
		s += ev.Event + " " + ev.Playback.Audio + " "
		s += time.Duration(ev.Playback.DurationMs).String() + "/" + time.Duration(ev.Playback.SentMs).String() + "/" + time.Duration(ev.Playback.HeardMs).String() + "; "
	}
	return s
}

// TestCachedPromptPlaysWithoutWorkers: once a prompt is in the edge's
// cache, calls hear it with every worker gone.
func TestCachedPromptPlaysWithoutWorkers(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := startStartSystem(t, time.Minute)
	first := s.dial(t, "", 8)
	first.finished(t)
	for _, w := range s.workers {
		w.kill()
	}
	waitFor(t, "no worker serving callcast.render", 5*time.Second, func() bool {
		_, err := s.nc.Request(bus.SubjectRender, []byte("{}"), time.Second)
		return err != nil
	})
	c := s.dial(t, "", 8)
	evs, _ := c.finished(t)
	if d := firstDiff(c.call.Received(), s.prompt); d >= 0 {
		t.Errorf("received %d bytes, prompt %d; first difference at byte %d", len(c.call.Received()), len(s.prompt), d)
	}
	if len(evs) != 2 || evs[1].Playback.HeardMs != 1200 {
		t.Errorf("events %s, want started and finished with heardMs 1200", describe(evs))
	}
	// What is not cached fails as it did: no worker.
	other := s.dial(t, "second.wav", 8)
	failed := other.ev.wait(t, bus.EventPlaybackFailed, 10*time.Second)
	if failed.Error == nil || failed.Error.Code != bus.CodeNoWorkers || failed.Playback.Audio != "second.wav" {
		t.Errorf("playback.failed %+v %+v, want no_workers for second.wav", failed.Playback, failed.Error)
	}
}

// TestReplacedPromptHeardAfterTTL: a prompt replaced in AUDIO_DIR is heard
// by the calls placed once its cache entry's TTL has passed, and fills the
// cache anew.
func TestReplacedPromptHeardAfterTTL(t *testing.T) {
	calltest.CheckGoroutines(t)
	const ttl = 2 * time.Second
	s := startStartSystem(t, ttl)
	s.dial(t, "", 8).finished(t)
	filled := time.Now()
	calltest.WriteFile(t, filepath.Join(s.dir, "prompt.wav"), mulawWAVOf(s.second))

	within := s.dial(t, "", 8)
	within.finished(t)
	if time.Since(filled) < ttl {
		if d := firstDiff(within.call.Received(), s.prompt); d >= 0 {
			t.Errorf("within the TTL: first difference from the cached prompt at byte %d of %d", d, len(within.call.Received()))
		}
	}
	time.Sleep(time.Until(filled.Add(ttl)))
	for i := range 2 { // from a worker, then from the cache filled anew
		c := s.dial(t, "", 8)
		c.finished(t)
		if d := firstDiff(c.call.Received(), s.second); d >= 0 {
			t.Errorf("call %d after the TTL: received %d bytes, the new prompt %d; first difference at byte %d", i+1, len(c.call.Received()), len(s.second), d)
		}
	}
	if f := s.metric(t, "callcast_edge_audio_cache_fills_total"); f != 2 {
		t.Errorf("cache fills %v, want 2", f)
	}
}

// TestCachedPlaybackOnTheTimeline: a playback the edge plays from its
// cache queues, interrupts and is interrupted like any other.
func TestCachedPlaybackOnTheTimeline(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := startStartSystem(t, time.Minute)
	s.dial(t, "", 8).finished(t)
	s.dial(t, "second.wav", 8).finished(t)
	s.dial(t, "long.wav", 8).finished(t)
	hits := s.metric(t, "callcast_edge_audio_cache_hits_total")

	t.Run("queue behind", func(t *testing.T) {
		c := s.dial(t, "", 2)
		waitForStart(t, s.system(), c.sid)
		reply := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: c.sid, Audio: "second.wav"})
		c.ev.playback(t, bus.EventPlaybackFinished, reply.PlaybackID, 15*time.Second)
		want := append(append([]byte(nil), s.prompt...), s.second...)
		if d := firstDiff(c.call.Received(), want); d >= 0 {
			t.Errorf("received %d bytes, want prompt then second (%d); first difference at byte %d", len(c.call.Received()), len(want), d)
		}
		evs, _ := c.shape()
		var kinds []string
		for _, ev := range evs {
			kinds = append(kinds, ev.Event+" "+ev.Playback.Audio)
		}
		if want := []string{"playback.started prompt.wav", "playback.started second.wav", "playback.finished prompt.wav", "playback.finished second.wav"}; !slices.Equal(kinds, want) {
			t.Errorf("events %v, want %v", kinds, want)
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		c := s.dial(t, "long.wav", 1)
		started := c.ev.wait(t, bus.EventPlaybackStarted, 5*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.call.WaitPlayed(ctx, 400*8); err != nil {
			t.Fatal(err)
		}
		reply := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: c.sid, Audio: "second.wav", Mode: bus.ModeInterrupt})
		ev := c.ev.playback(t, bus.EventPlaybackInterrupted, started.Playback.ID, 5*time.Second)
		if ev.Playback.Reason != "interrupt" || ev.Playback.HeardMs < 300 || ev.Playback.HeardMs > 2500 {
			t.Errorf("interrupted %+v, want reason interrupt and heardMs from 400 on", ev.Playback)
		}
		c.ev.playback(t, bus.EventPlaybackFinished, reply.PlaybackID, 15*time.Second)
		got := c.call.Played()
		if len(got) < len(s.second) || firstDiff(got[len(got)-len(s.second):], s.second) >= 0 {
			t.Errorf("the caller did not hear second.wav to its end after the interruption")
		}
		if n := len(c.call.ClearTimes()); n != 1 {
			t.Errorf("%d clears at the caller, want 1", n)
		}
	})
	t.Run("barge-in", func(t *testing.T) {
		stop, err := callsim.ReadCallerAudio("../callsim/testdata/stop.wav")
		if err != nil {
			t.Fatal(err)
		}
		sid := newSid("MZ")
		evs := watch(t, s.nc, sid)
		call := dialCall(t, callsim.Config{URL: s.edges[0], StreamSid: sid, Parameters: map[string]string{"audio": "none"},
			CallerAudio: callsim.Speak(stop, 1500*time.Millisecond)})
		waitForStart(t, s.system(), sid)
		reply := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: "long.wav", Interruptible: true})
		ev := evs.playback(t, bus.EventPlaybackInterrupted, reply.PlaybackID, 10*time.Second)
		if ev.Playback.Reason != bus.ReasonBargeIn || ev.Playback.HeardMs < 800 || ev.Playback.HeardMs > 2500 {
			t.Errorf("interrupted %+v, want barge_in at about 1500 ms", ev.Playback)
		}
		waitFor(t, "the clear at the caller", 5*time.Second, func() bool { return len(call.ClearTimes()) == 1 })
	})
	if got := s.metric(t, "callcast_edge_audio_cache_hits_total") - hits; got != 5 {
		t.Errorf("%v cache hits, want 5 (prompt; long and second; second; long)", got)
	}
}

// TestStartUnknownAudioFailsAsBefore: the call's own audio that no
// library holds ends in playback.failed with unknown_audio, its ID and
// name, as when a worker queued it.
func TestStartUnknownAudioFailsAsBefore(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := startStartSystem(t, time.Minute)
	for _, name := range []string{"nope.wav", "../prompt.wav", strings.Repeat("a", 300) + ".wav"} {
		c := s.dial(t, name, 8)
		ev := c.ev.wait(t, bus.EventPlaybackFailed, 5*time.Second)
		if ev.Error == nil || ev.Error.Code != bus.CodeUnknownAudio || ev.Error.Audio != name || ev.Playback.Audio != name || ev.Playback.ID == "" {
			t.Errorf("audio %.20q: playback.failed %+v %+v, want unknown_audio with the playback's ID and name", name, ev.Playback, ev.Error)
		}
	}
}
