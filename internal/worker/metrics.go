package worker

import (
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	active     prometheus.Gauge
	playbacks  *prometheus.CounterVec // by outcome
	requests   *prometheus.CounterVec // by endpoint and result code
	transcode  prometheus.Histogram   // CPU-side seconds per second of audio
	audioBytes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callcast_worker_playbacks_active", Help: "Playbacks this worker is sending now.",
		}),
		playbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callcast_worker_playbacks_total", Help: "Playbacks ended, by outcome: sent, stopped, failed.",
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
	}
	for _, c := range []prometheus.Collector{m.active, m.playbacks, m.requests, m.transcode, m.audioBytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
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
