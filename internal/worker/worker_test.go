package worker

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/callcast/callcast/internal/bus"
)

// TestLeadBounds: a lead too short to pace by marks or longer than MaxLead
// is refused with the range in the error.
func TestLeadBounds(t *testing.T) {
	var nc *nats.Conn // New refuses before it touches the connection
	for _, lead := range []time.Duration{100 * time.Millisecond, 399 * time.Millisecond, MaxLead + time.Second} {
		if _, err := New(nc, Config{Lead: lead, AudioDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "want 400ms to 1m0s") {
			t.Errorf("lead %v: err %v, want a range error", lead, err)
		}
	}
}

// TestExpiredRenderRequestIsDropped: a render request that reaches the
// worker after the edge stopped waiting for it (buffered across an outage)
// takes no slot and sends nothing; one in time is played.
func TestExpiredRenderRequestIsDropped(t *testing.T) {
	ns, err := bus.RunServer(bus.ServerOptions{NoListen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := bus.Connect(bus.ConnOptions{InProcess: ns})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	dir := t.TempDir()
	// 1 s of 8 kHz μ-law silence as a WAV: plays without decoding cost.
	writeULawWAV(t, filepath.Join(dir, "a.wav"), bytes.Repeat([]byte{0xff}, 8000))
	reg := prometheus.NewRegistry()
	w, err := New(nc, Config{AudioDir: dir, DefaultAudio: NoDefaultAudio, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	}()
	const sid = "MZstale"
	var frames atomic.Int64
	sub, err := nc.Subscribe(bus.StreamOut(sid), func(m *nats.Msg) {
		if m.Header.Get(bus.HeaderPlayback) != "" && m.Header.Get(bus.HeaderPing) == "" {
			frames.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	render := func(expires time.Time, timeout time.Duration) (*nats.Msg, error) {
		req, _ := json.Marshal(bus.RenderRequest{Type: bus.TypeRenderRequest, StreamSid: sid, PlaybackID: "pb", Audio: "a.wav", Expires: expires.UnixMilli()})
		return nc.Request(bus.SubjectRender, req, timeout)
	}
	if _, err := render(time.Now().Add(-time.Second), 300*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("expired request: %v, want no answer", err)
	}
	time.Sleep(100 * time.Millisecond) // nothing may follow
	if n := frames.Load(); n != 0 || w.Active() != 0 {
		t.Fatalf("expired request sent %d frames, %d active", n, w.Active())
	}
	var stale dto.Metric
	if err := w.m.staleRenders.Write(&stale); err != nil {
		t.Fatal(err)
	}
	if got := stale.GetCounter().GetValue(); got != 1 {
		t.Fatalf("stale renders counted %v, want 1", got)
	}
	if _, err := render(time.Now().Add(5*time.Second), 5*time.Second); err != nil {
		t.Fatalf("request in time: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for frames.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if frames.Load() == 0 {
		t.Fatal("request in time sent nothing")
	}
}

func writeULawWAV(t *testing.T, path string, ulaw []byte) {
	t.Helper()
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+len(ulaw)))
	b.WriteString("WAVEfmt ")
	_ = binary.Write(&b, le, uint32(16))
	_ = binary.Write(&b, le, uint16(7)) // μ-law
	_ = binary.Write(&b, le, uint16(1))
	_ = binary.Write(&b, le, uint32(8000))
	_ = binary.Write(&b, le, uint32(8000))
	_ = binary.Write(&b, le, uint16(1))
	_ = binary.Write(&b, le, uint16(8))
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(len(ulaw)))
	b.Write(ulaw)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
