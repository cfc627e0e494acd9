package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/callcast/callcast/client"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/worker"
)

// The public client (package client) against the whole product: what an
// integrator's code does, with nothing hand-written on the bus.

func clientCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// writeChunks writes data to w in chunks of size, as a TTS engine hands
// over its audio.
func writeChunks(t *testing.T, w *client.StreamWriter, data []byte, size int) {
	t.Helper()
	for off := 0; off < len(data); off += size {
		if _, err := w.Write(data[off:min(off+size, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClientPlaysAFile(t *testing.T) {
	s := producerSystem(t, "testdata/audio")
	sid, _, call := liveCall(t, s, 8)
	c := client.New(s.nc, client.Options{})
	ctx := clientCtx(t)

	evs, err := c.Events(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	defer evs.Close()
	pb, err := c.Play(ctx, sid, "speech.mp3", client.PlayOptions{ID: "greeting-1"})
	if err != nil {
		t.Fatal(err)
	}
	if pb.DurationMs < 3000 || pb.StreamSid != sid || pb.RequestID != "greeting-1" {
		t.Errorf("playback %+v", pb)
	}
	end, err := evs.WaitPlayback(ctx, pb.ID)
	if err != nil || end.Kind != client.EventPlaybackFinished {
		t.Fatalf("playback ended with %+v: %v", end, err)
	}
	if end.Playback.Audio != "speech.mp3" || end.Playback.RequestID != "greeting-1" || end.Playback.HeardMs != int64(len(call.Received()))/8 {
		t.Errorf("finished %+v after %d bytes", end.Playback, len(call.Received()))
	}
	checkCall(t, call, sid, readRef(t, "speech.ref.ulaw"))

	// Errors callcast answers are the client's sentinels.
	if _, err := c.Play(ctx, sid, "missing.mp3", client.PlayOptions{}); !errors.Is(err, client.ErrUnknownAudio) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := c.Play(ctx, "MZgone", "speech.mp3", client.PlayOptions{}); !errors.Is(err, client.ErrUnknownStream) {
		t.Errorf("no such call: %v", err)
	}
	if _, err := c.Stream(ctx, "MZgone", client.Mulaw, client.PlayOptions{}); !errors.Is(err, client.ErrUnknownStream) {
		t.Errorf("stream into no call: %v", err)
	}
}

func TestClientStreamsPCM(t *testing.T) {
	s := producerSystem(t, "testdata/audio")
	sid, _, call := liveCall(t, s, 8)
	c := client.New(s.nc, client.Options{})
	ctx := clientCtx(t)

	pcm := pcmSignal(24000, 1, 2*time.Second)
	evs, err := c.Events(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	defer evs.Close()
	w, err := c.Stream(ctx, sid, client.PCM(24000, 1), client.PlayOptions{ID: "tts-1"})
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, w, pcm, 960) // 20 ms
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	end, err := evs.WaitPlayback(ctx, w.Playback().ID)
	if err != nil {
		t.Fatalf("playback ended with %+v: %v", end, err)
	}
	if end.Playback.Stream != "pcm_s16le/24000/1" || end.Playback.RequestID != "tts-1" || end.Playback.HeardMs != int64(len(call.Received()))/8 {
		t.Errorf("finished %+v after %d bytes", end.Playback, len(call.Received()))
	}
	if errs := call.Errs(); len(errs) > 0 {
		t.Errorf("protocol violations: %v", errs)
	}
	checkHeard(t, call.Received(), filePath(t, wavFile(24000, 1, pcm)))
}

// A file queued behind a stream plays after it; a file with mode
// interrupt stops a stream, and a stream with mode interrupt a file.
func TestClientQueuesAndInterruptsBetweenFilesAndStreams(t *testing.T) {
	s := producerSystem(t, "testdata/audio")
	c := client.New(s.nc, client.Options{})
	ctx := clientCtx(t)
	pcm := pcmSignal(16000, 1, 1500*time.Millisecond)
	streamRef := filePath(t, wavFile(16000, 1, pcm))

	t.Run("file queued behind a stream", func(t *testing.T) {
		sid, _, call := liveCall(t, s, 8)
		evs, err := c.Events(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		defer evs.Close()
		w, err := c.Stream(ctx, sid, client.PCM(16000, 1), client.PlayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		file, err := c.Play(ctx, sid, "speech.mp3", client.PlayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeChunks(t, w, pcm, 640)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{w.Playback().ID, file.ID} {
			if end, err := evs.WaitPlayback(ctx, id); err != nil {
				t.Fatalf("%s ended with %+v: %v", id, end, err)
			}
		}
		got := call.Received()
		if len(got) < len(streamRef) {
			t.Fatalf("heard %d bytes, the stream alone is %d", len(got), len(streamRef))
		}
		checkHeard(t, got[:len(streamRef)], streamRef)
		if c := similarity(got[len(streamRef):], readRef(t, "speech.ref.ulaw"), 400); c < 0.9 {
			t.Errorf("after the stream the call heard something correlating %.3f with the file", c)
		}
	})

	t.Run("file interrupts a stream", func(t *testing.T) {
		sid, _, _ := liveCall(t, s, 1)
		evs, err := c.Events(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		defer evs.Close()
		w, err := c.Stream(ctx, sid, client.PCM(16000, 1), client.PlayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeChunks(t, w, pcmSignal(16000, 1, 20*time.Second), 640) // far more than plays before the interruption
		waitKind(t, ctx, evs, client.EventPlaybackStarted)
		file, err := c.Play(ctx, sid, "tone440.mp3", client.PlayOptions{Mode: client.Interrupt})
		if err != nil {
			t.Fatal(err)
		}
		end, err := evs.WaitPlayback(ctx, w.Playback().ID)
		if !errors.Is(err, client.ErrInterrupted) || end.Playback.Reason != "interrupt" {
			t.Errorf("stream ended with %+v: %v, want interrupted by interrupt", end.Playback, err)
		}
		// The producer may still be writing; its playback is over.
		_ = w.Close()
		if end, err := evs.WaitPlayback(ctx, file.ID); err != nil {
			t.Errorf("file ended with %+v: %v", end, err)
		}
	})

	t.Run("stream interrupts a file", func(t *testing.T) {
		sid, _, _ := liveCall(t, s, 1)
		evs, err := c.Events(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		defer evs.Close()
		file, err := c.Play(ctx, sid, "speech.mp3", client.PlayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		waitKind(t, ctx, evs, client.EventPlaybackStarted)
		w, err := c.Stream(ctx, sid, client.Mulaw, client.PlayOptions{Mode: client.Interrupt})
		if err != nil {
			t.Fatal(err)
		}
		if end, err := evs.WaitPlayback(ctx, file.ID); !errors.Is(err, client.ErrInterrupted) || end.Playback.Reason != "interrupt" {
			t.Errorf("file ended with %+v: %v, want interrupted by interrupt", end.Playback, err)
		}
		writeChunks(t, w, streamRef[:4000], 160)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if end, err := evs.WaitPlayback(ctx, w.Playback().ID); err != nil || end.Playback.HeardMs != 500 {
			t.Errorf("stream ended with %+v: %v, want finished after 500 ms", end.Playback, err)
		}
	})
}

// waitKind reads events until one of kind.
func waitKind(t *testing.T, ctx context.Context, evs *client.Events, kind string) client.Event {
	t.Helper()
	for {
		ev, err := evs.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", kind, err)
		}
		if ev.Kind == kind {
			return ev
		}
	}
}

func TestClientFindsCallsOnEveryEdge(t *testing.T) {
	cl := startCluster(t, 2, 1, worker.Config{AudioDir: "testdata/audio", DefaultAudio: worker.NoDefaultAudio})
	c := client.New(cl.nc, client.Options{})
	ctx := clientCtx(t)
	if calls, err := c.Calls(ctx); err != nil || len(calls) != 0 {
		t.Fatalf("no calls yet: %v %v", calls, err)
	}

	var want []string
	var calls []*callsim.Call
	for i, e := range []int{0, 1, 0} {
		sid := newSid("MZ")
		call, err := callsim.Dial(ctx, callsim.Config{URL: cl.edges[e], StreamSid: sid, Parameters: map[string]string{"n": fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = call.Close() })
		calls = append(calls, call)
		want = append(want, fmt.Sprintf("%s edge-%d n=%d %s", sid, e, i, call.CallSid()))
		// One at a time, so that their start order is known.
		waitFor(t, "the call to be listed", 5*time.Second, func() bool {
			got, err := c.Calls(ctx)
			return err == nil && len(got) == i+1
		})
	}
	list := func() []string {
		got, err := c.Calls(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range got {
			out = append(out, fmt.Sprintf("%s %s n=%s %s", g.StreamSid, g.Edge, g.Parameters["n"], g.CallSid))
			if g.StartedAt.IsZero() || time.Since(g.StartedAt) > time.Minute {
				t.Errorf("call %s started at %v", g.StreamSid, g.StartedAt)
			}
		}
		return out
	}
	if got := list(); !slices.Equal(got, want) {
		t.Errorf("calls\n%v\nwant\n%v", got, want)
	}

	// A call that hangs up leaves the list.
	if err := calls[1].Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	want = slices.Delete(want, 1, 2)
	waitFor(t, "the ended call to leave the list", 5*time.Second, func() bool { return slices.Equal(list(), want) })
}

// The client hears the caller: what the double's caller says, chunk for
// chunk, with Twilio's chunk numbers and timestamps, from the lease on.
func TestClientListensToTheCaller(t *testing.T) {
	s := producerSystem(t, "testdata/audio")
	c := client.New(s.nc, client.Options{})
	ctx := clientCtx(t)

	// 10 s of a caller whose every 20 ms frame is its own.
	said := make([]byte, 10*8000)
	for i := range said {
		said[i] = byte(i/160*7 + i%160)
	}
	sid := newSid("MZ")
	call, err := callsim.Dial(ctx, callsim.Config{URL: s.wsURL, StreamSid: sid, CallerAudio: bytes.NewReader(said), Speed: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = call.Close() })
	waitForStart(t, s, sid)

	l, err := c.Listen(ctx, sid, client.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	heard := 0
	for heard < 8000 {
		ch, err := l.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		off := (ch.Seq - 1) * 160
		if ch.Seq < 1 || off+int64(len(ch.Audio)) > int64(len(said)) || !bytes.Equal(ch.Audio, said[off:off+int64(len(ch.Audio))]) {
			t.Fatalf("chunk %d (%d bytes) is not what the caller said from byte %d", ch.Seq, len(ch.Audio), off)
		}
		if ch.TimestampMs != (ch.Seq-1)*20 {
			t.Errorf("chunk %d stamped %d ms, want %d", ch.Seq, ch.TimestampMs, (ch.Seq-1)*20)
		}
		heard += len(ch.Audio)
	}

	// The call ends: Next says so once what came before is read.
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := l.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after hang-up: %v, want io.EOF", err)
		}
	}
	if n := l.Dropped(); n != 0 {
		t.Errorf("%d chunks dropped", n)
	}
}
