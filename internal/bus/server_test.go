package bus

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRunServerAddressInUse: a port in use is reported at once, as such.
func TestRunServerAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	ns, err := RunServer(ServerOptions{Listen: ln.Addr().String()})
	if err == nil {
		ns.Shutdown()
		t.Fatal("started on a port in use")
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("err = %v, want EADDRINUSE", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v to fail", took)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestConnectLogs: an in-process connection logs the embedded server's real
// address, and closing it on purpose logs no warning.
func TestConnectLogs(t *testing.T) {
	ns, err := RunServer(ServerOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	var logs lockedBuffer
	nc, err := Connect(ConnOptions{InProcess: ns, Name: "test", Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := Close(nc, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "nats connection closed") {
		if time.Now().After(deadline) {
			t.Fatalf("no closed line logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	if want := `server="in-process ` + ns.ClientURL() + `"`; !strings.Contains(out, want) {
		t.Errorf("logs lack %s:\n%s", want, out)
	}
	if strings.Contains(out, "level=WARN") {
		t.Errorf("a clean close logged a warning:\n%s", out)
	}
}
