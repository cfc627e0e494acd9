package calltest_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
)

// TestWAVFilesPlay reads the WAV files as the workers do: the μ-law one
// passes through byte for byte, the PCM one becomes 8 kHz μ-law of the same
// length.
func TestWAVFilesPlay(t *testing.T) {
	tests := []struct {
		name string
		wav  []byte
		want int // μ-law bytes
	}{
		{"mulaw 2s", calltest.MulawWAV(2 * time.Second), 16000},
		{"pcm 1s", calltest.SineWAV(time.Second, 300), 8000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := audio.NewTranscoder(bytes.NewReader(tc.wav), audio.Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Errorf("%d μ-law bytes, want %d", len(got), tc.want)
			}
		})
	}
	if got := calltest.MulawWAV(time.Second); !bytes.HasSuffix(got, bytes.Repeat([]byte{0xff, 0xa0, 0x90, 0xa0, 0x7f, 0x20, 0x10, 0x20}, 1000)) {
		t.Error("μ-law WAV does not end with the tone")
	}
}

// TestNATSAndServe connects to the server NATS runs and reaches what
// Serve serves; both stop with the test (CheckGoroutines).
func TestNATSAndServe(t *testing.T) {
	calltest.CheckGoroutines(t)
	ns := calltest.NATS(t, bus.ServerOptions{})
	nc := calltest.Connect(t, ns.ClientURL(), "test")
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	addr := calltest.Serve(t, "http", srv)
	resp, err := http.Get("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Errorf("body %q", body)
	}
	http.DefaultClient.CloseIdleConnections()
}
