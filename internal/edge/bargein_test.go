package edge

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
)

// playStream queues a streamed μ-law playback of ulaw on sid's edge, as a
// worker forwards one, and publishes its audio.
func playStream(t *testing.T, nc *nats.Conn, sid, id string, ulaw []byte, interruptible bool) {
	t.Helper()
	req, _ := json.Marshal(bus.Enqueue{Type: bus.TypeEnqueue, PlaybackID: id, Mode: bus.ModeQueue,
		Stream: &bus.StreamFormat{Format: bus.FormatMulaw}, Interruptible: interruptible})
	resp, err := nc.Request(bus.StreamPlay(sid), req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := bus.DecodePlayReply(resp.Data)
	if err != nil || reply.Error != nil {
		t.Fatalf("enqueue %s: %v %+v", id, err, reply.Error)
	}
	for seq := 1; len(ulaw) > 0; seq++ {
		n := min(len(ulaw), 8000)
		m := &nats.Msg{Subject: reply.AudioSubject, Header: nats.Header{bus.HeaderSeq: {strconv.Itoa(seq)}}, Data: ulaw[:n]}
		ulaw = ulaw[n:]
		if len(ulaw) == 0 {
			m.Header.Set(bus.HeaderEnd, "true")
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
}

// tone is d of a quiet 440 Hz tone: what a prompt sounds like to the test.
func tone(d time.Duration) []byte {
	b := make([]byte, int(d.Seconds()*8000))
	for i := range b {
		b[i] = audio.EncodeMulaw(int16(3000 * math.Sin(2*math.Pi*440*float64(i)/8000)))
	}
	return b
}

// speech reads a committed espeak-ng utterance as μ-law.
func speech(t testing.TB, name string) []byte {
	t.Helper()
	ulaw, err := callsim.ReadCallerAudio("../callsim/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return ulaw
}

func playbackEvents(evs []bus.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Playback != nil {
			out = append(out, ev.Event+" "+ev.Playback.ID+" "+ev.Playback.Reason)
		} else {
			out = append(out, ev.Event)
		}
	}
	return out
}

// TestBargeIn: the caller speaks over an interruptible playback. It stops
// with reason barge_in and what was heard, a clear reaches the caller, an
// interruptible playback queued behind it is dropped and a
// non-interruptible one plays in full.
func TestBargeIn(t *testing.T) {
	addr, nc := serve(t, Config{})
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	const at = 1500 * time.Millisecond
	ctx := dialCallSaying(t, addr, callsim.Speak(speech(t, "stop.wav"), at))
	events := subscribe(t, nc, bus.StreamEvents(ctx.StreamSid()))
	started.wait(t, 1)
	playStream(t, nc, ctx.StreamSid(), "pa", tone(5*time.Second), true)
	playStream(t, nc, ctx.StreamSid(), "pb", tone(time.Second), false)
	playStream(t, nc, ctx.StreamSid(), "pc", tone(time.Second), true)

	var evs []bus.Event
	waitFor(t, "the non-interruptible playback to finish", func() bool {
		evs = events.events(t, 0)
		return slices.ContainsFunc(evs, func(ev bus.Event) bool {
			return ev.Event == bus.EventPlaybackFinished && ev.Playback.ID == "pb"
		})
	})
	got := playbackEvents(evs)
	want := []string{
		"playback.started pa ", bus.EventSpeechStarted, "clear",
		"playback.interrupted pa barge_in", "playback.interrupted pc barge_in",
		"playback.started pb ",
	}
	var seen []string
	for _, g := range got {
		if slices.Contains(want, g) && !slices.Contains(seen, g) {
			seen = append(seen, g)
		}
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("events %q\nwant in order %q", got, want)
	}
	var pa *bus.Playback
	for _, ev := range evs {
		if ev.Event == bus.EventPlaybackInterrupted && ev.Playback.ID == "pa" {
			pa = ev.Playback
		}
		if ev.Event == bus.EventSpeechStarted && (ev.Speech == nil || ev.Speech.AtMs < at.Milliseconds()-40 || ev.Speech.AtMs > at.Milliseconds()+200) {
			t.Errorf("speech.started %+v, want atMs near %d", ev.Speech, at.Milliseconds())
		}
	}
	// The caller heard pa from the start of the call to the barge-in.
	if pa.HeardMs < at.Milliseconds()-300 || pa.HeardMs > at.Milliseconds()+400 {
		t.Errorf("pa heardMs %d, want about %d", pa.HeardMs, at.Milliseconds())
	}
	clears := ctx.ClearTimes()
	if len(clears) != 1 {
		t.Fatalf("%d clears at the caller, want 1", len(clears))
	}
	// What the caller heard: pa up to the clear, then all of pb.
	played := ctx.Played()
	if !bytes.Contains(played, tone(time.Second)[:4000]) {
		t.Error("pb was not played")
	}
	t.Logf("first speech frame sent → clear at the caller: %v", clears[0]-at-callsim.FrameInterval)
}

// dialCallSaying places a callsim call saying caller.
func dialCallSaying(t *testing.T, addr string, caller interface{ Read([]byte) (int, error) }) *callsim.Call {
	t.Helper()
	c, err := callsim.Dial(t.Context(), callsim.Config{URL: "ws://" + addr + PathMediaStream, CallerAudio: caller})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestBargeInLatency: from the caller's first speech frame to the clear at
// the caller, over 20 calls saying the committed utterances over
// interruptible prompts: p95 ≤ 150 ms. The frame's send time is when
// callsim's pacing schedules it, so the figure includes both loopback
// hops and the VAD's own StartMs.
func TestBargeInLatency(t *testing.T) {
	addr, nc := serve(t, Config{})
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	const calls = 20
	says := [][]byte{speech(t, "stop.wav"), speech(t, "hello.wav")}
	type call struct {
		c  *callsim.Call
		at time.Duration
	}
	var cs []call
	for i := range calls {
		at := time.Second + time.Duration(i)*37*time.Millisecond
		cs = append(cs, call{dialCallSaying(t, addr, callsim.Speak(says[i%2], at)), at})
	}
	started.wait(t, calls)
	for _, c := range cs {
		playStream(t, nc, c.c.StreamSid(), "p-"+c.c.StreamSid(), tone(4*time.Second), true)
	}
	var lat []time.Duration
	waitFor(t, "a clear at every caller", func() bool {
		for _, c := range cs {
			if len(c.c.ClearTimes()) == 0 {
				return false
			}
		}
		return true
	})
	for _, c := range cs {
		// The frame holding the speech's first sample leaves at the end
		// of its 20 ms: chunk n at n × 20 ms.
		sent := (c.at/callsim.FrameInterval + 1) * callsim.FrameInterval
		lat = append(lat, c.c.ClearTimes()[0]-sent)
	}
	slices.Sort(lat)
	p95 := lat[(len(lat)*95+99)/100-1]
	t.Logf("first speech frame → clear at the caller, %d calls: p50 %v p95 %v max %v", calls, lat[len(lat)/2], p95, lat[len(lat)-1])
	if lat[0] < 0 {
		t.Fatalf("a clear %v before the speech", lat[0])
	}
	if p95 > 150*time.Millisecond {
		t.Fatalf("barge-in p95 %v, want ≤ 150 ms", p95)
	}
}

// TestNonInterruptibleWaitsForInterruptibleAudio: a non-interruptible
// playback queued behind an interruptible one is not sent while the
// interruptible audio is still at Twilio, so that a barge-in's clear could
// never take it; it starts once that audio has played out, and both play
// in full.
func TestNonInterruptibleWaitsForInterruptibleAudio(t *testing.T) {
	addr, nc := serve(t, Config{VAD: "off"})
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	c := dialCallSaying(t, addr, nil)
	events := subscribe(t, nc, bus.StreamEvents(c.StreamSid()))
	started.wait(t, 1)
	playStream(t, nc, c.StreamSid(), "pa", tone(time.Second), true)
	playStream(t, nc, c.StreamSid(), "pb", tone(time.Second), false)
	var evs []bus.Event
	waitFor(t, "both playbacks to finish", func() bool {
		evs = events.events(t, 0)
		n := 0
		for _, ev := range evs {
			if ev.Event == bus.EventPlaybackFinished {
				n++
			}
		}
		return n == 2
	})
	var got []string
	for _, e := range playbackEvents(evs) {
		if strings.HasPrefix(e, "playback.") {
			got = append(got, e)
		}
	}
	want := []string{"playback.started pa ", "playback.finished pa ", "playback.started pb ", "playback.finished pb "}
	if !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if len(c.Played()) < 2*8000-1600 {
		t.Fatalf("the caller heard %d bytes, want about 2 s", len(c.Played()))
	}
}
