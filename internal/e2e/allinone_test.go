package e2e

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/bus"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

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

	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "EDGE_ADDR="+httpAddr, "NATS_LISTEN="+natsAddr, "NATS_URL=", "LOG_LEVEL=debug")
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
	s := &system{wsURL: "ws://" + httpAddr + "/media-stream", nc: nc}
	sid := newSid("MZ")
	ev := watch(t, nc, sid)
	call := dial(t, s, sid, "") // no audio named: the bundled sample plays
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
}
