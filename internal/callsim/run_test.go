package callsim

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/calltest"
)

func TestLoad(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	const calls = 5
	for range calls {
		go serveClip(s, tone(800), "end")
	}
	rep, err := Load(testCtx(t), LoadConfig{
		Call:   Config{URL: s.url, Speed: 10},
		Caller: tone(400),
		Calls:  calls,
		Rate:   100,
		Until:  Until{Quiet: 50 * time.Millisecond, Duration: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Calls != calls || len(rep.FirstMedia) != calls || rep.Failed() || rep.NoAudio != 0 || rep.Underruns != 0 {
		t.Errorf("report %+v", rep)
	}
	if rep.Elapsed < 40*time.Millisecond {
		t.Errorf("5 calls at 100/s started within %v", rep.Elapsed)
	}
	for i := 1; i < len(rep.FirstMedia); i++ {
		if rep.FirstMedia[i] < rep.FirstMedia[i-1] {
			t.Fatal("FirstMedia not sorted")
		}
	}
	var b bytes.Buffer
	if err := rep.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"calls        5", "p50", "p99", "protocol     0 errors"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  LoadConfig
		want error
	}{
		{"remote host", LoadConfig{Call: Config{URL: "wss://voice.example.com/media"}, Calls: 1}, ErrNotLoopback},
		{"private address", LoadConfig{Call: Config{URL: "ws://10.0.0.1:8080/media"}, Calls: 1}, ErrNotLoopback},
		{"no calls", LoadConfig{Call: Config{URL: "ws://127.0.0.1:1/"}}, nil},
		{"too many calls", LoadConfig{Call: Config{URL: "ws://127.0.0.1:1/"}, Calls: MaxLoadCalls + 1}, nil},
		{"negative rate", LoadConfig{Call: Config{URL: "ws://[::1]:1/"}, Calls: 1, Rate: -1}, nil},
		{"fixed sid", LoadConfig{Call: Config{URL: "ws://localhost:1/", StreamSid: "MZ1"}, Calls: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(testCtx(t), tt.cfg)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Load = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var r LoadReport
	if r.Percentile(50) != 0 {
		t.Error("percentile of nothing")
	}
	for i := 1; i <= 100; i++ {
		r.FirstMedia = append(r.FirstMedia, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 95: 95 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0.1: time.Millisecond} {
		if got := r.Percentile(p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

func TestWriteSummary(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	go serveClip(s, tone(1600), "m")
	c, err := Run(testCtx(t), Config{URL: s.url, Speed: 10}, Until{Quiet: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := c.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{c.StreamSid(), "first audio  ", "1 media messages, 1600 bytes (200ms", "1 received, 1 echoed", "underruns    0", "hung up", "protocol     0 errors"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
