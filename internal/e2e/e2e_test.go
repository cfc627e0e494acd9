// Package e2e runs the whole product on loopback: an in-process NATS server,
// an edge and a worker, called by the Twilio-side test double.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/worker"
)

// system is one product instance on loopback.
type system struct {
	wsURL  string
	nc     *nats.Conn // a producer's connection, for watching events
	worker *worker.Worker
}

func startSystem(t *testing.T, audioDir string) *system {
	return startSystemWith(t, worker.Config{AudioDir: audioDir, DefaultAudio: "speech.mp3"})
}

// startSystemWith runs one edge and one worker with wcfg (see startCluster).
func startSystemWith(t *testing.T, wcfg worker.Config) *system {
	t.Helper()
	c := startCluster(t, 1, 1, wcfg)
	return &system{wsURL: c.edges[0], nc: c.nc, worker: c.workers[0]}
}

func newSid(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// events collects a stream's bus events.
type events struct {
	mu   sync.Mutex
	list []bus.Event
	poke chan struct{}
}

func watch(t *testing.T, nc *nats.Conn, sid string) *events {
	t.Helper()
	e := &events{poke: make(chan struct{}, 1)}
	sub, err := nc.Subscribe(bus.StreamEvents(sid), func(m *nats.Msg) {
		ev, err := bus.DecodeEvent(m.Data)
		if err != nil {
			t.Errorf("undecodable event %s: %v", m.Data, err)
			return
		}
		e.mu.Lock()
		e.list = append(e.list, *ev)
		e.mu.Unlock()
		select {
		case e.poke <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return e
}

// wait returns the first event of the given kind, failing the test after timeout.
func (e *events) wait(t *testing.T, kind string, timeout time.Duration) bus.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		e.mu.Lock()
		for _, ev := range e.list {
			if ev.Event == kind {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		select {
		case <-e.poke:
		case <-deadline:
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("no %s event within %s; got %v", kind, timeout, e.list)
		}
	}
}

func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var k []string
	for _, ev := range e.list {
		k = append(k, ev.Event)
	}
	return k
}

func dial(t *testing.T, s *system, sid, audioName string) *callsim.Call {
	t.Helper()
	return dialSpeed(t, s, sid, audioName, 8)
}

func dialSpeed(t *testing.T, s *system, sid, audioName string, speed float64) *callsim.Call {
	t.Helper()
	params := map[string]string{}
	if audioName != "" {
		params["audio"] = audioName
	}
	return dialCall(t, callsim.Config{URL: s.wsURL, StreamSid: sid, Parameters: params, Speed: speed})
}

// dialCall places the call cfg describes; it hangs up when the test ends.
func dialCall(t *testing.T, cfg callsim.Config) *callsim.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call, err := callsim.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = call.Hangup(ctx)
	})
	return call
}

func readRef(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// similarity is the peak normalised cross-correlation of two μ-law signals
// over lags up to ±maxLag samples.
func similarity(a, b []byte, maxLag int) float64 {
	x, y := linear(a), linear(b)
	best := 0.0
	for lag := -maxLag; lag <= maxLag; lag++ {
		var sxy, sxx, syy float64
		for i := range x {
			j := i + lag
			if j < 0 || j >= len(y) {
				continue
			}
			sxy += x[i] * y[j]
			sxx += x[i] * x[i]
			syy += y[j] * y[j]
		}
		if sxx == 0 || syy == 0 {
			continue
		}
		if c := sxy / math.Sqrt(sxx*syy); c > best {
			best = c
		}
	}
	return best
}

func linear(ulaw []byte) []float64 {
	out := make([]float64, len(ulaw))
	for i, c := range ulaw {
		out[i] = float64(audio.DecodeMulaw(c))
	}
	return out
}

// checkCall checks what a call received against the reference rendering of
// the source (ffmpeg -ar 8000 -ac 1 -f mulaw).
func checkCall(t *testing.T, call *callsim.Call, sid string, ref []byte) {
	t.Helper()
	if errs := call.Errs(); len(errs) > 0 {
		t.Errorf("protocol violations: %v", errs)
	}
	msgs := call.Messages()
	if len(msgs) == 0 {
		t.Fatal("no messages received")
	}
	for i, m := range msgs {
		if m.StreamSid != sid {
			t.Fatalf("message %d has streamSid %q, want %q", i, m.StreamSid, sid)
		}
	}
	got := call.Received()
	if d := math.Abs(float64(len(got)-len(ref))) / audio.SampleRate; d > 0.1 {
		t.Errorf("received %.3f s of audio, source is %.3f s (off by %.0f ms, limit 100 ms)",
			float64(len(got))/audio.SampleRate, float64(len(ref))/audio.SampleRate, d*1000)
	}
	c := similarity(got, ref, 400)
	if c < 0.9 {
		t.Errorf("received audio correlates %.3f with the reference, want >= 0.9", c)
	}
	st := call.Stats()
	t.Logf("received %d bytes (reference %d), correlation %.4f; max buffered %s, underruns %d (%s), first media %s", len(got), len(ref), c, st.MaxBuffered, st.Underruns, st.UnderrunTime, st.FirstMedia)
}

func TestCallHearsRequestedMP3(t *testing.T) {
	s := startSystem(t, "testdata/audio")
	sid := newSid("MZ")
	ev := watch(t, s.nc, sid)
	call := dial(t, s, sid, "speech.mp3")

	started := ev.wait(t, bus.EventPlaybackStarted, 5*time.Second)
	finished := ev.wait(t, bus.EventPlaybackFinished, 15*time.Second)
	if started.Playback == nil || finished.Playback == nil || started.Playback.ID != finished.Playback.ID {
		t.Fatalf("playback events do not match: %+v / %+v", started.Playback, finished.Playback)
	}
	if finished.Playback.Audio != "speech.mp3" {
		t.Errorf("finished audio %q", finished.Playback.Audio)
	}
	checkCall(t, call, sid, readRef(t, "speech.ref.ulaw"))
	if finished.Playback.HeardMs != int64(len(call.Received()))/8 {
		t.Errorf("heardMs = %d, received %d ms", finished.Playback.HeardMs, len(call.Received())/8)
	}
}

func TestSimultaneousCallsGetTheirOwnAudio(t *testing.T) {
	s := startSystem(t, "testdata/audio")
	type leg struct {
		sid, audio, ref string
		call            *callsim.Call
		ev              *events
	}
	legs := []*leg{
		{sid: newSid("MZ"), audio: "speech.mp3", ref: "speech.ref.ulaw"},
		{sid: newSid("MZ"), audio: "tone440.mp3", ref: "tone440.ref.ulaw"},
	}
	for _, l := range legs {
		l.ev = watch(t, s.nc, l.sid)
	}
	for _, l := range legs {
		l.call = dial(t, s, l.sid, l.audio)
	}
	for _, l := range legs {
		l.ev.wait(t, bus.EventPlaybackFinished, 15*time.Second)
	}
	for i, l := range legs {
		t.Run(l.audio, func(t *testing.T) {
			checkCall(t, l.call, l.sid, readRef(t, l.ref))
			other := legs[1-i]
			if c := similarity(l.call.Received(), readRef(t, other.ref), 400); c > 0.5 {
				t.Errorf("call for %s correlates %.3f with %s", l.audio, c, other.audio)
			}
		})
	}
}

func TestBadAudioKeepsCallUp(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"speech.mp3", "corrupt.mp3"} {
		b, err := os.ReadFile(filepath.Join("testdata/audio", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "secret.mp3")
	if err := os.WriteFile(outside, readRef(t, "audio/speech.mp3"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape.mp3")); err != nil {
		t.Fatal(err)
	}
	s := startSystem(t, dir)

	tests := []struct {
		name, audio, code string
	}{
		{name: "missing file", audio: "nope.mp3", code: bus.CodeUnknownAudio},
		{name: "traversal", audio: "../../etc/passwd", code: bus.CodeUnknownAudio},
		{name: "absolute path", audio: "/etc/passwd", code: bus.CodeUnknownAudio},
		{name: "symlink out", audio: "escape.mp3", code: bus.CodeUnknownAudio},
		{name: "directory", audio: ".", code: bus.CodeUnknownAudio},
		{name: "corrupt mp3", audio: "corrupt.mp3", code: bus.CodeBadAudio},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := newSid("MZ")
			ev := watch(t, s.nc, sid)
			call := dial(t, s, sid, tt.audio)
			failed := ev.wait(t, bus.EventPlaybackFailed, 5*time.Second)
			if failed.Error == nil || failed.Error.Code != tt.code || failed.Error.Message == "" {
				t.Fatalf("playback.failed error = %+v, want code %s with a message", failed.Error, tt.code)
			}
			// The call is still up: a key press still reaches the bus.
			if err := call.SendDTMF("5"); err != nil {
				t.Fatalf("dtmf: %v", err)
			}
			dtmf := ev.wait(t, bus.EventDTMF, 5*time.Second)
			if dtmf.DTMF == nil || dtmf.DTMF.Digit != "5" {
				t.Fatalf("dtmf event %+v", dtmf)
			}
			select {
			case <-call.Done():
				t.Fatal("call was hung up")
			default:
			}
			if n := len(call.Received()); n != 0 {
				t.Errorf("call received %d bytes of audio", n)
			}
		})
	}

	t.Run("good call after", func(t *testing.T) {
		sid := newSid("MZ")
		ev := watch(t, s.nc, sid)
		call := dial(t, s, sid, "speech.mp3")
		ev.wait(t, bus.EventPlaybackFinished, 15*time.Second)
		checkCall(t, call, sid, readRef(t, "speech.ref.ulaw"))
	})
}

func TestHangupPublishesStop(t *testing.T) {
	s := startSystem(t, "testdata/audio")
	sid := newSid("MZ")
	ev := watch(t, s.nc, sid)
	call := dial(t, s, sid, "speech.mp3")
	ev.wait(t, bus.EventPlaybackStarted, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := call.Hangup(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("hangup: %v", err)
	}
	stop := ev.wait(t, bus.EventStop, 5*time.Second)
	if stop.Stop == nil || stop.Stop.Reason != bus.StopReasonTwilio {
		t.Errorf("stop event %+v, want reason %q", stop.Stop, bus.StopReasonTwilio)
	}
	in := ev.wait(t, bus.EventPlaybackInterrupted, 5*time.Second)
	if in.Playback == nil || in.Playback.Reason != "stop" {
		t.Errorf("interrupted event %+v", in.Playback)
	}
}

func decodePayload(t *testing.T, p string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
