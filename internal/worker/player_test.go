package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/library"
	"github.com/callcast/callcast/internal/twilio"
)

const ms = bytesPerMs // bytes of μ-law per millisecond

func TestBuffered(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name    string
		offset  int64
		backlog int64
		ahead   []bus.Ahead
		heard   int64
		sent    int64
		elapsed time.Duration
		want    int64
	}{
		{name: "nothing sent", sent: 0, want: 0},
		{name: "marks keep up", sent: 1500 * ms, heard: 1000 * ms, elapsed: 1000 * time.Millisecond, want: 500 * ms},
		{name: "marks lag: wall clock after grace", sent: 3000 * ms, heard: 0, elapsed: 2000 * time.Millisecond, want: 1500 * ms},
		{name: "marks lag within grace", sent: 1500 * ms, heard: 0, elapsed: 400 * time.Millisecond, want: 1500 * ms},
		{name: "resumed at an offset", offset: 10000 * ms, sent: 11500 * ms, heard: 10500 * ms, elapsed: 500 * time.Millisecond, want: 1000 * ms},
		{name: "a playback ahead still playing", backlog: 1000 * ms, ahead: []bus.Ahead{{PlaybackID: "a", End: 5000 * ms, Heard: 4600 * ms}},
			sent: 500 * ms, elapsed: 100 * time.Millisecond, want: 900 * ms},
		{name: "the playback ahead finished", backlog: 1000 * ms, ahead: []bus.Ahead{{PlaybackID: "a", End: 5000 * ms, Heard: 5000 * ms}},
			sent: 1200 * ms, heard: 800 * ms, elapsed: 300 * time.Millisecond, want: 400 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &playback{offset: tt.offset, backlog: tt.backlog, ahead: tt.ahead, grace: 500 * time.Millisecond}
			p.heard.Store(max(tt.heard, tt.offset))
			start := t0
			if tt.sent == tt.offset {
				start = time.Time{}
			}
			if got := p.buffered(tt.sent, start, t0.Add(tt.elapsed)); got != tt.want {
				t.Fatalf("buffered = %d ms, want %d ms", got/ms, tt.want/ms)
			}
		})
	}
}

func event(t *testing.T, ev bus.Event) *nats.Msg {
	t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return &nats.Msg{Data: data}
}

func TestObserve(t *testing.T) {
	mark := func(name string) bus.Event {
		ev := bus.NewEvent("MZ1", bus.EventMark)
		ev.Mark = &twilio.Mark{Name: name}
		return ev
	}
	p := &playback{id: "me", ahead: []bus.Ahead{{PlaybackID: "before", End: 8000, Heard: 0}}, notify: make(chan struct{}, 1)}
	p.observe(event(t, mark(bus.PlaybackMark("me", 1600, false))))
	p.observe(event(t, mark(bus.PlaybackMark("me", 800, false)))) // late, out of order: ignored
	p.observe(event(t, mark(bus.PlaybackMark("before", 4000, false))))
	p.observe(event(t, mark(bus.PlaybackMark("other", 9999, false))))
	p.observe(event(t, mark("a producer's own mark")))
	p.observe(&nats.Msg{Data: []byte("not json")})
	if got := p.heard.Load(); got != 1600 {
		t.Errorf("heard %d, want 1600", got)
	}
	if got := p.ahead[0].Heard; got != 4000 {
		t.Errorf("ahead heard %d, want 4000", got)
	}
	if err := p.stopped(); err != nil {
		t.Fatalf("stopped by marks: %v", err)
	}
	interrupted := bus.NewEvent("MZ1", bus.EventPlaybackInterrupted)
	interrupted.Playback = &bus.Playback{ID: "someone else"}
	p.observe(event(t, interrupted))
	if err := p.stopped(); err != nil {
		t.Fatalf("stopped by another playback's interruption: %v", err)
	}
	for _, tt := range []struct {
		kind string
		want error
	}{{bus.EventStop, errStreamStopped}, {bus.EventClear, errCleared}, {bus.EventPlaybackInterrupted, errInterrupted}} {
		p := &playback{id: "me", notify: make(chan struct{}, 1)}
		ev := bus.NewEvent("MZ1", tt.kind)
		ev.Playback = &bus.Playback{ID: "me"}
		p.observe(event(t, ev))
		if err := p.stopped(); !errors.Is(err, tt.want) {
			t.Errorf("%s: stopped = %v, want %v", tt.kind, err, tt.want)
		}
	}
}

func TestErrorBody(t *testing.T) {
	tests := []struct {
		err  error
		code string
	}{
		{fmt.Errorf("open: %w", library.ErrNotFound), bus.CodeUnknownAudio},
		{library.ErrBadName, bus.CodeUnknownAudio},
		{library.ErrNotAFile, bus.CodeUnknownAudio},
		{library.ErrTooLarge, bus.CodeBadAudio},
		{fmt.Errorf("%w: junk", audio.ErrBadInput), bus.CodeBadAudio},
		{audio.ErrUnsupported, bus.CodeBadAudio},
		{audio.ErrTruncated, bus.CodeBadAudio},
		{errors.New("disk on fire"), bus.CodeInternal},
		// A store outage: whether the audio exists is not known.
		{fmt.Errorf("%w: %w", library.ErrUnavailable, errors.New("no responders")), bus.CodeUnavailable},
	}
	for _, tt := range tests {
		if e := errorBody(tt.err, "x.mp3"); e.Code != tt.code || e.Message == "" || e.Audio != "x.mp3" {
			t.Errorf("errorBody(%v) = %+v, want code %s", tt.err, e, tt.code)
		}
	}
}
