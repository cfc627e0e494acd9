package worker

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callcast/callcast/internal/library"
)

type metrics struct {
	active     prometheus.Gauge
	playbacks  *prometheus.CounterVec // by outcome
	requests   *prometheus.CounterVec // by endpoint and result code
	transcode  prometheus.Histogram   // CPU-side seconds per second of audio
	audioBytes prometheus.Counter
	stopDelay  prometheus.Histogram // the edge's stop to the attempt's end
	// staleRenders counts render requests dropped because they arrived
	// after the edge stopped waiting for them.
	staleRenders prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callcast_worker_playbacks_active", Help: "Playbacks this worker is sending now.",
		}),
		playbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callcast_worker_playbacks_total", Help: "Playbacks ended, by outcome: sent, stopped, superseded (the edge told the attempt to stop), failed.",
		}, []string{"outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callcast_worker_requests_total", Help: "Requests served, by endpoint and result code (ok or an error code).",
		}, []string{"endpoint", "code"}),
		transcode: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callcast_worker_transcode_realtime_factor",
			Help:    "Seconds of audio transcoded per second spent transcoding, per playback.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		audioBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_worker_audio_bytes_total", Help: "μ-law bytes sent to calls.",
		}),
		stopDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callcast_worker_stop_seconds",
			Help:    "Time from the edge telling a superseded attempt to stop to the attempt's end.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		staleRenders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_worker_stale_renders_total", Help: "Render requests dropped unplayed because they arrived after the edge stopped waiting (e.g. buffered across a NATS outage).",
		}),
	}
	for _, c := range []prometheus.Collector{m.active, m.playbacks, m.requests, m.transcode, m.audioBytes, m.stopDelay, m.staleRenders} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

const (
	sharedEvictions     = "callcast_worker_cache_shared_evictions_total"
	sharedEvictionsHelp = "Entries this worker evicted from the callcast-cache bucket to make room under CACHE_MAX_BYTES, by reason: old_version (of an older pipeline version), least_recently_used."
)

// bucketCollector exports the Object Store buckets' sizes, asking
// JetStream at most every bucketStatsEvery.
type bucketCollector struct {
	lib                   *library.Library
	bytes, entries, limit *prometheus.Desc

	mu   sync.Mutex
	at   time.Time
	last []library.BucketStats
}

const bucketStatsEvery = 10 * time.Second

func newBucketCollector(lib *library.Library) *bucketCollector {
	return &bucketCollector{
		lib: lib,
		bytes: prometheus.NewDesc("callcast_worker_bucket_bytes",
			"Bytes of an Object Store bucket (callcast-audio, callcast-cache), as JetStream counts its stream.", []string{"bucket"}, nil),
		entries: prometheus.NewDesc("callcast_worker_bucket_entries",
			"Objects holding data in an Object Store bucket.", []string{"bucket"}, nil),
		limit: prometheus.NewDesc("callcast_worker_bucket_max_bytes",
			"The bound of an Object Store bucket (LIBRARY_MAX_BYTES, CACHE_MAX_BYTES); 0: none.", []string{"bucket"}, nil),
	}
}

func (c *bucketCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.bytes
	ch <- c.entries
	ch <- c.limit
}

func (c *bucketCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= bucketStatsEvery && c.lib.Shared() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if stats, err := c.lib.Buckets(ctx); err == nil {
			c.last, c.at = stats, time.Now()
		}
		cancel()
	}
	for _, b := range c.last {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(b.Bytes), b.Bucket)
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(b.Entries), b.Bucket)
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(b.MaxBytes), b.Bucket)
	}
}

// registerCacheMetrics exports the transcode cache's counters and the
// Object Store buckets' sizes.
func registerCacheMetrics(reg prometheus.Registerer, lib *library.Library) error {
	counter := func(name, help string, labels prometheus.Labels, v func(library.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v(lib.Stats())) })
	}
	const hits = "callcast_worker_cache_hits_total"
	const hitsHelp = "Audio opened or probed from the transcode cache, by tier: memory, or shared (the callcast-cache bucket)."
	for _, c := range []prometheus.Collector{
		counter(hits, hitsHelp, prometheus.Labels{"tier": "memory"}, func(s library.Stats) int64 { return s.MemoryHits }),
		counter(hits, hitsHelp, prometheus.Labels{"tier": "shared"}, func(s library.Stats) int64 { return s.SharedHits }),
		counter("callcast_worker_cache_misses_total", "Playbacks that transcoded their source.", nil,
			func(s library.Stats) int64 { return s.Misses }),
		counter("callcast_worker_cache_joins_total", "Playbacks that shared a transcode of the same source already in progress.", nil,
			func(s library.Stats) int64 { return s.Joins }),
		counter("callcast_worker_cache_evictions_total", "Entries evicted from the memory cache to make room.", nil,
			func(s library.Stats) int64 { return s.Evictions }),
		counter("callcast_worker_cache_stored_total", "Transcodes completed cleanly and cached.", nil,
			func(s library.Stats) int64 { return s.Stored }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "callcast_worker_cache_memory_bytes", Help: "μ-law held in the memory cache.",
		}, func() float64 { return float64(lib.Stats().MemoryBytes) }),
		counter(sharedEvictions, sharedEvictionsHelp, prometheus.Labels{"reason": "old_version"},
			func(s library.Stats) int64 { return s.SharedEvictionsOld }),
		counter(sharedEvictions, sharedEvictionsHelp, prometheus.Labels{"reason": "least_recently_used"},
			func(s library.Stats) int64 { return s.SharedEvictionsLRU }),
		newBucketCollector(lib),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// timedReader measures the time spent inside Read: the transcoding cost of
// a paced stream, without the waits between reads.
type timedReader struct {
	r     io.Reader
	spent time.Duration
	n     int64
}

func (t *timedReader) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := t.r.Read(p)
	t.spent += time.Since(start)
	t.n += int64(n)
	return n, err
}
