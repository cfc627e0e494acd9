package e2e

import (
	"testing"
	"time"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
)

// TestBargeInStopsFilePlayback: the caller speaks over an interruptible
// file a worker plays. The edge clears Twilio, the playback ends with
// barge_in and about what was heard, and nothing of it reaches the caller
// after the clear.
func TestBargeInStopsFilePlayback(t *testing.T) {
	s := producerSystem(t, "testdata/audio")
	stop, err := callsim.ReadCallerAudio("../callsim/testdata/stop.wav")
	if err != nil {
		t.Fatal(err)
	}
	sid := newSid("MZ")
	evs := watch(t, s.nc, sid)
	const at = 1500 * time.Millisecond
	call := dialCall(t, callsim.Config{URL: s.wsURL, StreamSid: sid, CallerAudio: callsim.Speak(stop, at)})
	reply := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: "speech.mp3", Interruptible: true})

	ev := evs.wait(t, bus.EventPlaybackInterrupted, 10*time.Second)
	if ev.Playback.ID != reply.PlaybackID || ev.Playback.Reason != bus.ReasonBargeIn {
		t.Fatalf("interrupted %+v, want %s with barge_in", ev.Playback, reply.PlaybackID)
	}
	// The playback started within a few hundred ms of the call; the
	// caller spoke 1.5 s in.
	if h := ev.Playback.HeardMs; h < 800 || h > 1800 {
		t.Errorf("heardMs %d, want about 1500", h)
	}
	evs.wait(t, bus.EventSpeechStarted, time.Second)
	var clears []time.Duration
	deadline := time.Now().Add(5 * time.Second)
	for len(clears) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		clears = call.ClearTimes()
	}
	if len(clears) != 1 {
		t.Fatalf("clears at the caller: %v, want one", clears)
	}
	// Nothing of the playback after the clear: the worker stopped, and
	// what it had in flight was not relayed.
	time.Sleep(200 * time.Millisecond)
	n := call.Stats().Media
	time.Sleep(500 * time.Millisecond)
	if m := call.Stats().Media; m != n {
		t.Fatalf("%d media messages reached the caller after the clear", m-n)
	}
	for _, k := range evs.kinds() {
		if k == bus.EventPlaybackFinished {
			t.Fatal("the interrupted playback finished too")
		}
	}
	t.Logf("barge-in at %v: clear at the caller %v, heard %d ms", at, clears[0], ev.Playback.HeardMs)
}
