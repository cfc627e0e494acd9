package e2e

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/library"
)

// TestLibraryRoundTrip manages a prompt as `worker library` does — upload,
// ls, info, get — plays it into a call, and removes it while it plays: the
// playback is heard whole, byte for byte, and the next play of the name is
// unknown_audio. The worker's bucket metrics count the prompt.
func TestLibraryRoundTrip(t *testing.T) {
	s := startJSSystem(t)
	const prompt = "prompts/welcome.mp3"
	src, err := os.ReadFile("testdata/audio/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := audio.NewTranscoder(bytes.NewReader(src), audio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}

	js, err := jetstream.New(s.connect(t, "library"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lib, err := library.New(ctx, library.Options{JS: js, MemoryBytes: -1, KeepBuckets: true})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	up, err := lib.Put(ctx, prompt, bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if list, err := lib.List(ctx); err != nil || len(list) != 1 || list[0].Name != prompt || list[0].SHA256 != up.SHA256 || !list[0].Cached {
		t.Fatalf("ls: %+v, %v", list, err)
	}
	if info, err := lib.Stat(ctx, prompt); err != nil || info.Info.Format != "mp3" || info.Size != int64(len(src)) {
		t.Fatalf("info: %+v, %v", info, err)
	}
	var got bytes.Buffer
	if _, err := lib.Get(ctx, prompt, &got); err != nil || !bytes.Equal(got.Bytes(), src) {
		t.Fatalf("get: %d bytes, %v", got.Len(), err)
	}
	if n := s.metric(t, "callcast_worker_bucket_entries", library.AudioBucket); n != 1 {
		t.Errorf("callcast_worker_bucket_entries{bucket=callcast-audio} = %v, want 1", n)
	}
	if n := s.metric(t, "callcast_worker_bucket_bytes", library.AudioBucket); n < float64(len(src)) {
		t.Errorf("callcast_worker_bucket_bytes{bucket=callcast-audio} = %v, want at least %d", n, len(src))
	}
	if n := s.metric(t, "callcast_worker_bucket_max_bytes", library.CacheBucket); n != library.DefaultCacheMaxBytes {
		t.Errorf("callcast_worker_bucket_max_bytes{bucket=callcast-cache} = %v, want %d", n, library.DefaultCacheMaxBytes)
	}

	sid := newSid("MZ")
	ev := watch(t, s.nc, sid)
	call := dial(t, s.system, sid, "")
	waitForStart(t, s.system, sid)
	r := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: prompt})
	ev.playback(t, bus.EventPlaybackStarted, r.PlaybackID, 10*time.Second)
	if _, err := lib.Remove(ctx, prompt); err != nil {
		t.Fatal(err)
	}
	ev.playback(t, bus.EventPlaybackFinished, r.PlaybackID, 15*time.Second)
	if heard := call.Received(); !bytes.Equal(heard, want) {
		t.Errorf("the call heard %d bytes, not the %d of the prompt byte for byte", len(heard), len(want))
	}

	reply := play(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: prompt})
	if reply.Error == nil || reply.Error.Code != bus.CodeUnknownAudio {
		t.Errorf("play after rm: %+v, want unknown_audio", reply)
	}
	if _, err := lib.Stat(ctx, prompt); err == nil {
		t.Error("info after rm found it")
	}
}

// TestLibraryOutageIsUnavailable plays a library prompt while JetStream is
// down and NATS is not: the answer is unavailable (retry), not
// unknown_audio, since whether the prompt exists cannot be known.
func TestLibraryOutageIsUnavailable(t *testing.T) {
	s := startJSSystem(t)
	sid := newSid("MZ")
	dial(t, s.system, sid, "")
	waitForStart(t, s.system, sid)
	if err := s.ns.DisableJetStream(); err != nil {
		t.Fatal(err)
	}
	reply := play(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: "prompts/welcome.mp3"})
	if reply.Error == nil || reply.Error.Code != bus.CodeUnavailable {
		t.Errorf("play during a JetStream outage: %+v, want unavailable", reply.Error)
	}
}
