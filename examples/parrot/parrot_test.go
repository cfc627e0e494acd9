package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/worker"
)

// TestParrot places a call with callsim against the all-in-one edge and
// the parrot: the caller says a 2 s utterance and hears it back, then says
// it again and speaks over the echo, which stops (barge-in).
func TestParrot(t *testing.T) {
	hello, err := callsim.ReadCallerAudio("../../internal/callsim/testdata/hello.wav")
	if err != nil {
		t.Fatal(err)
	}
	stop, err := callsim.ReadCallerAudio("../../internal/callsim/testdata/stop.wav")
	if err != nil {
		t.Fatal(err)
	}

	// The all-in-one edge, as go run ./cmd/edge runs it.
	natsAddr := calltest.FreeAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ready := make(chan struct{})
	wg.Go(func() {
		err := edge.Run(ctx, edge.Options{
			Listener: ln, NATSListen: natsAddr, NATSStoreDir: t.TempDir(), DrainTimeout: time.Second,
			Worker: worker.Config{AudioDir: t.TempDir()}, Ready: func(net.Addr) { close(ready) },
		})
		if err != nil {
			t.Errorf("edge: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	<-ready

	// The parrot, as go run ./examples/parrot runs it, but for the URL.
	pctx, pcancel := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	var logs calltest.SyncBuffer
	pwg.Go(func() {
		cfg := config{natsURL: "nats://" + natsAddr, poll: 250 * time.Millisecond, pad: 100 * time.Millisecond, keep: 30 * time.Second}
		if err := run(pctx, cfg, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
			t.Errorf("parrot: %v", err)
		}
	})
	defer func() {
		pcancel()
		pwg.Wait()
		if t.Failed() {
			t.Logf("parrot's log:\n%s", logs.String())
		}
	}()

	// A test producer follows the call's events.
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	var evs []bus.Event
	sub, err := nc.Subscribe(bus.StreamEvents("*"), func(m *nats.Msg) {
		var ev bus.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			mu.Lock()
			evs = append(evs, ev)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = nc.Flush()

	// hello at 2 s (the parrot finds calls within half a second or so);
	// hello again at 7.5 s, and stop at 10.8 s, over its echo.
	const first, second, over = 2000 * time.Millisecond, 7500 * time.Millisecond, 10800 * time.Millisecond
	say := io.MultiReader(callsim.Speak(hello, first), callsim.Speak(hello, second-first-2*time.Second),
		callsim.Speak(stop, over-second-2*time.Second))
	c, err := callsim.Dial(ctx, callsim.Config{URL: "ws://" + ln.Addr().String() + edge.PathMediaStream,
		Parameters: map[string]string{"audio": worker.NoDefaultAudio}, CallerAudio: say})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The first echo: all of it played back.
	waitFor(t, 15*time.Second, "the first echo to finish", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(evs, func(ev bus.Event) bool {
			return ev.Event == bus.EventPlaybackFinished && ev.Playback.RequestID == "parrot-1"
		})
	})
	echo := c.Played()
	ncc, lag := bestCorrelation(hello, echo, 4000)
	t.Logf("first echo: %d ms played back; normalised cross-correlation with what was said %.3f at %d ms", len(echo)/8, ncc, lag/8)
	if ncc < 0.8 {
		t.Fatalf("the echo correlates %.3f with what the caller said, want ≥ 0.8", ncc)
	}

	// The second echo: interrupted by the caller's speech.
	var cut *bus.Playback
	waitFor(t, 15*time.Second, "the second echo to be interrupted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			if ev.Event == bus.EventPlaybackInterrupted && ev.Playback.RequestID == "parrot-2" {
				cut = ev.Playback
				return true
			}
		}
		return false
	})
	if cut.Reason != bus.ReasonBargeIn {
		t.Fatalf("second echo interrupted with reason %q, want barge_in", cut.Reason)
	}
	if cut.HeardMs <= 0 || cut.HeardMs >= 2000 {
		t.Errorf("second echo heard %d ms, want part of it", cut.HeardMs)
	}
	clears := c.ClearTimes()
	if len(clears) != 1 || clears[0] < over || clears[0] > over+time.Second {
		t.Fatalf("clears at the caller %v, want one soon after %v", clears, over)
	}
	t.Logf("second echo cut after %d ms by the caller speaking at %v; clear at the caller %v", cut.HeardMs, over, clears[0])
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().Errors; n != 0 {
		t.Fatalf("%d protocol errors: %v", n, c.Errs())
	}
}

// bestCorrelation is the largest normalised cross-correlation of said
// against heard shifted by up to maxLag samples, and that lag, in μ-law
// decoded to linear PCM.
func bestCorrelation(said, heard []byte, maxLag int) (float64, int) {
	x := pcm(said)
	y := pcm(heard)
	best, bestLag := -1.0, 0
	for lag := 0; lag <= maxLag && lag < len(y); lag++ {
		var xy, xx, yy float64
		for i := range x {
			if i+lag >= len(y) {
				break
			}
			xy += x[i] * y[i+lag]
			xx += x[i] * x[i]
			yy += y[i+lag] * y[i+lag]
		}
		if xx == 0 || yy == 0 {
			continue
		}
		if r := xy / math.Sqrt(xx*yy); r > best {
			best, bestLag = r, lag
		}
	}
	return best, bestLag
}

func pcm(ulaw []byte) []float64 {
	out := make([]float64, len(ulaw))
	for i, b := range ulaw {
		out[i] = float64(audio.DecodeMulaw(b))
	}
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
