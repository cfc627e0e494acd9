package edge

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/callsim"
)

// TestCallerAudioLoad measures caller audio latency as far as it can be
// split: CALLCAST_CALLER_LOAD calls (500, say) say stamped frames for
// CALLCAST_CALLER_LOAD_DURATION (default 20s) to an edge with
// CALLER_AUDIO=on, which publishes every frame on .in to an in-process NATS
// server over loopback TCP, where callsim's listener takes them: all in this
// process, over real sockets. callsim stamps each frame with the time it
// hands it to its socket; the edge's read hook notes how long the frame took
// to be read (callsim's write → the edge's read, its wake-up included) and
// restamps it with the time of the read, so the listener reports the edge's
// read → the message delivered to a subscriber of .in, what the figure
// "Twilio frame read by the edge → message delivered" names.
//
//	CALLCAST_CALLER_LOAD=500 go test -count=1 -run TestCallerAudioLoad -v ./internal/edge
//
// With CALLCAST_CALLER_LOAD_MAX_P99 (5ms, say) it fails when the edge's
// read → subscriber p99 is over it.
func TestCallerAudioLoad(t *testing.T) {
	calls, _ := strconv.Atoi(os.Getenv("CALLCAST_CALLER_LOAD"))
	if calls <= 0 {
		t.Skip("a load measurement: set CALLCAST_CALLER_LOAD=500 to run it")
	}
	dur := 20 * time.Second
	if v := os.Getenv("CALLCAST_CALLER_LOAD_DURATION"); v != "" {
		var err error
		if dur, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	var toRead latHist
	callerReadHook = func(ulaw []byte, at time.Time) {
		if was, ok := callsim.Restamp(ulaw, at); ok {
			toRead.add(at.Sub(was))
		}
	}
	t.Cleanup(func() { callerReadHook = nil }) // after the edge's own cleanups
	addr, nc := serve(t, Config{CallerAudio: CallerAudioOn})

	load0 := loadAverage()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := processCPU(t)
	rep, err := callsim.Load(t.Context(), callsim.LoadConfig{
		Call:          callsim.Config{URL: "ws://" + addr + PathMediaStream},
		Calls:         calls,
		Rate:          100,
		Until:         callsim.Until{Duration: dur},
		InLatencyNATS: nc.ConnectedUrl(),
	})
	if err != nil {
		t.Fatal(err)
	}
	cpu := processCPU(t) - cpu0
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	if rep.Failed() {
		t.Fatalf("load run failed: %v", rep.Errors)
	}
	l := rep.InLatency
	if len(l) == 0 || rep.InUnstamped > 0 {
		t.Fatalf("%d messages on .in, %d unstamped", len(l), rep.InUnstamped)
	}
	pct := func(p float64) time.Duration {
		return l[min(len(l)-1, int(p/100*float64(len(l))))].Round(10 * time.Microsecond)
	}
	t.Logf("%d calls, %v each: %d caller frames sent, %d dropped late by callsim's writers", calls, dur, rep.CallerMedia, rep.CallerDropped)
	t.Logf("callsim's write → the edge's read:        p50 %v  p95 %v  p99 %v  max %v",
		toRead.pct(50), toRead.pct(95), toRead.pct(99), toRead.pct(100))
	t.Logf("the edge's read → a subscriber of .in:    p50 %v  p95 %v  p99 %v  max %v  (%d messages)",
		pct(50), pct(95), pct(99), l[len(l)-1].Round(10*time.Microsecond), len(l))
	if v := os.Getenv("CALLCAST_CALLER_LOAD_MAX_P99"); v != "" {
		limit, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if p99 := pct(99); p99 > limit {
				t.Errorf("the edge's read → a subscriber of .in: p99 %v, want ≤ %v", p99, limit)
			}
		}()
	}
	t.Logf("the machine's load average: %s before, %s after (2 cores; this run itself adds about 1 at 500 calls)", load0, loadAverage())
	t.Logf("this process (edge, NATS server, callers, listener): CPU %v over %v (%.0f%% of one core); %d GCs, %v of stop-the-world pauses",
		cpu.Round(time.Millisecond), rep.Elapsed.Round(time.Millisecond), 100*cpu.Seconds()/rep.Elapsed.Seconds(),
		ms1.NumGC-ms0.NumGC, time.Duration(ms1.PauseTotalNs-ms0.PauseTotalNs))
}

// loadAverage is the machine's 1-minute load average, where Linux says.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// processCPU is the CPU time this process has used so far.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latHist counts latencies in 10 µs buckets up to 2 s, lock-free: the
// edge's 500 readers add to it at once.
type latHist struct {
	b [200001]atomic.Int64
	n atomic.Int64
}

const latBucket = 10 * time.Microsecond

func (h *latHist) add(d time.Duration) {
	i := min(max(int(d/latBucket), 0), len(h.b)-1)
	h.b[i].Add(1)
	h.n.Add(1)
}

// pct returns the p-th percentile (nearest rank), to the bucket.
func (h *latHist) pct(p float64) time.Duration {
	n := h.n.Load()
	rank := max(int64(p/100*float64(n)+0.999999), 1)
	var seen int64
	for i := range h.b {
		if seen += h.b[i].Load(); seen >= rank {
			return time.Duration(i) * latBucket
		}
	}
	return time.Duration(len(h.b)-1) * latBucket
}
