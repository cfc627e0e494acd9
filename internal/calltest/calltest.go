// Package calltest provides what the tests of callcast's packages share: an
// in-process NATS server, a server (an edge) served on a loopback port and
// shut down with the test, WAV files to play, a buffer a logger and a test
// can share, and a goroutine-leak check. It is imported by tests only.
//
// The WAV files are RIFF/WAVE with a 44-byte (PCM) or 46-byte (μ-law)
// header: 16-bit little-endian PCM 8 kHz mono, or G.711 μ-law 8 kHz mono.
package calltest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
)

// NATS runs an embedded NATS server with o (bus.RunServer) until the test
// ends. An empty o.Listen means a free loopback port (not bus's default
// 127.0.0.1:4222, which a test must not take).
func NATS(t testing.TB, o bus.ServerOptions) *server.Server {
	t.Helper()
	if o.Listen == "" && !o.NoListen {
		o.Listen = "127.0.0.1:0"
	}
	if o.JetStream && o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	ns, err := bus.RunServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// StartNATS runs a NATS server with opts as they are (a parsed
// configuration file, say) until the test ends.
func StartNATS(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats: not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// Connect connects to url as bus.Connect does, named name, and closes the
// connection (draining it) when the test ends.
func Connect(t testing.TB, url, name string) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(bus.ConnOptions{URL: url, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close(nc, 5*time.Second) })
	return nc
}

// Server is what Serve serves: an edge.Server, or anything serving HTTP
// the same way.
type Server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Serve serves srv on a free loopback port until the test ends, then shuts
// it down (10 s at most) and fails the test if it did not stop cleanly:
// Shutdown or Serve returning an error (other than http.ErrServerClosed).
// It returns the address, host:port.
func Serve(t testing.TB, name string, srv Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("%s shutdown: %v", name, err)
		}
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("%s serve: %v", name, err)
		}
	})
	return ln.Addr().String()
}

// FreeAddr returns a loopback address (host:port) that was free a moment
// ago, for a process that must be told its address before it listens.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SyncBuffer is a bytes.Buffer safe for a logger and a test to share.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// SineWAV returns d of a sine of hz at about a quarter of full scale as a
// WAV file of 16-bit PCM, 8 kHz mono.
func SineWAV(d time.Duration, hz float64) []byte {
	n := int(d.Seconds() * 8000)
	b := audio.AppendWAVHeader(make([]byte, 0, 44+2*n), 8000, 1, 2*n)
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*hz*float64(i)/8000))
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// MulawWAV returns d of a 1 kHz tone as a WAV file of G.711 μ-law, 8 kHz
// mono, which the workers play without transcoding.
func MulawWAV(d time.Duration) []byte {
	n := int(d / time.Millisecond * 8)
	cycle := []byte{0xff, 0xa0, 0x90, 0xa0, 0x7f, 0x20, 0x10, 0x20} // one period, 8 samples
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(4 + 8 + 18 + 8 + n))
	b.WriteString("WAVEfmt ")
	le(uint32(18))
	le(struct {
		Tag, Channels      uint16
		Rate, ByteRate     uint32
		Align, Bits, Extra uint16
	}{7, 1, 8000, 8000, 1, 8, 0})
	b.WriteString("data")
	le(uint32(n))
	for i := range n {
		b.WriteByte(cycle[i%len(cycle)])
	}
	return b.Bytes()
}

// WriteFile writes data to path, failing the test if it cannot.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// CheckGoroutines fails the test if it ends with more goroutines running
// than it started with, once 5 s have passed for them to exit. Goroutines
// fasthttp keeps for itself (its clock, and its worker pools' cleaners,
// which notice a stopped server only after their 10 s sleep) do not count.
// Call it first in the test, so that its check runs after every other
// cleanup.
func CheckGoroutines(t testing.TB) {
	t.Helper()
	before := countGoroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := countGoroutines()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines leaked:\n%s", n-before, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// longLived marks the stacks of goroutines libraries keep on purpose.
var longLived = []string{
	"github.com/valyala/fasthttp.updateServerDate",
	"github.com/valyala/fasthttp.(*workerPool).Start.func2",
}

func countGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !slices.ContainsFunc(longLived, func(s string) bool { return strings.Contains(g, s) }) {
			n++
		}
	}
	return n
}
