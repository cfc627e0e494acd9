package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/twilio"
	"github.com/callcast/callcast/internal/worker"
)

// failOptions shapes a failSystem. Zero values: one worker, the edge's
// default RenderTimeout, NATS on a random loopback port.
type failOptions struct {
	workers       int
	renderTimeout time.Duration
	natsAddr      string // host:port for the NATS server, so it can be restarted there
}

// failSystem is the product on loopback with every part on its own NATS
// connection over TCP, with handles on each part so that a test can break
// them one at a time.
type failSystem struct {
	*system // the call URL and a producer's connection

	httpURL string
	edge    *edge.Server
	edgeNC  *nats.Conn
	workers []*failWorker
	logs    *calltest.SyncBuffer

	natsAddr string
	mu       sync.Mutex
	ns       *server.Server
}

// failWorker is a worker with its own connection.
type failWorker struct {
	*worker.Worker
	name string
	nc   *nats.Conn

	once sync.Once
	err  error
}

// shutdown shuts the worker down once; later calls return the first result.
func (w *failWorker) shutdown(ctx context.Context) error {
	w.once.Do(func() { w.err = w.Worker.Shutdown(ctx) })
	return w.err
}

// kill ends the worker as a crash would: its connection goes first, then
// its goroutines are told to stop at once.
func (w *failWorker) kill() {
	w.nc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = w.shutdown(ctx)
}

// startFailWorker starts a worker named cfg.ID on nc, shut down (unless a
// test has shut it down already) when the test ends.
func startFailWorker(t *testing.T, nc *nats.Conn, cfg worker.Config) *failWorker {
	t.Helper()
	w, err := worker.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	fw := &failWorker{Worker: w, name: cfg.ID, nc: nc}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = fw.shutdown(ctx) // a test may have shut it down already, with an error
	})
	return fw
}

func startFailSystem(t *testing.T, o failOptions) *failSystem {
	t.Helper()
	if o.workers == 0 {
		o.workers = 1
	}
	if o.natsAddr == "" {
		o.natsAddr = "127.0.0.1:0"
	}
	fs := &failSystem{logs: &calltest.SyncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("product logs:\n%s", fs.logs)
		}
	})
	log := slog.New(slog.NewJSONHandler(fs.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ns, err := bus.RunServer(bus.ServerOptions{Listen: o.natsAddr})
	if err != nil {
		t.Fatal(err)
	}
	fs.ns, fs.natsAddr = ns, strings.TrimPrefix(ns.ClientURL(), "nats://")
	t.Cleanup(func() {
		ns := fs.server()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	connect := func(name string) *nats.Conn {
		nc, err := bus.Connect(bus.ConnOptions{URL: "nats://" + fs.natsAddr, Name: name, Logger: log.With("conn", name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close(nc, 5*time.Second) })
		return nc
	}

	dir := failAudio(t)
	for i := range o.workers {
		name := "worker-" + strconv.Itoa(i)
		fs.workers = append(fs.workers, startFailWorker(t, connect(name), worker.Config{
			AudioDir: dir, DefaultAudio: worker.NoDefaultAudio, ID: name, Logger: log,
		}))
	}

	fs.edgeNC = connect("edge")
	srv, err := edge.New(fs.edgeNC, edge.Config{ID: "edge-test", RenderTimeout: o.renderTimeout, Logger: log.With("component", "edge")})
	if err != nil {
		t.Fatal(err)
	}
	fs.edge = srv
	addr := calltest.Serve(t, "edge", srv)
	fs.httpURL = "http://" + addr
	fs.system = &system{wsURL: "ws://" + addr + edge.PathMediaStream, nc: connect("producer"), worker: fs.workers[0].Worker}
	return fs
}

// failAudio returns a directory with speech.mp3, and short.wav and
// long.wav: 1 s and 3 s of a 300 Hz tone in 8 kHz WAV, which cost next to
// nothing to transcode (MP3 decoding is slow under the race detector, and
// these tests pace in real time).
func failAudio(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "speech.mp3"), readRef(t, "audio/speech.mp3"), 0o644); err != nil {
		t.Fatal(err)
	}
	calltest.WriteFile(t, filepath.Join(dir, "short.wav"), calltest.SineWAV(time.Second, 300))
	calltest.WriteFile(t, filepath.Join(dir, "long.wav"), calltest.SineWAV(3*time.Second, 300))
	return dir
}

// slack is extra time allowed for work the race detector slows down
// several times over (decoding MP3 to resume a playback).
func slack() time.Duration {
	if raceEnabled {
		return 3 * time.Second
	}
	return time.Second
}

func (fs *failSystem) server() *server.Server {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.ns
}

// restartNATS shuts the NATS server down, waits until every connection in
// conns has seen it go, and starts a new one on the same address. It
// returns how long no server was listening.
func (fs *failSystem) restartNATS(t *testing.T, conns map[string]*nats.Conn) time.Duration {
	t.Helper()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	down := time.Now()
	fs.ns.Shutdown()
	fs.ns.WaitForShutdown()
	waitFor(t, "every connection to see NATS go", 5*time.Second, func() bool {
		for _, nc := range conns {
			if nc.IsConnected() {
				return false
			}
		}
		return true
	})
	ns, err := bus.RunServer(bus.ServerOptions{Listen: fs.natsAddr})
	if err != nil {
		t.Fatalf("restart nats on %s: %v", fs.natsAddr, err)
	}
	fs.ns = ns
	return time.Since(down)
}

// subscribed reports whether the named connection has a subscription on
// subject, as the NATS server sees it.
func (fs *failSystem) subscribed(t *testing.T, name, subject string) bool {
	t.Helper()
	cz, err := fs.server().Connz(&server.ConnzOptions{Subscriptions: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cz.Conns {
		if c.Name == name && c.Subs != nil {
			for _, s := range c.Subs {
				if s == subject {
					return true
				}
			}
		}
	}
	return false
}

// rendering waits for a worker to take a playback and returns it and
// another worker, if there is one.
func (fs *failSystem) rendering(t *testing.T) (busy, other *failWorker) {
	t.Helper()
	waitFor(t, "a worker to render", 5*time.Second, func() bool {
		for _, w := range fs.workers {
			if w.Active() > 0 {
				busy = w
				return true
			}
		}
		return false
	})
	for _, w := range fs.workers {
		if w != busy {
			return busy, w
		}
	}
	return busy, nil
}

// metric returns the value of one sample of the edge's /metrics, 0 if absent.
func (fs *failSystem) metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get(fs.httpURL + edge.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sc.Text(), err)
			}
			return f
		}
	}
	return 0
}

// sentBy returns the ID of the worker whose log says it sent playback id.
func (fs *failSystem) sentBy(t *testing.T, id string) string {
	t.Helper()
	for _, line := range strings.Split(fs.logs.String(), "\n") {
		var rec struct {
			Msg      string `json:"msg"`
			Playback string `json:"playback"`
			Worker   string `json:"worker"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "playback sent" && rec.Playback == id {
			return rec.Worker
		}
	}
	return ""
}

// httpStatus returns the status of GET url, or 0 if the request failed.
func httpStatus(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// frames records the media workers publish for a stream, per attempt
// (the Callcast-Playback header), as the bus carries them.
type frames struct {
	mu          sync.Mutex
	bytes       map[string]int
	first, last map[string]time.Time
}

func recordFrames(t *testing.T, nc *nats.Conn, sid string) *frames {
	t.Helper()
	f := &frames{bytes: map[string]int{}, first: map[string]time.Time{}, last: map[string]time.Time{}}
	sub, err := nc.Subscribe(bus.StreamOut(sid), func(m *nats.Msg) {
		out, err := bus.DecodeOut(m.Data)
		if err != nil || out.Event != twilio.EventMedia {
			return
		}
		now := time.Now()
		hdr := m.Header.Get(bus.HeaderPlayback)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.bytes[hdr] += base64.StdEncoding.DecodedLen(len(out.Media.Payload)) - strings.Count(out.Media.Payload, "=")
		if _, ok := f.first[hdr]; !ok {
			f.first[hdr] = now
		}
		f.last[hdr] = now
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return f
}

// attempt returns the bytes seen for one attempt and when its first and
// last frames went by.
func (f *frames) attempt(id string, n int) (bytes int, first, last time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := bus.PlaybackHeader(id, n)
	return f.bytes[h], f.first[h], f.last[h]
}

func TestWorkerKilledMidPlayback(t *testing.T) {
	// Under the race detector a healthy worker can take longer than 300 ms
	// to decode its first frame; the edge must not take it for dead.
	renderTimeout := 300 * time.Millisecond
	if raceEnabled {
		renderTimeout = 1500 * time.Millisecond
	}

	t.Run("another worker takes over", func(t *testing.T) {
		fs := startFailSystem(t, failOptions{workers: 2, renderTimeout: renderTimeout})
		sid := newSid("MZ")
		ev := watch(t, fs.nc, sid)
		fr := recordFrames(t, fs.nc, sid)
		call := dialSpeed(t, fs.system, sid, "", 1)
		waitForStart(t, fs.system, sid)

		a := mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: sid, Audio: "speech.mp3"})
		ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
		waitFor(t, "300 ms of the clip to play", 5*time.Second, func() bool { return len(call.Played()) >= 2400 })
		victim, other := fs.rendering(t)
		killed := time.Now()
		victim.kill()
		t.Logf("killed %s with %d ms played, %d ms received", victim.name, len(call.Played())/8, len(call.Received())/8)

		fin := ev.playback(t, bus.EventPlaybackFinished, a.PlaybackID, 15*time.Second)
		checkCall(t, call, sid, readRef(t, "speech.ref.ulaw"))
		if got := int64(len(call.Received())) / 8; fin.Playback.HeardMs != got || fin.Playback.SentMs != got {
			t.Errorf("finished %+v, call received %d ms", fin.Playback, got)
		}

		// The edge moved the playback: attempt 1 came from the other worker,
		// from where attempt 0 stopped.
		n0, _, last0 := fr.attempt(a.PlaybackID, 0)
		n1, first1, _ := fr.attempt(a.PlaybackID, 1)
		if n1 == 0 {
			t.Fatalf("no frames of attempt 1 (attempt 0: %d bytes)", n0)
		}
		if got := len(call.Received()); n0+n1 != got {
			t.Errorf("attempts sent %d+%d bytes, the call received %d", n0, n1, got)
		}
		if by := fs.sentBy(t, a.PlaybackID); by != other.name {
			t.Errorf("playback sent by %q, want %q", by, other.name)
		}
		if v := fs.metric(t, `callcast_edge_errors_total{kind="worker_lost"}`); v != 1 {
			t.Errorf("worker_lost = %v, want 1", v)
		}
		gap := first1.Sub(last0)
		t.Logf("attempt 0: %d bytes; attempt 1: %d bytes, first frame %s after the kill, %s after attempt 0's last", n0, n1, first1.Sub(killed).Round(time.Millisecond), gap.Round(time.Millisecond))
		if limit := renderTimeout + slack(); first1.Sub(killed) > limit {
			t.Errorf("the other worker took %s to take over, limit %s", first1.Sub(killed), limit)
		}
		if st := call.Stats(); st.Underruns != 0 && !raceEnabled {
			t.Errorf("the caller heard %d gaps (%s): the hand-over outran the %s buffered at Twilio", st.Underruns, st.UnderrunTime, 2*time.Second)
		}
		// The new attempt counted what Twilio still held of the old one.
		if st, limit := call.Stats(), 2*time.Second+200*time.Millisecond; st.MaxBuffered > limit {
			t.Errorf("up to %s buffered at the caller, limit %s (the lead and a message)", st.MaxBuffered, limit)
		}
	})

	t.Run("no other worker", func(t *testing.T) {
		fs := startFailSystem(t, failOptions{workers: 1, renderTimeout: renderTimeout})
		sid := newSid("MZ")
		ev := watch(t, fs.nc, sid)
		call := dialSpeed(t, fs.system, sid, "", 1)
		waitForStart(t, fs.system, sid)

		a := mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: sid, Audio: "speech.mp3"})
		ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
		victim, _ := fs.rendering(t)
		killed := time.Now()
		victim.kill()

		limit := renderTimeout + slack()
		failed := ev.playback(t, bus.EventPlaybackFailed, a.PlaybackID, limit)
		t.Logf("playback.failed %s after the kill: %+v %+v", time.Since(killed).Round(time.Millisecond), failed.Playback, failed.Error)
		if failed.Error == nil || failed.Error.Code != bus.CodeNoWorkers || failed.Error.Audio != "speech.mp3" {
			t.Errorf("failed error %+v, want %s", failed.Error, bus.CodeNoWorkers)
		}
		if k := ev.kinds(); slices.Contains(k, bus.EventPlaybackFinished) {
			t.Errorf("events %v: finished as well as failed", k)
		}
		select {
		case <-call.Done():
			t.Fatalf("the call was hung up: %v", call.Err())
		default:
		}
	})
}

func TestNATSRestartMidCall(t *testing.T) {
	fs := startFailSystem(t, failOptions{natsAddr: calltest.FreeAddr(t)})
	sid := newSid("MZ")
	ev := watch(t, fs.nc, sid)
	call := dialSpeed(t, fs.system, sid, "", 1)
	waitForStart(t, fs.system, sid)

	a := mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: sid, Audio: "speech.mp3"})
	ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
	waitFor(t, "200 ms of the clip to play", 5*time.Second, func() bool { return len(call.Played()) >= 1600 })
	readyz := fs.httpURL + edge.PathReadyz

	conns := map[string]*nats.Conn{"edge": fs.edgeNC, "worker": fs.workers[0].nc, "producer": fs.nc}
	before := len(call.Received())
	down := fs.restartNATS(t, conns)
	restarted := time.Now()
	t.Logf("NATS down for %s at %d ms played, %d ms received", down.Round(time.Millisecond), len(call.Played())/8, before/8)
	waitFor(t, "edge, worker and producer to reconnect", 5*time.Second, func() bool {
		for _, nc := range conns {
			if !nc.IsConnected() || nc.Stats().Reconnects != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("all reconnected %s after the restart", time.Since(restarted).Round(time.Millisecond))
	if code := httpStatus(readyz); code != http.StatusOK {
		t.Errorf("edge /readyz %d after reconnecting", code)
	}

	fin := ev.playback(t, bus.EventPlaybackFinished, a.PlaybackID, 15*time.Second)
	select {
	case <-call.Done():
		t.Fatalf("the call was hung up: %v", call.Err())
	default:
	}
	if fs.edge.Streams() != 1 {
		t.Errorf("edge holds %d streams, want 1", fs.edge.Streams())
	}
	if errs := call.Errs(); len(errs) > 0 {
		t.Errorf("protocol violations: %v", errs)
	}

	// Whatever the bus lost while the edge was away was sent again from
	// the last byte relayed: the caller hears the clip whole, once.
	if v := fs.metric(t, `callcast_edge_errors_total{kind="nats_reconnect_resume"}`); v != 1 {
		t.Errorf("nats_reconnect_resume = %v, want 1", v)
	}
	if fin.Playback.HeardMs != fin.Playback.SentMs {
		t.Errorf("finished %+v: heard and sent differ", fin.Playback)
	}
	checkCall(t, call, sid, readRef(t, "speech.ref.ulaw"))
	got := call.Received()
	if st := call.Stats(); st.Underruns != 0 && !raceEnabled {
		t.Errorf("the caller heard %d gaps (%s) across the restart", st.Underruns, st.UnderrunTime)
	}

	// The bus works as before: another playback on the same call plays whole.
	b := mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: sid, Audio: "short.wav"})
	ev.playback(t, bus.EventPlaybackFinished, b.PlaybackID, 10*time.Second)
	if after := call.Received()[len(got):]; len(after) != 8000 {
		t.Errorf("second playback: received %d bytes, want 8000", len(after))
	}
}

func TestWorkerShutdownDrains(t *testing.T) {
	t.Run("playback in flight finishes; new work goes elsewhere", func(t *testing.T) {
		fs := startFailSystem(t, failOptions{workers: 2})
		sid := newSid("MZ")
		ev := watch(t, fs.nc, sid)
		call := dialSpeed(t, fs.system, sid, "", 1)
		waitForStart(t, fs.system, sid)

		a := mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: sid, Audio: "long.wav"})
		ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
		draining, other := fs.rendering(t)
		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			shut <- draining.shutdown(ctx)
		}()
		waitFor(t, draining.name+" to leave the queue group", 5*time.Second, func() bool {
			return !fs.subscribed(t, draining.name, bus.SubjectRender) && !fs.subscribed(t, draining.name, bus.SubjectPlay)
		})
		if draining.Active() != 1 {
			t.Fatalf("%s has %d playbacks in flight, want 1: the test is too slow to catch it draining", draining.name, draining.Active())
		}

		// New work while it drains: another call's playback.
		sid2 := newSid("MZ")
		ev2 := watch(t, fs.nc, sid2)
		call2 := dial(t, fs.system, sid2, "")
		waitForStart(t, fs.system, sid2)
		b := mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: sid2, Audio: "short.wav"})
		ev2.playback(t, bus.EventPlaybackFinished, b.PlaybackID, 10*time.Second)
		if by := fs.sentBy(t, b.PlaybackID); by != other.name {
			t.Errorf("new playback sent by %q, want %q", by, other.name)
		}
		if n := len(call2.Received()); n != 8000 {
			t.Errorf("the new call received %d bytes, want 8000", n)
		}

		ev.playback(t, bus.EventPlaybackFinished, a.PlaybackID, 10*time.Second)
		select {
		case err := <-shut:
			if err != nil {
				t.Errorf("shutdown: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("shutdown did not return after its playback was sent")
		}
		if by := fs.sentBy(t, a.PlaybackID); by != draining.name {
			t.Errorf("playback in flight sent by %q, want %q", by, draining.name)
		}
		if n := len(call.Received()); n != 24000 {
			t.Errorf("the draining worker's call received %d bytes, want all 24000", n)
		}
	})

	t.Run("last worker: queued playback fails with no_workers", func(t *testing.T) {
		fs := startFailSystem(t, failOptions{workers: 1})
		sid := newSid("MZ")
		ev := watch(t, fs.nc, sid)
		call := dialSpeed(t, fs.system, sid, "", 2)
		waitForStart(t, fs.system, sid)

		a := mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: sid, Audio: "long.wav"})
		b := mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: sid, Audio: "short.wav"})
		ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
		w := fs.workers[0]
		shut := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			shut <- w.shutdown(ctx)
		}()
		waitFor(t, "the worker to leave the queue group", 5*time.Second, func() bool {
			return !fs.subscribed(t, w.name, bus.SubjectPlay)
		})
		data, _ := json.Marshal(bus.PlayRequest{StreamSid: sid, Audio: "short.wav"})
		if _, err := fs.nc.Request(bus.SubjectPlay, data, 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("play request to a draining product: %v, want %v", err, nats.ErrNoResponders)
		}

		ev.playback(t, bus.EventPlaybackFinished, a.PlaybackID, 10*time.Second)
		failed := ev.playback(t, bus.EventPlaybackFailed, b.PlaybackID, 5*time.Second)
		if failed.Error == nil || failed.Error.Code != bus.CodeNoWorkers {
			t.Errorf("queued playback failed with %+v, want %s", failed.Error, bus.CodeNoWorkers)
		}
		if err := <-shut; err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if n := len(call.Received()); n != 24000 {
			t.Errorf("the call received %d bytes of the playback in flight, want all 24000", n)
		}
	})

	t.Run("expired deadline stops playbacks", func(t *testing.T) {
		renderTimeout := 500 * time.Millisecond
		if raceEnabled {
			renderTimeout = 1500 * time.Millisecond
		}
		fs := startFailSystem(t, failOptions{workers: 1, renderTimeout: renderTimeout})
		sid := newSid("MZ")
		ev := watch(t, fs.nc, sid)
		fr := recordFrames(t, fs.nc, sid)
		call := dialSpeed(t, fs.system, sid, "", 1)
		waitForStart(t, fs.system, sid)

		a := mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: sid, Audio: "long.wav"})
		ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
		w := fs.workers[0]
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		stopped := time.Now()
		if err := w.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		returned := time.Now()
		if took := returned.Sub(stopped); took > slack()/2 {
			t.Errorf("shutdown with an expired deadline took %s", took)
		}
		if w.Active() != 0 {
			t.Errorf("%d playbacks still in flight after shutdown", w.Active())
		}

		failed := ev.playback(t, bus.EventPlaybackFailed, a.PlaybackID, renderTimeout+slack())
		_, _, lastFrame := fr.attempt(a.PlaybackID, 0)
		t.Logf("shutdown took %s; last frame %s after it returned; playback.failed %s after it began: %+v %+v",
			returned.Sub(stopped).Round(time.Millisecond), lastFrame.Sub(returned).Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond), failed.Playback, failed.Error)
		if failed.Error == nil || failed.Error.Code != bus.CodeNoWorkers {
			t.Errorf("failed error %+v, want %s", failed.Error, bus.CodeNoWorkers)
		}
		if late := lastFrame.Sub(returned); late > 100*time.Millisecond {
			t.Errorf("frames went on %s after shutdown returned", late)
		}
		if n := len(call.Received()); n >= 24000 {
			t.Errorf("the whole clip was sent (%d bytes)", n)
		}
		select {
		case <-call.Done():
			t.Fatalf("the call was hung up: %v", call.Err())
		default:
		}
	})
}

func TestNATSUnreachableAtStart(t *testing.T) {
	natsAddr := calltest.FreeAddr(t)
	logs := &calltest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	busOpts := bus.ConnOptions{URL: "nats://" + natsAddr}
	begun := time.Now()

	type proc struct {
		name  string
		ready chan net.Addr
		done  chan error
	}
	edgeProc := proc{name: "edge", ready: make(chan net.Addr, 1), done: make(chan error, 1)}
	go func() {
		edgeProc.done <- edge.Run(ctx, edge.Options{
			Addr: "127.0.0.1:0", NATS: busOpts, Logger: log.With("proc", "edge"),
			Edge:  edge.Config{ID: "edge-test"},
			Ready: func(a net.Addr) { edgeProc.ready <- a },
		})
	}()
	workerProc := proc{name: "worker", ready: make(chan net.Addr, 1), done: make(chan error, 1)}
	go func() {
		workerProc.done <- worker.Run(ctx, worker.RunOptions{
			NATS: busOpts, HTTPAddr: "127.0.0.1:0", Logger: log.With("proc", "worker"),
			Worker: worker.Config{AudioDir: "testdata/audio", DefaultAudio: worker.NoDefaultAudio},
			Ready:  func(a net.Addr) { workerProc.ready <- a },
		})
	}()
	urls := map[string]string{}
	for _, p := range []proc{edgeProc, workerProc} {
		select {
		case a := <-p.ready:
			urls[p.name] = "http://" + a.String() + "/readyz"
			t.Logf("%s serving HTTP %s after start", p.name, time.Since(begun).Round(time.Millisecond))
		case err := <-p.done:
			t.Fatalf("%s run with NATS unreachable: %v", p.name, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s not serving HTTP 10 s after start with NATS unreachable", p.name)
		}
	}
	for name, u := range urls {
		if code := httpStatus(u); code != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz = %d with NATS unreachable, want 503", name, code)
		}
	}
	for _, name := range []string{"edge", "worker"} {
		waitFor(t, "the "+name+" to log that NATS is not reachable", 5*time.Second, func() bool {
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "proc="+name) && strings.Contains(line, "not reachable") && strings.Contains(line, natsAddr) {
					return true
				}
			}
			return false
		})
	}
	for name, u := range urls {
		if code := httpStatus(u); code != http.StatusServiceUnavailable {
			t.Errorf("%s /readyz = %d with NATS still unreachable, want 503", name, code)
		}
	}

	ns, err := bus.RunServer(bus.ServerOptions{Listen: natsAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	up := time.Now()
	for name, u := range urls {
		waitFor(t, name+" /readyz to answer 200", 5*time.Second, func() bool { return httpStatus(u) == http.StatusOK })
	}
	t.Logf("both ready %s after NATS came up", time.Since(up).Round(time.Millisecond))

	// The worker joined the queue group: a play request for an unknown
	// stream reaches it and is answered.
	nc, err := bus.Connect(bus.ConnOptions{URL: ns.ClientURL(), Name: "producer"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitFor(t, "the worker to answer play requests", 5*time.Second, func() bool {
		data, _ := json.Marshal(bus.PlayRequest{StreamSid: newSid("MZ"), Audio: "speech.mp3"})
		msg, err := nc.Request(bus.SubjectPlay, data, time.Second)
		if err != nil {
			return false
		}
		r, err := bus.DecodePlayReply(msg.Data)
		return err == nil && r.Error != nil && r.Error.Code == bus.CodeUnknownStream
	})

	cancel()
	for _, p := range []proc{edgeProc, workerProc} {
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("%s run: %v", p.name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not return after cancel", p.name)
		}
	}
}
