package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/worker"
)

// streamSystem runs NATS, a worker and an edge, and returns the NATS URL
// and the edge's media-stream URL.
func streamSystem(t *testing.T) (natsURL, wsURL string) {
	t.Helper()
	ns := calltest.NATS(t, bus.ServerOptions{})
	w, err := worker.New(calltest.Connect(t, ns.ClientURL(), "worker"), worker.Config{AudioDir: t.TempDir(), DefaultAudio: worker.NoDefaultAudio})
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
			t.Error(err)
		}
	})
	srv, err := edge.New(calltest.Connect(t, ns.ClientURL(), "edge"), edge.Config{ID: "edge-1"})
	if err != nil {
		t.Fatal(err)
	}
	return ns.ClientURL(), "ws://" + calltest.Serve(t, "edge", srv) + edge.PathMediaStream
}

// dialStarted places a call and waits until the edge lists it.
func dialStarted(t *testing.T, wsURL, natsURL string) *callsim.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := callsim.Dial(ctx, callsim.Config{URL: wsURL, Speed: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = call.Close() })
	nc := calltest.Connect(t, natsURL, "watcher")
	deadline := time.Now().Add(10 * time.Second)
	for {
		msg, err := nc.Request(bus.StreamPlay(call.StreamSid()), []byte("{}"), time.Second)
		if err == nil && len(msg.Data) > 0 {
			return call
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s did not start", call.StreamSid())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runCallsim runs callsim with args and returns its exit status and output.
func runCallsim(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := program(&stdout, &stderr).Main(ctx, args)
	return code, stdout.String(), stderr.String()
}

// tonePCM is d of a 440 Hz tone, 16-bit little-endian PCM at rate, mono.
func tonePCM(rate int, d time.Duration) []byte {
	n := int(d.Seconds() * float64(rate))
	out := make([]byte, 0, 2*n)
	for i := range n {
		out = binary.LittleEndian.AppendUint16(out, uint16(int16(8000*math.Sin(2*math.Pi*440*float64(i)/float64(rate)))))
	}
	return out
}

// heardAs is what the product makes of pcm: the transcoder's μ-law of the
// same samples in a WAV file.
func heardAs(t *testing.T, rate int, pcm []byte) []byte {
	t.Helper()
	wav := audio.AppendWAVHeader(make([]byte, 0, 44+len(pcm)), rate, 1, len(pcm))
	tc, err := audio.NewTranscoder(bytes.NewReader(append(wav, pcm...)), audio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(tc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStreamCommand(t *testing.T) {
	natsURL, wsURL := streamSystem(t)
	dir := t.TempDir()
	pcm := tonePCM(24000, time.Second)
	pcmFile := filepath.Join(dir, "tone.pcm")
	calltest.WriteFile(t, pcmFile, pcm)

	t.Run("no call", func(t *testing.T) {
		code, _, stderr := runCallsim(t, "stream", "-nats", natsURL, "-rate", "24000", pcmFile)
		if code != 1 || !strings.Contains(stderr, "no live call") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	call := dialStarted(t, wsURL, natsURL)
	t.Run("pcm into the only call, in real time", func(t *testing.T) {
		start := time.Now()
		code, stdout, stderr := runCallsim(t, "stream", "-nats", natsURL, "-format", "pcm_s16le", "-rate", "24000", "-id", "tts-1", pcmFile)
		took := time.Since(start)
		if code != 0 {
			t.Fatalf("exit %d: %s%s", code, stdout, stderr)
		}
		t.Logf("%s", stdout)
		for _, want := range []string{"pcm_s16le/24000/1 into " + call.StreamSid(), "48000 bytes in 50 messages, 1s of audio", "playback.finished heard 1000 ms"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if took < 950*time.Millisecond {
			t.Errorf("published 1 s of audio in %s: faster than real time", took)
		}
		if got, want := call.Received(), heardAs(t, 24000, pcm); !bytes.Equal(got, want) {
			t.Errorf("the call heard %d bytes, not the %d the file makes", len(got), len(want))
		}
	})

	t.Run("mp3 by name, all at once", func(t *testing.T) {
		mp3 := filepath.Join(dir, "speech.mp3")
		b, err := os.ReadFile("../../internal/e2e/testdata/audio/speech.mp3")
		if err != nil {
			t.Fatal(err)
		}
		calltest.WriteFile(t, mp3, b)
		before := len(call.Received())
		code, stdout, stderr := runCallsim(t, "stream", "-nats", natsURL, "-sid", call.StreamSid(), "-speed", "0", "-mode", "interrupt", mp3)
		if code != 0 {
			t.Fatalf("exit %d: %s%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "mp3 into") || !strings.Contains(stdout, "playback.finished") {
			t.Errorf("output %s", stdout)
		}
		if heard := len(call.Received()) - before; heard < 3000*8 || heard > 3200*8 {
			t.Errorf("heard %d ms of a 3.1 s file", heard/8)
		}
	})

	t.Run("from a pipe", func(t *testing.T) {
		mp3, err := os.ReadFile("../../internal/e2e/testdata/audio/speech.mp3")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, format string
			rate         int
			data         []byte
			heardMs      int64
			paced        bool
		}{
			{"pcm, paced by its rate", "pcm_s16le", 24000, pcm, 1000, true},
			{"mp3, as it comes", "mp3", 0, mp3, 3084, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				pr, pw := io.Pipe()
				defer pr.Close() // a test that fails early lets the writer go
				wrote := make(chan error, 1)
				go func() { // a TTS engine writing its output in bursts
					var err error
					for off := 0; off < len(tc.data) && err == nil; off += 4000 {
						_, err = pw.Write(tc.data[off:min(off+4000, len(tc.data))])
					}
					wrote <- err
					pw.Close()
				}()
				before := len(call.Received())
				var out bytes.Buffer
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				start := time.Now()
				err := runStream(ctx, streamConfig{nats: bus.ConnOptions{URL: natsURL}, sid: call.StreamSid(), format: tc.format, rate: tc.rate,
					channels: 1, mode: "queue", speed: 1, chunk: 20 * time.Millisecond}, "-", pr, &out)
				took := time.Since(start)
				if err != nil {
					t.Fatalf("%v\n%s", err, out.String())
				}
				if err := <-wrote; err != nil {
					t.Fatal(err)
				}
				t.Logf("%s", out.String())
				if heard := int64(len(call.Received())-before) / 8; heard < tc.heardMs-50 || heard > tc.heardMs+50 {
					t.Errorf("heard %d ms, want %d", heard, tc.heardMs)
				}
				if tc.paced && took < 950*time.Millisecond {
					t.Errorf("published 1 s of audio in %s", took)
				}
				if !strings.Contains(out.String(), "playback.finished") {
					t.Errorf("output %s", out.String())
				}
			})
		}
	})

	t.Run("without waiting", func(t *testing.T) {
		code, stdout, stderr := runCallsim(t, "stream", "-nats", natsURL, "-sid", call.StreamSid(), "-rate", "24000", "-speed", "0", "-no-wait", pcmFile)
		if code != 0 || !strings.Contains(stdout, "48000 bytes") || strings.Contains(stdout, "playback.") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})

	other := dialStarted(t, wsURL, natsURL)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"several calls", []string{"-rate", "24000", pcmFile}, 1, "several live calls"},
		{"unknown call", []string{"-sid", "MZgone", "-rate", "24000", pcmFile}, 1, "unknown_stream"},
		{"pcm without a rate", []string{"-sid", other.StreamSid(), pcmFile}, 2, "needs -rate"},
		{"bad rate", []string{"-sid", other.StreamSid(), "-rate", "100", pcmFile}, 2, "sampleRate"},
		{"unknown extension", []string{"-sid", other.StreamSid(), filepath.Join(dir, "x.ogg")}, 2, "-format"},
		{"bad mode", []string{"-sid", other.StreamSid(), "-mode", "now", "-rate", "8000", pcmFile}, 2, "-mode"},
		{"bad speed", []string{"-sid", other.StreamSid(), "-speed", "fast", "-rate", "8000", pcmFile}, 2, "-speed"},
		{"missing file", []string{"-sid", other.StreamSid(), filepath.Join(dir, "none.mp3")}, 1, "no such file"},
		{"no file", []string{"-sid", other.StreamSid()}, 2, "FILE"},
		{"stdin without a format", []string{"-sid", other.StreamSid(), "-"}, 2, "-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCallsim(t, append([]string{"stream", "-nats", natsURL}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q, stdout %q; want %d and %q", code, stderr, stdout, tt.code, tt.stderr)
			}
		})
	}
	if errs := call.Errs(); len(errs) > 0 {
		t.Errorf("protocol violations: %v", errs)
	}
}
