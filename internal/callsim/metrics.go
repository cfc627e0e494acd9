package callsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Process is what a load run saw of one process under test, from its
// Prometheus /metrics endpoint.
type Process struct {
	URL string
	// CPU is the CPU time the process used during the run.
	CPU time.Duration
	// PeakRSS and PeakHeap are the most resident memory and live Go heap
	// (go_gc_heap_live_bytes, else go_memstats_heap_inuse_bytes) seen;
	// BaseRSS and BaseHeap were before the first call.
	PeakRSS, BaseRSS   float64
	PeakHeap, BaseHeap float64
	// PeakStreams is the most callcast_edge_streams_active seen (edges only).
	PeakStreams float64
	Err         error // why it could not be read, if it could not
}

// HeapPerStream is the Go heap the process held per concurrent stream at
// its peak, or 0 if it is not an edge.
func (p Process) HeapPerStream() float64 {
	if p.PeakStreams == 0 {
		return 0
	}
	return (p.PeakHeap - p.BaseHeap) / p.PeakStreams
}

// RSSPerStream is like HeapPerStream for resident memory.
func (p Process) RSSPerStream() float64 {
	if p.PeakStreams == 0 {
		return 0
	}
	return (p.PeakRSS - p.BaseRSS) / p.PeakStreams
}

// sample is one scrape of the figures a load run follows.
type sample struct {
	cpu, rss, heap, streams float64
}

// pidSource names a process by its ID (Load's PIDs) in Process.URL.
const pidSource = "pid "

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux of note).
const clockTick = 10 * time.Millisecond

// readProc samples a process from /proc: its CPU time and resident memory
// (no Go heap or streams: it may not be a Go program).
func readProc(pid int) (sample, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return sample{}, err
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return sample{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return sample{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	// f[0] is field 3 (state): utime is field 14, stime 15, rss 24.
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	rss, err3 := strconv.ParseFloat(f[21], 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return sample{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return sample{cpu: (utime + stime) * clockTick.Seconds(), rss: rss * float64(os.Getpagesize())}, nil
}

// scrape samples a process under test: from /proc for "pid N", else from
// its /metrics URL.
func scrape(ctx context.Context, url string) (sample, error) {
	if pid, ok := strings.CutPrefix(url, pidSource); ok {
		n, err := strconv.Atoi(pid)
		if err != nil {
			return sample{}, fmt.Errorf("%q: not a process ID", pid)
		}
		return readProc(n)
	}
	return scrapeMetrics(ctx, url)
}

func scrapeMetrics(ctx context.Context, url string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return sample{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return sample{}, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return sample{}, fmt.Errorf("%s: %w", url, err)
	}
	value := func(name string) float64 {
		f := families[name]
		if f == nil || len(f.Metric) == 0 {
			return 0
		}
		m := f.Metric[0]
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
		return 0
	}
	heap := value("go_gc_heap_live_bytes") // live heap after the last GC, when exposed
	if heap == 0 {
		heap = value("go_memstats_heap_inuse_bytes")
	}
	return sample{
		cpu:     value("process_cpu_seconds_total"),
		rss:     value("process_resident_memory_bytes"),
		heap:    heap,
		streams: value("callcast_edge_streams_active"),
	}, nil
}

// watcher samples processes' metrics through a load run.
type watcher struct {
	procs []Process
	base  []sample
	done  chan struct{}
	over  chan struct{}
}

func watchProcesses(ctx context.Context, urls []string, every time.Duration) *watcher {
	w := &watcher{procs: make([]Process, len(urls)), base: make([]sample, len(urls)), done: make(chan struct{}), over: make(chan struct{})}
	for i, u := range urls {
		w.procs[i].URL = u
		s, err := scrape(ctx, u)
		if err != nil {
			w.procs[i].Err = err
			continue
		}
		w.base[i] = s
		w.procs[i].BaseRSS, w.procs[i].PeakRSS = s.rss, s.rss
		w.procs[i].BaseHeap, w.procs[i].PeakHeap = s.heap, s.heap
	}
	go func() {
		defer close(w.over)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				w.sample(ctx)
			}
		}
	}()
	return w
}

func (w *watcher) sample(ctx context.Context) {
	for i := range w.procs {
		p := &w.procs[i]
		if p.Err != nil {
			continue
		}
		s, err := scrape(ctx, p.URL)
		if err != nil {
			continue // a busy process may miss one scrape
		}
		p.CPU = time.Duration((s.cpu - w.base[i].cpu) * float64(time.Second))
		p.PeakRSS = max(p.PeakRSS, s.rss)
		p.PeakHeap = max(p.PeakHeap, s.heap)
		p.PeakStreams = max(p.PeakStreams, s.streams)
	}
}

// stop takes a last sample and returns the figures.
func (w *watcher) stop(ctx context.Context) []Process {
	close(w.done)
	<-w.over
	w.sample(ctx)
	return w.procs
}
