package callsim

import (
	"bytes"
	"context"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/callcast/callcast/internal/calltest"
)

// TestCompare loads two floors, one with twice the lead, as two targets,
// and checks the report and its ratios.
func TestCompare(t *testing.T) {
	calltest.CheckGoroutines(t)
	clip := bytes.Repeat([]byte{0x55, 0xd5}, 4000) // 1 s
	target := func(name string, lead time.Duration) Target {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		f, err := NewFloor(FloorConfig{Clip: clip, Lead: lead, Gatherer: reg})
		if err != nil {
			t.Fatal(err)
		}
		addr := calltest.Serve(t, name, f)
		return Target{Name: name, URL: "ws://" + addr + "/media-stream", Ready: "http://" + addr + "/metrics", Metrics: []string{"http://" + addr + "/metrics"}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	results, err := Compare(ctx, CompareConfig{
		Targets: []Target{target("a", time.Second), target("b", 2*time.Second)},
		Load:    LoadConfig{Call: Config{Speed: 4}, Calls: 3, Rate: 100, Until: Until{Quiet: time.Second, Duration: 10 * time.Second}},
		Rounds:  2, Warmup: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 4 || results[0].Target != "a" || results[1].Target != "b" || results[3].Round != 2 {
		t.Fatalf("results %+v", results)
	}
	for _, r := range results {
		if r.Report.Calls != 3 || r.Errors() != 0 || len(r.Report.FirstMedia) != 3 || len(r.Report.Processes) != 1 || r.Report.Processes[0].Err != nil {
			t.Errorf("%s round %d: %+v", r.Target, r.Round, r.Report)
		}
	}
	var out bytes.Buffer
	if err := WriteComparison(&out, results); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`ratios to a \(medians over rounds\):\n.*\n\s+b\s+[0-9.]+×\s+[0-9.]+×\s+[0-9.-]+×?`).MatchString(out.String()) {
		t.Errorf("no ratios of b to a:\n%s", out.String())
	}
	if !regexp.MustCompile(`b cpu/call ÷ a, round by round: median [0-9.]+×, range [0-9.]+–[0-9.]+× over 2 rounds\n`).MatchString(out.String()) {
		t.Errorf("no round-by-round cpu/call ratio:\n%s", out.String())
	}
}

// TestRunFloorClip serves an audio file through RunFloor until cancelled.
func TestRunFloorClip(t *testing.T) {
	calltest.CheckGoroutines(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tone.wav")
	calltest.WriteFile(t, path, calltest.MulawWAV(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- RunFloor(ctx, "127.0.0.1:0", path, time.Second, nil, func(a net.Addr) { ready <- a }) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	c, err := Run(testCtx(t), Config{URL: "ws://" + addr.String() + "/", Speed: 4}, Until{Quiet: time.Second, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if wav := calltest.MulawWAV(time.Second); !bytes.Equal(c.Played(), wav[len(wav)-8000:]) {
		t.Errorf("played %d bytes, want the file's 8000", len(c.Played()))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := RunFloor(context.Background(), "127.0.0.1:0", filepath.Join(dir, "none.wav"), time.Second, nil, nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing clip: %v", err)
	}
	calltest.WriteFile(t, filepath.Join(dir, "text.wav"), []byte("not audio"))
	if err := RunFloor(context.Background(), "127.0.0.1:0", filepath.Join(dir, "text.wav"), time.Second, nil, nil); err == nil {
		t.Error("text served as a clip")
	}
	_ = os.Remove(path)
}

// TestLoadPIDs reads a process's CPU from /proc.
func TestLoadPIDs(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.cpu <= 0 || s.rss <= 0 {
		t.Errorf("sample %+v", s)
	}
	if _, err := scrape(context.Background(), pidSource+"x"); err == nil {
		t.Error("a bad process ID read")
	}
}

// TestMedianInterval: the interval between order statistics that holds the
// median with at least 95 % confidence, as binomial tables give it.
func TestMedianInterval(t *testing.T) {
	seq := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(n - i) // descending: the function sorts
		}
		return v
	}
	for _, tc := range []struct {
		n      int
		ok     bool
		lo, hi float64 // order statistics, from 1
		conf   float64
	}{
		{5, false, 0, 0, 0},
		{6, true, 1, 6, 1 - 2.0/64},
		{10, true, 2, 9, 1 - 2*11.0/1024},
		{20, true, 6, 15, 1 - 2*0.020694732666015625},
	} {
		lo, hi, conf, ok := medianInterval(seq(tc.n))
		if ok != tc.ok || lo != tc.lo || hi != tc.hi || math.Abs(conf-tc.conf) > 1e-12 {
			t.Errorf("n=%d: %v %v–%v at %v, want %v %v–%v at %v", tc.n, ok, lo, hi, conf, tc.ok, tc.lo, tc.hi, tc.conf)
		}
	}
	if m := medianOf([]float64{3, 1, 2, 10}); m != 2.5 {
		t.Errorf("median %v, want 2.5", m)
	}
}
