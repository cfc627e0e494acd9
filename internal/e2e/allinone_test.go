package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/twilio"
)

// TestAllInOneBinary builds cmd/edge and runs it as a user would, from the
// repository root with no configuration, then places a call.
func TestAllInOneBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the edge binary")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "edge")
	build := exec.Command("go", "build", "-o", bin, "./cmd/edge")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	httpAddr, natsAddr := calltest.FreeAddr(t), calltest.FreeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Dir = root
	const token = "secret-auth-token-4f1c"
	cmd.Env = append(os.Environ(), "EDGE_ADDR="+httpAddr, "NATS_LISTEN="+natsAddr, "NATS_URL=", "NATS_STORE_DIR="+t.TempDir(),
		"LOG_LEVEL=debug", "LOG_FORMAT=json", "TWILIO_AUTH_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("edge output:\n%s", logs.String())
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("edge not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Another producer joins the embedded NATS server.
	nc, err := bus.Connect(bus.ConnOptions{URL: "nats://" + natsAddr, Name: "test-producer"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wsURL := "ws://" + httpAddr + "/media-stream"
	sid := newSid("MZ")
	ev := watch(t, nc, sid)
	// Unsigned: refused.
	if _, err := callsim.Dial(context.Background(), callsim.Config{URL: wsURL}); err == nil {
		t.Fatal("an unsigned stream was accepted with TWILIO_AUTH_TOKEN set")
	}
	// Signed as Twilio signs it; no audio named: the bundled sample plays.
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	call, err := callsim.Dial(dctx, callsim.Config{URL: wsURL, StreamSid: sid, Speed: 8,
		Header: http.Header{twilio.HeaderSignature: {twilio.Sign(token, wsURL, nil)}}})
	if err != nil {
		t.Fatal(err)
	}
	fin := ev.wait(t, bus.EventPlaybackFinished, 20*time.Second)
	if fin.Playback.Audio != "sample.mp3" {
		t.Errorf("played %q, want the bundled sample.mp3", fin.Playback.Audio)
	}
	if got := len(call.Received()); got < 10*8000 {
		t.Errorf("received %d bytes, want the whole ~10.6 s sample", got)
	}
	if errs := call.Errs(); len(errs) > 0 {
		t.Errorf("protocol violations: %v", errs)
	}

	// Metrics of both the edge and its in-process workers.
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"callcast_edge_streams_active 1",
		"callcast_edge_start_to_first_audio_seconds_count 1",
		`callcast_edge_relayed_messages_total{event="media"}`,
		`callcast_edge_events_published_total{event="playback.finished"} 1`,
		`callcast_worker_playbacks_total{outcome="sent"} 1`,
		"callcast_worker_transcode_realtime_factor_count 1",
		`callcast_edge_errors_total{kind="bad_signature"} 1`,
		"callcast_edge_playbacks_queued 0",
		"callcast_edge_send_queue_depth_count",
		"go_goroutines",
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// SIGTERM: the call is drained and the process exits cleanly.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = call.Hangup(ctx)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("edge exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("edge did not exit after SIGTERM")
	}

	// Logs: JSON, every line about the call names both the stream and the
	// call, and the auth token never appears.
	if strings.Contains(logs.String(), token) {
		t.Error("the auth token appears in the logs")
	}
	callLines := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %s", line)
			continue
		}
		if rec["stream_sid"] == sid {
			callLines++
			if rec["call_sid"] != call.CallSid() {
				t.Errorf("log line names the stream but not the call: %s", line)
			}
		}
	}
	if callLines < 3 {
		t.Errorf("only %d log lines about the call", callLines)
	}
}
