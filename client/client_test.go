package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/client"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/twilio"
)

// The tests in this file answer the bus contract themselves, as callcast
// would, to check what the client sends and how it reads every answer; the
// examples and internal/e2e run the client against the real product.

// natsConn runs an in-process NATS server and returns a connection to it.
func natsConn(t testing.TB, maxPayload int32) *nats.Conn {
	t.Helper()
	ns := calltest.StartNATS(t, &server.Options{DontListen: true, NoLog: true, NoSigs: true, MaxPayload: maxPayload})
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// respond answers every request on subject with what answer returns.
func respond(t testing.TB, nc *nats.Conn, subject string, answer func(*nats.Msg) []byte) {
	t.Helper()
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if data := answer(m); data != nil {
			_ = m.Respond(data)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const sid = "MZ0123456789abcdef0123456789abcdef"

func TestPlay(t *testing.T) {
	nc := natsConn(t, 0)
	c := client.New(nc, client.Options{})
	var got bus.PlayRequest
	respond(t, nc, bus.SubjectPlay, func(m *nats.Msg) []byte {
		req, err := bus.DecodePlayRequest(m.Data)
		if err != nil {
			return mustJSON(t, bus.ErrorReply(bus.CodeBadRequest, err.Error()))
		}
		got = *req
		return mustJSON(t, bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: "pb1", DurationMs: 3084})
	})
	pb, err := c.Play(ctx(t), sid, "welcome.mp3", client.PlayOptions{Mode: client.Interrupt, ID: "my-42", Interruptible: true})
	if err != nil {
		t.Fatal(err)
	}
	want := client.Playback{ID: "pb1", StreamSid: sid, RequestID: "my-42", Audio: "welcome.mp3", DurationMs: 3084}
	if pb != want {
		t.Errorf("playback %+v, want %+v", pb, want)
	}
	if got.Type != bus.TypePlayRequest || got.StreamSid != sid || got.Audio != "welcome.mp3" || got.Stream != nil ||
		got.Mode != bus.ModeInterrupt || got.ID != "my-42" || !got.Interruptible {
		t.Errorf("request %+v", got)
	}
	// The zero options queue.
	if _, err := c.Play(ctx(t), sid, "welcome.mp3", client.PlayOptions{}); err != nil || got.Mode != bus.ModeQueue || got.Interruptible {
		t.Errorf("zero options: %v, request %+v", err, got)
	}
}

func TestPlayErrors(t *testing.T) {
	nc := natsConn(t, 0)
	c := client.New(nc, client.Options{Timeout: 2 * time.Second})

	// No worker: NATS says no responders at once.
	_, err := c.Play(ctx(t), sid, "a.mp3", client.PlayOptions{})
	if !errors.Is(err, client.ErrNoWorkers) || !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("no workers: %v", err)
	}

	var answer atomic.Value // []byte
	respond(t, nc, bus.SubjectPlay, func(*nats.Msg) []byte { return answer.Load().([]byte) })
	codes := []struct {
		code     string
		sentinel error
	}{
		{bus.CodeBadRequest, client.ErrBadRequest},
		{bus.CodeUnknownStream, client.ErrUnknownStream},
		{bus.CodeUnknownAudio, client.ErrUnknownAudio},
		{bus.CodeBadAudio, client.ErrBadAudio},
		{bus.CodeBusy, client.ErrBusy},
		{bus.CodeQueueFull, client.ErrQueueFull},
		{bus.CodeNoWorkers, client.ErrNoWorkers},
		{bus.CodeUnavailable, client.ErrUnavailable},
		{bus.CodeInternal, client.ErrInternal},
	}
	for _, tc := range codes {
		t.Run(tc.code, func(t *testing.T) {
			answer.Store(mustJSON(t, bus.ErrorReply(tc.code, "because")))
			_, err := c.Play(ctx(t), sid, "a.mp3", client.PlayOptions{})
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("err = %v, want %v", err, tc.sentinel)
			}
			for _, other := range codes {
				if other.code != tc.code && errors.Is(err, other.sentinel) {
					t.Errorf("err %v also matches %v", err, other.sentinel)
				}
			}
			var e *client.Error
			if !errors.As(err, &e) || e.Code != tc.code || e.Message != "because" {
				t.Errorf("errors.As: %+v", e)
			}
			if want := "client: play: " + tc.code + ": because"; err.Error() != want {
				t.Errorf("message %q, want %q", err, want)
			}
		})
	}

	bad := []struct {
		name, answer string
	}{
		{"not json", "oops"},
		{"another type", `{"type":"callcast.calls.reply.v1"}`},
		{"no playback id", `{"type":"callcast.play.reply.v1"}`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			answer.Store([]byte(tc.answer))
			if _, err := c.Play(ctx(t), sid, "a.mp3", client.PlayOptions{}); !errors.Is(err, client.ErrBadReply) {
				t.Errorf("err = %v, want ErrBadReply", err)
			}
		})
	}

	// Requests checked before they are sent.
	for name, play := range map[string]func() error{
		"bad sid":    func() error { _, err := c.Play(ctx(t), "MZ.>", "a.mp3", client.PlayOptions{}); return err },
		"no audio":   func() error { _, err := c.Play(ctx(t), sid, "", client.PlayOptions{}); return err },
		"bad format": func() error { _, err := c.Stream(ctx(t), sid, client.PCM(4000, 1), client.PlayOptions{}); return err },
		"no format":  func() error { _, err := c.Stream(ctx(t), sid, client.Format{}, client.PlayOptions{}); return err },
	} {
		if err := play(); !errors.Is(err, client.ErrBadRequest) {
			t.Errorf("%s: err = %v, want ErrBadRequest", name, err)
		}
	}

	// A worker that never answers: the context's deadline.
	silent := natsConn(t, 0)
	respond(t, silent, bus.SubjectPlay, func(*nats.Msg) []byte { return nil })
	sc := client.New(silent, client.Options{})
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := sc.Play(short, sid, "a.mp3", client.PlayOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent worker: err = %v, want the deadline", err)
	}
}

// audioSink records what is published on a playback's audio subject.
type audioSink struct {
	mu   sync.Mutex
	msgs []*nats.Msg
	end  chan struct{}
}

func sinkAudio(t *testing.T, nc *nats.Conn, subject string) *audioSink {
	t.Helper()
	s := &audioSink{end: make(chan struct{})}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.mu.Unlock()
		if m.Header.Get(bus.HeaderEnd) == "true" {
			close(s.end)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return s
}

// streamResponder answers stream requests as a worker relaying the edge's
// reply does, subscribing to the audio subject before answering.
func streamResponder(t *testing.T, nc *nats.Conn, reqs chan<- bus.PlayRequest, sinks chan<- *audioSink) {
	t.Helper()
	n := 0
	respond(t, nc, bus.SubjectPlay, func(m *nats.Msg) []byte {
		req, err := bus.DecodePlayRequest(m.Data)
		if err != nil {
			return mustJSON(t, bus.ErrorReply(bus.CodeBadRequest, err.Error()))
		}
		n++
		id := "pb" + strconv.Itoa(n)
		sinks <- sinkAudio(t, nc, bus.PlaybackAudio(id))
		if err := nc.Flush(); err != nil {
			t.Error(err)
		}
		reqs <- *req
		return mustJSON(t, bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: id, AudioSubject: bus.PlaybackAudio(id)})
	})
}

func TestStreamWriter(t *testing.T) {
	tests := []struct {
		name       string
		maxPayload int32
		chunkSize  int
		writes     []int // sizes of the Writes
		wantSizes  []int // payloads of the messages, the end's last
	}{
		{"small writes go as they are", 0, 0, []int{160, 3, 1000}, []int{160, 3, 1000, 0}},
		{"large writes split at 64 KiB", 0, 0, []int{150 << 10}, []int{64 << 10, 64 << 10, 22 << 10, 0}},
		{"chunk size option", 0, 1000, []int{2500}, []int{1000, 1000, 500, 0}},
		{"the server's max payload", 16 << 10, 0, []int{40 << 10}, []int{16<<10 - 256, 16<<10 - 256, 40<<10 - 2*(16<<10-256), 0}},
		{"empty writes publish nothing", 0, 0, []int{0, 10, 0}, []int{10, 0}},
		{"no audio at all", 0, 0, nil, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := natsConn(t, tt.maxPayload)
			reqs, sinks := make(chan bus.PlayRequest, 1), make(chan *audioSink, 1)
			streamResponder(t, nc, reqs, sinks)
			c := client.New(nc, client.Options{ChunkSize: tt.chunkSize})
			w, err := c.Stream(ctx(t), sid, client.PCM(24000, 1), client.PlayOptions{ID: "utt-7"})
			if err != nil {
				t.Fatal(err)
			}
			req, sink := <-reqs, <-sinks
			if req.Stream == nil || *req.Stream != (bus.StreamFormat{Format: "pcm_s16le", SampleRate: 24000, Channels: 1}) || req.Audio != "" || req.ID != "utt-7" {
				t.Errorf("request %+v stream %+v", req, req.Stream)
			}
			if pb := w.Playback(); pb.ID != "pb1" || pb.StreamSid != sid || pb.RequestID != "utt-7" || pb.Stream != "pcm_s16le/24000/1" {
				t.Errorf("playback %+v", pb)
			}
			var sent bytes.Buffer
			for i, n := range tt.writes {
				p := bytes.Repeat([]byte{byte(i + 1)}, n)
				sent.Write(p)
				if k, err := w.Write(p); err != nil || k != n {
					t.Fatalf("write %d: %d, %v", n, k, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Errorf("second close: %v", err)
			}
			if _, err := w.Write([]byte{1}); !errors.Is(err, client.ErrClosed) {
				t.Errorf("write after close: %v", err)
			}
			select {
			case <-sink.end:
			case <-time.After(5 * time.Second):
				t.Fatal("no end")
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			var got bytes.Buffer
			var sizes []int
			for i, m := range sink.msgs {
				if seq := m.Header.Get(bus.HeaderSeq); seq != strconv.Itoa(i+1) {
					t.Errorf("message %d: %s %q", i, bus.HeaderSeq, seq)
				}
				if end := m.Header.Get(bus.HeaderEnd); (end == "true") != (i == len(sink.msgs)-1) {
					t.Errorf("message %d of %d: %s %q", i+1, len(sink.msgs), bus.HeaderEnd, end)
				}
				sizes = append(sizes, len(m.Data))
				got.Write(m.Data)
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tt.wantSizes) {
				t.Errorf("payloads %v, want %v", sizes, tt.wantSizes)
			}
			if !bytes.Equal(got.Bytes(), sent.Bytes()) {
				t.Errorf("published %d bytes, not the %d written", got.Len(), sent.Len())
			}
		})
	}
}

func TestStreamFormats(t *testing.T) {
	nc := natsConn(t, 0)
	reqs, sinks := make(chan bus.PlayRequest, 1), make(chan *audioSink, 1)
	streamResponder(t, nc, reqs, sinks)
	c := client.New(nc, client.Options{})
	tests := []struct {
		f    client.Format
		want bus.StreamFormat
		name string
	}{
		{client.Mulaw, bus.StreamFormat{Format: "mulaw"}, "mulaw"},
		{client.MP3, bus.StreamFormat{Format: "mp3"}, "mp3"},
		{client.WAV, bus.StreamFormat{Format: "wav"}, "wav"},
		{client.PCM(48000, 2), bus.StreamFormat{Format: "pcm_s16le", SampleRate: 48000, Channels: 2}, "pcm_s16le/48000/2"},
	}
	for _, tt := range tests {
		w, err := c.Stream(ctx(t), sid, tt.f, client.PlayOptions{Mode: client.Interrupt})
		if err != nil {
			t.Fatal(err)
		}
		req := <-reqs
		<-sinks
		if *req.Stream != tt.want || req.Mode != bus.ModeInterrupt || tt.f.String() != tt.name || w.Playback().Stream != tt.name {
			t.Errorf("%v: request %+v mode %s", tt.f, req.Stream, req.Mode)
		}
		_ = w.Close()
	}
	if got := client.PCM(24000, 2).BytesPerSecond(); got != 96000 {
		t.Errorf("pcm 24000/2: %d bytes/s", got)
	}
	if got := client.Mulaw.BytesPerSecond(); got != 8000 {
		t.Errorf("mulaw: %d bytes/s", got)
	}
}

func TestStreamBadAudioSubject(t *testing.T) {
	nc := natsConn(t, 0)
	respond(t, nc, bus.SubjectPlay, func(*nats.Msg) []byte {
		return mustJSON(t, bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: "pb1", AudioSubject: "callcast.stream.x.out"})
	})
	c := client.New(nc, client.Options{})
	if _, err := c.Stream(ctx(t), sid, client.Mulaw, client.PlayOptions{}); !errors.Is(err, client.ErrBadReply) {
		t.Errorf("err = %v, want ErrBadReply", err)
	}
}

func TestClear(t *testing.T) {
	nc := natsConn(t, 0)
	out, err := nc.SubscribeSync(bus.StreamOut(sid))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(nc, client.Options{})
	if err := c.Clear(ctx(t), sid); err != nil {
		t.Fatal(err)
	}
	m, err := out.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := bus.DecodeOut(m.Data); err != nil || msg.Event != "clear" || m.Header.Get(bus.HeaderPlayback) != "" {
		t.Errorf("published %s: %v", m.Data, err)
	}
	if err := c.Clear(ctx(t), "bad sid"); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("bad sid: %v", err)
	}
}

// publishEvents publishes events on sid's events subject, as the edge does.
func publishEvents(t *testing.T, nc *nats.Conn, sid string, evs ...bus.Event) {
	t.Helper()
	for _, ev := range evs {
		ev.Type, ev.StreamSid = bus.TypeStreamEvent, sid
		if err := nc.Publish(bus.StreamEvents(sid), mustJSON(t, ev)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func pbEvent(kind, id string) bus.Event {
	return bus.Event{Event: kind, Playback: &bus.Playback{ID: id, RequestID: "r-" + id, HeardMs: 1200, SentMs: 1400, Reason: "clear"}}
}

func TestEvents(t *testing.T) {
	nc := natsConn(t, 0)
	c := client.New(nc, client.Options{})
	evs, err := c.Events(ctx(t), sid)
	if err != nil {
		t.Fatal(err)
	}
	defer evs.Close()
	all, err := c.Events(ctx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	at := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	failed := pbEvent(bus.EventPlaybackFailed, "p3")
	failed.Error = &bus.Error{Code: bus.CodeStalled, Message: "no audio for 10s"}
	publishEvents(t, nc, sid,
		bus.Event{Event: bus.EventMark, Time: at, Mark: &twilio.Mark{Name: "m1"}},
		bus.Event{Event: bus.EventDTMF, DTMF: &bus.DTMF{Digit: "5"}},
		bus.Event{Event: bus.EventSpeechStopped, Speech: &bus.Speech{AtMs: 4000, DurationMs: 1500}},
		pbEvent(bus.EventPlaybackStarted, "p1"),
		pbEvent(bus.EventPlaybackFinished, "p1"),
		pbEvent(bus.EventPlaybackInterrupted, "p2"),
		failed,
	)
	// Not an event: skipped.
	if err := nc.Publish(bus.StreamEvents(sid), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	publishEvents(t, nc, "MZother", bus.Event{Event: bus.EventDTMF, DTMF: &bus.DTMF{Digit: "9"}})

	ev, err := evs.Next(ctx(t))
	if err != nil || ev.Kind != client.EventMark || ev.Mark == nil || ev.Mark.Name != "m1" || ev.StreamSid != sid || !ev.Time.Equal(at) {
		t.Fatalf("mark: %+v %v", ev, err)
	}
	if ev, err = evs.Next(ctx(t)); err != nil || ev.Kind != client.EventDTMF || ev.DTMF.Digit != "5" {
		t.Fatalf("dtmf: %+v %v", ev, err)
	}
	if ev, err = evs.Next(ctx(t)); err != nil || ev.Kind != client.EventSpeechStopped || *ev.Speech != (client.Speech{AtMs: 4000, DurationMs: 1500}) {
		t.Fatalf("speech: %+v %v", ev, err)
	}
	if ev, err = evs.Next(ctx(t)); err != nil || ev.Kind != client.EventPlaybackStarted ||
		*ev.Playback != (client.Playback{ID: "p1", StreamSid: sid, RequestID: "r-p1", SentMs: 1400, HeardMs: 1200, Reason: "clear"}) {
		t.Fatalf("playback.started: %+v %v", ev.Playback, err)
	}
	// p1's end, read by Next here, still counts for WaitPlayback.
	if ev, err = evs.Next(ctx(t)); err != nil || ev.Kind != client.EventPlaybackFinished {
		t.Fatalf("playback.finished: %+v %v", ev, err)
	}
	if ev, err := evs.WaitPlayback(ctx(t), "p1"); err != nil || ev.Kind != client.EventPlaybackFinished {
		t.Errorf("wait p1: %+v %v", ev, err)
	}
	// p3 is read past p2.
	ev, err = evs.WaitPlayback(ctx(t), "p3")
	var e *client.Error
	if ev.Kind != client.EventPlaybackFailed || !errors.Is(err, client.ErrStalled) || !errors.As(err, &e) || e.Message != "no audio for 10s" {
		t.Errorf("wait p3: %+v %v", ev, err)
	}
	if ev, err := evs.WaitPlayback(ctx(t), "p2"); !errors.Is(err, client.ErrInterrupted) || ev.Playback.Reason != "clear" || ev.Playback.HeardMs != 1200 {
		t.Errorf("wait p2: %+v %v", ev, err)
	}

	// The call ends: its playbacks' ends come first, then stop, then EOF.
	publishEvents(t, nc, sid, bus.Event{Event: bus.EventStop, Stop: &bus.Stop{Reason: bus.StopReasonTwilio, CallSid: "CA1"}})
	if ev, err = evs.Next(ctx(t)); err != nil || ev.Kind != client.EventStop || *ev.Stop != (client.Stop{Reason: "stop", CallSid: "CA1"}) {
		t.Fatalf("stop: %+v %v", ev, err)
	}
	if _, err = evs.Next(ctx(t)); err != io.EOF {
		t.Errorf("after stop: %v, want io.EOF", err)
	}
	if _, err := evs.WaitPlayback(ctx(t), "p4"); !errors.Is(err, client.ErrCallEnded) {
		t.Errorf("wait after the end: %v, want ErrCallEnded", err)
	}

	// Every call's events: both calls', and a stop does not end them.
	var kinds []string
	for range 9 {
		ev, err := all.Next(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, ev.StreamSid[:7]+" "+ev.Kind)
	}
	want := "[MZ01234 mark MZ01234 dtmf MZ01234 speech.stopped MZ01234 playback.started MZ01234 playback.finished " +
		"MZ01234 playback.interrupted MZ01234 playback.failed MZother dtmf MZ01234 stop]"
	if fmt.Sprint(kinds) != want {
		t.Errorf("all calls' events %v\nwant %s", kinds, want)
	}
	publishEvents(t, nc, sid, bus.Event{Event: bus.EventDTMF, DTMF: &bus.DTMF{Digit: "1"}})
	if ev, err := all.Next(ctx(t)); err != nil || ev.Kind != client.EventDTMF {
		t.Errorf("after a stop, every call's events go on: %+v %v", ev, err)
	}

	// Waiting honours the context; Close ends Next.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := all.WaitPlayback(short, "never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait with a deadline: %v", err)
	}
	if err := all.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := all.Next(ctx(t)); !errors.Is(err, client.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := c.Events(ctx(t), "MZ.*"); !errors.Is(err, client.ErrBadRequest) {
		t.Errorf("bad sid: %v", err)
	}
}

// fakeEdge answers callcast.calls as an edge would, after delay.
func fakeEdge(t *testing.T, nc *nats.Conn, name string, delay time.Duration, pages ...[]bus.Call) {
	t.Helper()
	respond(t, nc, bus.SubjectCalls, func(m *nats.Msg) []byte {
		if _, err := bus.DecodeCallsRequest(m.Data); err != nil {
			t.Errorf("calls request %s: %v", m.Data, err)
		}
		time.Sleep(delay) // a slow edge; nothing waits on it but the client under test
		for _, p := range pages[:len(pages)-1] {
			_ = m.Respond(mustJSON(t, bus.CallsReply{Type: bus.TypeCallsReply, Edge: name, Calls: p}))
		}
		return mustJSON(t, bus.CallsReply{Type: bus.TypeCallsReply, Edge: name, Calls: pages[len(pages)-1]})
	})
}

func TestCalls(t *testing.T) {
	nc := natsConn(t, 0)
	c := client.New(nc, client.Options{CallsQuiet: 300 * time.Millisecond})
	if _, err := c.Calls(ctx(t)); !errors.Is(err, client.ErrNoEdges) || err.Error() != "client: calls: no edge answered" {
		t.Fatalf("no edges: %v", err)
	}
	call := func(sid, at string) bus.Call {
		return bus.Call{StreamSid: sid, CallSid: "CA" + sid[2:], AccountSid: "AC1", StartedAt: at, CustomParameters: map[string]string{"who": sid}}
	}
	fakeEdge(t, nc, "edge-a", 0, []bus.Call{call("MZa1", "2026-11-27T06:00:03Z")}, []bus.Call{call("MZa2", "2026-11-27T06:00:01.5Z")})
	fakeEdge(t, nc, "edge-b", 100*time.Millisecond, []bus.Call{call("MZb1", "2026-11-27T06:00:02+01:00")})
	fakeEdge(t, nc, "edge-c", 0, []bus.Call{})
	// An edge of another version answering garbage is skipped.
	respond(t, nc, bus.SubjectCalls, func(*nats.Msg) []byte { return []byte(`{"type":"callcast.calls.reply.v9"}`) })

	calls, err := c.Calls(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, cl := range calls {
		got = append(got, cl.StreamSid+"@"+cl.Edge+" "+cl.StartedAt.UTC().Format("15:04:05.0")+" "+cl.Parameters["who"]+" "+cl.CallSid+" "+cl.AccountSid)
	}
	want := "[MZb1@edge-b 05:00:02.0 MZb1 CAb1 AC1 MZa2@edge-a 06:00:01.5 MZa2 CAa2 AC1 MZa1@edge-a 06:00:03.0 MZa1 CAa1 AC1]"
	if fmt.Sprint(got) != want {
		t.Errorf("calls %v\nwant %s", got, want)
	}

	// Nothing but answers it cannot read is ErrBadReply, not "no calls".
	odd := natsConn(t, 0)
	respond(t, odd, bus.SubjectCalls, func(*nats.Msg) []byte { return []byte(`{"type":"callcast.calls.reply.v9"}`) })
	if _, err := client.New(odd, client.Options{}).Calls(ctx(t)); !errors.Is(err, client.ErrBadReply) {
		t.Errorf("only unreadable answers: %v, want ErrBadReply", err)
	}

	// The context bounds the wait for an edge that does not answer in time.
	slow := natsConn(t, 0)
	fakeEdge(t, slow, "edge-slow", 2*time.Second, []bus.Call{})
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := client.New(slow, client.Options{}).Calls(short); !errors.Is(err, client.ErrNoEdges) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow edge: %v", err)
	}
}

// fakeListen answers lease requests on sid's listen subject as the edge
// holding it would, counting them.
type fakeListen struct {
	leases atomic.Int32
	asked  atomic.Int64
}

func serveListen(t *testing.T, nc *nats.Conn, sid string, leaseMs int64) *fakeListen {
	t.Helper()
	f := &fakeListen{}
	respond(t, nc, bus.StreamListen(sid), func(m *nats.Msg) []byte {
		var req bus.ListenRequest
		if err := json.Unmarshal(m.Data, &req); err != nil || req.Type != bus.TypeListenRequest {
			t.Errorf("listen request %s: %v", m.Data, err)
		}
		f.asked.Store(req.LeaseMs)
		f.leases.Add(1)
		return mustJSON(t, bus.ListenReply{Type: bus.TypeListenReply, LeaseMs: leaseMs, Subject: bus.StreamIn(sid)})
	})
	return f
}

func publishIn(t *testing.T, nc *nats.Conn, sid string, seq, ts int, audio []byte) {
	t.Helper()
	m := &nats.Msg{Subject: bus.StreamIn(sid), Data: audio, Header: nats.Header{}}
	m.Header.Set(bus.HeaderSeq, strconv.Itoa(seq))
	m.Header.Set(bus.HeaderTimestamp, strconv.Itoa(ts))
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
}

func TestListen(t *testing.T) {
	nc := natsConn(t, 0)
	c := client.New(nc, client.Options{})
	if _, err := c.Listen(ctx(t), sid, client.ListenOptions{}); !errors.Is(err, client.ErrUnknownStream) {
		t.Fatalf("no edge holds the call: %v", err)
	}
	edge := serveListen(t, nc, sid, 200)
	l, err := c.Listen(ctx(t), sid, client.ListenOptions{Lease: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if edge.asked.Load() != 30000 {
		t.Errorf("asked for %d ms", edge.asked.Load())
	}
	for i := range 3 {
		publishIn(t, nc, sid, 1+i, 20*i, bytes.Repeat([]byte{byte(i)}, 160))
	}
	for i := range 3 {
		ch, err := l.Next(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if ch.Seq != int64(1+i) || ch.TimestampMs != int64(20*i) || !bytes.Equal(ch.Audio, bytes.Repeat([]byte{byte(i)}, 160)) {
			t.Errorf("chunk %d: seq %d ts %d, %d bytes", i, ch.Seq, ch.TimestampMs, len(ch.Audio))
		}
	}
	// The edge granted 200 ms: renewed every 100 ms.
	deadline := time.Now().Add(5 * time.Second)
	for edge.leases.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d lease requests in 5 s, want renewals every 100 ms", edge.leases.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Audio published before the call's stop is delivered, then io.EOF.
	publishIn(t, nc, sid, 4, 60, []byte{4})
	publishEvents(t, nc, sid, bus.Event{Event: bus.EventStop, Stop: &bus.Stop{Reason: "stop"}})
	if ch, err := l.Next(ctx(t)); err != nil || ch.Seq != 4 {
		t.Errorf("last chunk: %+v %v", ch, err)
	}
	if _, err := l.Next(ctx(t)); err != io.EOF {
		t.Errorf("after stop: %v, want io.EOF", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n := edge.leases.Load()
	time.Sleep(300 * time.Millisecond) // three renewal periods: none may come
	if got := edge.leases.Load(); got != n {
		t.Errorf("%d lease requests after the call ended and Close", got-n)
	}
	if _, err := l.Next(ctx(t)); !errors.Is(err, client.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	noListenerGoroutines(t)
}

// noListenerGoroutines fails the test if a Listener's goroutine outlives
// its Close (by more than the moment it takes to return after Close has
// seen it done).
func noListenerGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	var left []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		left = left[:0]
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "client.(*Listener)") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
	}
	t.Errorf("listener goroutines outlived Close:\n%s", strings.Join(left, "\n\n"))
}

func TestListenRefused(t *testing.T) {
	nc := natsConn(t, 0)
	respond(t, nc, bus.StreamListen(sid), func(*nats.Msg) []byte {
		return mustJSON(t, bus.ListenReply{Type: bus.TypeListenReply, Error: &bus.Error{Code: bus.CodeUnavailable, Message: "caller audio is off"}})
	})
	c := client.New(nc, client.Options{})
	if _, err := c.Listen(ctx(t), sid, client.ListenOptions{}); !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

// A Listener whose call ends on the edge (renewals answered no
// responders) ends too, and Close joins its renewals.
func TestListenCallGone(t *testing.T) {
	nc := natsConn(t, 0)
	sub, err := nc.Subscribe(bus.StreamListen(sid), func(m *nats.Msg) {
		_ = m.Respond(mustJSON(t, bus.ListenReply{Type: bus.TypeListenReply, LeaseMs: 100}))
	})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(nc, client.Options{})
	l, err := c.Listen(ctx(t), sid, client.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Next(ctx(t)); err != io.EOF {
		t.Errorf("after the edge let go of the call: %v, want io.EOF", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	noListenerGoroutines(t)
}

// TestLibraryErrors: the library's errors say the operation once, match
// their sentinels, and Options.Timeout bounds a request without a deadline.
func TestLibraryErrors(t *testing.T) {
	ns := calltest.StartNATS(t, &server.Options{DontListen: true, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	lib, err := client.New(nc, client.Options{}).Library(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	_, err = lib.Info(ctx(t), "nothing.wav")
	if !errors.Is(err, client.ErrUnknownAudio) || !strings.HasPrefix(err.Error(), "client: library info: unknown_audio: ") || strings.Count(err.Error(), "client:") != 1 {
		t.Errorf("info of a missing prompt: %v", err)
	}

	// A client whose requests may take no time at all: its library binds
	// under the caller's deadline, then its List times out on its own.
	hasty, err := client.New(nc, client.Options{Timeout: time.Nanosecond}).Library(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hasty.Close() })
	if _, err := hasty.List(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("list under a 1 ns timeout: %v", err)
	}
}
