package edge

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/twilio"
)

// enqueueOn queues e on the call sid as a worker would and returns the
// edge's reply.
func enqueueOn(t *testing.T, nc *nats.Conn, sid string, e bus.Enqueue) *bus.PlayReply {
	t.Helper()
	e.Type = bus.TypeEnqueue
	req, _ := json.Marshal(e)
	resp, err := nc.Request(bus.StreamPlay(sid), req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := bus.DecodePlayReply(resp.Data)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// queueOnNewCall starts a call on the edge at addr and queues playback pb1
// of a.mp3 on it, as a worker would; it returns the call's events and when
// the playback was queued.
func queueOnNewCall(t *testing.T, addr string, nc *nats.Conn) (*sub, time.Time) {
	t.Helper()
	p := dialPeer(t, addr)
	events := subscribe(t, nc, bus.StreamEvents(p.sid))
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	p.start(nil)
	started.wait(t, 1)
	begin := time.Now()
	enqueueOn(t, nc, p.sid, bus.Enqueue{PlaybackID: "pb1", Audio: "a.mp3", Mode: bus.ModeQueue})
	return events, begin
}

// TestSilentWorkersExhaustAttempts: workers that take a playback and never
// send anything are replaced, attempt after attempt, until RenderAttempts
// is used up and the producer hears playback.failed.
func TestSilentWorkersExhaustAttempts(t *testing.T) {
	const timeout = 150 * time.Millisecond
	addr, nc := serve(t, Config{RenderTimeout: timeout, RenderAttempts: 3})
	var mu sync.Mutex
	var attempts []int
	sub, err := nc.Subscribe(bus.SubjectRender, func(m *nats.Msg) {
		rr, err := bus.DecodeRenderRequest(m.Data)
		if err != nil {
			t.Errorf("render request: %v", err)
			return
		}
		mu.Lock()
		attempts = append(attempts, rr.Attempt)
		mu.Unlock()
		reply, _ := json.Marshal(bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: rr.PlaybackID})
		_ = m.Respond(reply) // accepted, and then silence
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	events, begin := queueOnNewCall(t, addr, nc)
	evs := events.events(t, 1)
	took := time.Since(begin)
	if evs[0].Event != bus.EventPlaybackFailed || evs[0].Error == nil || evs[0].Error.Code != bus.CodeNoWorkers {
		t.Fatalf("event %+v %+v, want playback.failed no_workers", evs[0], evs[0].Error)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 3 || attempts[0] != 0 || attempts[1] != 1 || attempts[2] != 2 {
		t.Fatalf("render attempts %v, want [0 1 2]", attempts)
	}
	if took < 3*timeout {
		t.Errorf("failed after %s, before three silences of %s", took, timeout)
	}
	t.Logf("three silent workers, then playback.failed after %s", took.Round(time.Millisecond))
}

// TestBusyWorkersAreAskedAgain: workers that answer busy (full, or not yet
// heard of everywhere after an outage) are asked again, less and less
// often: a worker with room a second later takes the playback; workers
// busy throughout fail it with busy after about renderBusyWait.
func TestBusyWorkersAreAskedAgain(t *testing.T) {
	for _, tt := range []struct {
		name      string
		busyFor   time.Duration
		wantEvent string
	}{
		{"room after a second", time.Second, bus.EventPlaybackStarted},
		{"busy throughout", time.Hour, bus.EventPlaybackFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, nc := serve(t, Config{})
			var mu sync.Mutex
			var asked []time.Time
			sub, err := nc.Subscribe(bus.SubjectRender, func(m *nats.Msg) {
				rr, _ := bus.DecodeRenderRequest(m.Data)
				now := time.Now()
				mu.Lock()
				asked = append(asked, now)
				first := asked[0]
				mu.Unlock()
				reply := bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: rr.PlaybackID}
				if now.Sub(first) < tt.busyFor {
					reply.Error = &bus.Error{Code: bus.CodeBusy, Message: "full"}
				}
				data, _ := json.Marshal(reply)
				_ = m.Respond(data)
				if reply.Error == nil {
					// Its one frame, so that the playback starts.
					media := []byte(`{"event":"media","media":{"payload":"` + base64.StdEncoding.EncodeToString(make([]byte, 1600)) + `"}}`)
					_ = nc.PublishMsg(&nats.Msg{Subject: bus.StreamOut(rr.StreamSid), Data: media,
						Header: nats.Header{bus.HeaderPlayback: {bus.PlaybackHeader(rr.PlaybackID, rr.Attempt)}}})
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()

			events, begin := queueOnNewCall(t, addr, nc)
			var ev *bus.Event
			waitFor(t, tt.wantEvent, func() bool {
				for _, m := range events.wait(t, 0) {
					if e, err := bus.DecodeEvent(m); err == nil && e.Event == tt.wantEvent {
						ev = e
						return true
					}
				}
				return false
			})
			took := time.Since(begin)
			mu.Lock()
			n := len(asked)
			mu.Unlock()
			t.Logf("%s after %s and %d requests", ev.Event, took.Round(time.Millisecond), n)
			if tt.wantEvent == bus.EventPlaybackFailed {
				if ev.Error == nil || ev.Error.Code != bus.CodeBusy {
					t.Errorf("failed with %+v, want busy", ev.Error)
				}
				if took < renderBusyWait || n < 5 {
					t.Errorf("gave up after %s and %d requests, want about %s of asking", took, n, renderBusyWait)
				}
			} else if n < 2 {
				t.Errorf("%d requests, want the busy one and the next", n)
			}
		})
	}
}

// TestQueueIsBounded: past MaxQueuedPlaybacks a play request is answered
// queue_full and changes nothing, however many arrive; an interrupt still
// goes through; hanging up publishes one event per playback held, not one
// per request ever made.
func TestQueueIsBounded(t *testing.T) {
	const limit = 5
	addr, nc := serve(t, Config{MaxQueuedPlaybacks: limit, RenderTimeout: time.Minute})
	sub, err := nc.Subscribe(bus.SubjectRender, func(m *nats.Msg) {
		rr, _ := bus.DecodeRenderRequest(m.Data)
		reply, _ := json.Marshal(bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: rr.PlaybackID})
		_ = m.Respond(reply) // accepted; it plays "forever"
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	p := dialPeer(t, addr)
	events := subscribe(t, nc, bus.StreamEvents(p.sid))
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	p.start(nil)
	started.wait(t, 1)
	enqueue := func(id, mode string) *bus.PlayReply {
		t.Helper()
		return enqueueOn(t, nc, p.sid, bus.Enqueue{PlaybackID: id, Audio: "a.mp3", Mode: mode})
	}
	// One sending, limit queued.
	for i := range limit + 1 {
		if r := enqueue("pb"+itoa(i), bus.ModeQueue); r.Error != nil {
			t.Fatalf("playback %d: %+v", i, r.Error)
		}
	}
	// A flood, from as many requesters at once as a worker pool has: every
	// request refused, none kept.
	const requesters, each = 16, 125
	var wg sync.WaitGroup
	for g := range requesters {
		wg.Go(func() {
			for i := range each {
				req, _ := json.Marshal(bus.Enqueue{Type: bus.TypeEnqueue, PlaybackID: "f" + itoa(g) + "x" + itoa(i), Audio: "a.mp3", Mode: bus.ModeQueue})
				resp, err := nc.Request(bus.StreamPlay(p.sid), req, 10*time.Second)
				if err != nil {
					t.Errorf("flood request: %v", err)
					return
				}
				if r, err := bus.DecodePlayReply(resp.Data); err != nil || r.Error == nil || r.Error.Code != bus.CodeQueueFull {
					t.Errorf("flood reply %s, want queue_full", resp.Data)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// An interrupt replaces everything, so it is taken.
	if r := enqueue("int", bus.ModeInterrupt); r.Error != nil {
		t.Fatalf("interrupt refused: %+v", r.Error)
	}
	// The interrupt clears Twilio's buffer and ends the limit+1 playbacks.
	evs := events.events(t, limit+2)
	if evs[0].Event != bus.EventClear {
		t.Fatalf("first event %+v, want clear", evs[0])
	}
	for _, ev := range evs[1:] {
		if ev.Event != bus.EventPlaybackInterrupted || ev.Playback.Reason != "interrupt" {
			t.Fatalf("event %+v, want playback.interrupted by the interrupt", ev)
		}
	}
	// Hanging up ends the one playback left: one event and the stop.
	p.send(twilio.Message{Event: twilio.EventStop, StreamSid: p.sid, Stop: &twilio.Stop{CallSid: "CA1"}})
	evs = events.events(t, limit+4)[limit+2:]
	if evs[0].Event != bus.EventPlaybackInterrupted || evs[0].Playback.ID != "int" || evs[1].Event != bus.EventStop {
		t.Fatalf("hang-up events %+v %+v, want the interrupt's playback.interrupted then stop", evs[0], evs[1])
	}
	time.Sleep(100 * time.Millisecond) // nothing else may follow
	if n := len(events.wait(t, 0)); n != limit+4 {
		t.Fatalf("%d events in all, want %d", n, limit+4)
	}
}

// TestStreamRefusedWhenTheEdgeMayNotSubscribe: an edge whose NATS user may
// not subscribe to playback audio answers a streamed play with an error,
// instead of an audioSubject where nothing listens.
func TestStreamRefusedWhenTheEdgeMayNotSubscribe(t *testing.T) {
	ns := calltest.StartNATS(t, &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "edge", Password: "e", Permissions: &server.Permissions{
				Subscribe: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"callcast.playback.>"}},
			}},
			{Username: "producer", Password: "p"},
		},
	})
	edgeNC, err := bus.Connect(bus.ConnOptions{URL: ns.ClientURL(), User: "edge", Password: "e"})
	if err != nil {
		t.Fatal(err)
	}
	defer edgeNC.Close()
	nc, err := bus.Connect(bus.ConnOptions{URL: ns.ClientURL(), User: "producer", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	srv, err := New(edgeNC, Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr := calltest.Serve(t, "edge", srv)
	p := dialPeer(t, addr)
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	p.start(nil)
	started.wait(t, 1)
	reply := enqueueOn(t, nc, p.sid, bus.Enqueue{PlaybackID: "pb1", Stream: &bus.StreamFormat{Format: bus.FormatMulaw}, Mode: bus.ModeQueue})
	if reply.Error == nil || reply.AudioSubject != "" || !strings.Contains(reply.Error.Message, "may not subscribe") {
		t.Fatalf("reply %+v %+v, want an error naming the refused subscription", reply, reply.Error)
	}
}
