package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/worker"
)

// cluster is several edges and workers on one NATS server, each with its
// own connection, all shut down (and checked) when the test ends.
type cluster struct {
	edges   []string // WebSocket URLs
	workers []*worker.Worker
	nc      *nats.Conn
}

// opts adjust the edges' configuration.
func startCluster(t *testing.T, edges, workers int, wcfg worker.Config, opts ...func(*edge.Config)) *cluster {
	t.Helper()
	ns := calltest.NATS(t, bus.ServerOptions{})
	connect := func(name string) *nats.Conn {
		nc, err := bus.Connect(bus.ConnOptions{URL: ns.ClientURL(), Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close(nc, 5*time.Second) })
		return nc
	}
	c := &cluster{nc: connect("producer")}
	for i := range workers {
		cfg := wcfg
		cfg.ID = fmt.Sprintf("worker-%d", i)
		w, err := worker.New(connect(cfg.ID), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := w.Shutdown(ctx); err != nil {
				t.Errorf("%s shutdown: %v", cfg.ID, err)
			}
		})
		c.workers = append(c.workers, w)
	}
	for i := range edges {
		id := fmt.Sprintf("edge-%d", i)
		// The same default audio as the workers', as a deployment gives
		// both: the edge queues the call's own audio itself.
		ecfg := edge.Config{ID: id, DefaultAudio: wcfg.DefaultAudio}
		for _, o := range opts {
			o(&ecfg)
		}
		srv, err := edge.New(connect(id), ecfg)
		if err != nil {
			t.Fatal(err)
		}
		c.edges = append(c.edges, "ws://"+calltest.Serve(t, id, srv)+edge.PathMediaStream)
	}
	return c
}

// TestTwoEdgesThreeWorkers places calls on two edges served by three
// workers: every call gets its own audio, from whichever worker, through
// the edge that holds its socket; producers reach calls on either edge.
func TestTwoEdgesThreeWorkers(t *testing.T) {
	c := startCluster(t, 2, 3, worker.Config{AudioDir: "testdata/audio", DefaultAudio: worker.NoDefaultAudio})
	var starts sync.Map // streamSid → edge id
	sub, err := c.nc.Subscribe(bus.SubjectStreamStarted, func(m *nats.Msg) {
		var st bus.StreamStarted
		if json.Unmarshal(m.Data, &st) == nil {
			starts.Store(st.StreamSid, st.Edge)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	type leg struct {
		sid, audio, ref, edge string
		sys                   *system
		ev                    *events
		playback              string
	}
	var legs []*leg
	for i := range 6 {
		l := &leg{sid: newSid("MZ"), audio: "speech.mp3", ref: "speech.ref.ulaw", edge: fmt.Sprintf("edge-%d", i%2)}
		if i%3 == 1 {
			l.audio, l.ref = "tone440.mp3", "tone440.ref.ulaw"
		}
		l.sys = &system{wsURL: c.edges[i%2], nc: c.nc}
		l.ev = watch(t, c.nc, l.sid)
		legs = append(legs, l)
	}
	calls := make(map[string]*callsim.Call)
	for _, l := range legs {
		call := dialSpeed(t, l.sys, l.sid, "", 4)
		calls[l.sid] = call
		waitForStart(t, l.sys, l.sid)
		l.playback = mustPlay(t, c.nc, bus.PlayRequest{StreamSid: l.sid, Audio: l.audio}).PlaybackID
	}
	for _, l := range legs {
		l.ev.playback(t, bus.EventPlaybackFinished, l.playback, 20*time.Second)
	}
	for _, l := range legs {
		t.Run(l.sid[:10]+"-"+l.audio, func(t *testing.T) {
			if e, _ := starts.Load(l.sid); e != l.edge {
				t.Errorf("stream started on %v, want %s", e, l.edge)
			}
			got, ref := calls[l.sid].Received(), readRef(t, l.ref)
			if d := len(got) - len(ref); d < -800 || d > 800 {
				t.Errorf("received %d bytes, want %d", len(got), len(ref))
			}
			if s := similarity(got, ref, 200); s < 0.9 {
				t.Errorf("correlation %.3f with its own audio", s)
			}
		})
	}
}
