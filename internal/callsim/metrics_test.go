package callsim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/calltest"
)

func TestLoadReportsProcesses(t *testing.T) {
	calltest.CheckGoroutines(t)
	// A process under test whose CPU, memory and streams grow with each scrape.
	var n atomic.Int64
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := float64(n.Add(1) - 1)
		streams := min(i, 2)
		fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", 10+0.5*i)
		fmt.Fprintf(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %g\n", 1e7+streams*65536)
		fmt.Fprintf(w, "# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes %g\n", 4e6+streams*32768)
		fmt.Fprintf(w, "# TYPE callcast_edge_streams_active gauge\ncallcast_edge_streams_active %g\n", streams)
	}))
	defer metrics.Close()

	s := newTestServer(t, false)
	for range 2 {
		go serveClip(s, tone(800), "end")
	}
	rep, err := Load(testCtx(t), LoadConfig{
		Call:    Config{URL: s.url, Speed: 10},
		Calls:   2,
		Until:   Until{Quiet: 600 * time.Millisecond, Duration: 5 * time.Second},
		Metrics: []string{metrics.URL + "/metrics"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Processes) != 1 {
		t.Fatalf("processes %+v", rep.Processes)
	}
	p := rep.Processes[0]
	if p.Err != nil || p.CPU <= 0 || p.PeakStreams != 2 || p.BaseHeap != 4e6 || p.PeakHeap != 4e6+2*32768 {
		t.Fatalf("process %+v", p)
	}
	if got := p.HeapPerStream(); got != 32768 {
		t.Errorf("heap per stream %g, want 32768", got)
	}
	if got := p.RSSPerStream(); got != 65536 {
		t.Errorf("rss per stream %g, want 65536", got)
	}
}

func TestLoadRefusesRemoteMetrics(t *testing.T) {
	_, err := Load(testCtx(t), LoadConfig{Call: Config{URL: "ws://127.0.0.1:1/x"}, Calls: 1, Metrics: []string{"http://192.0.2.1/metrics"}})
	if err == nil {
		t.Fatal("a non-loopback metrics URL was accepted")
	}
}
