package edge

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	// streamHeld is the bytes streamed playbacks hold ahead of playout,
	// across the edge's calls (Config.StreamBufferBytes bounds it).
	streamHeld   atomic.Int64
	sockets      prometheus.Gauge
	streams      prometheus.Gauge
	relayed      *prometheus.CounterVec // by event
	relayedBytes prometheus.Counter
	events       *prometheus.CounterVec // published to the bus, by event
	errors       *prometheus.CounterVec // by kind
	firstAudio   prometheus.Histogram
	queued       prometheus.Gauge // playbacks waiting in the calls' queues
	sendQueue    prometheus.Histogram
	caller       *callerMetrics

	relayedMedia, relayedMark prometheus.Counter     // relayed's children, for the pacer
	streamChunks              *prometheus.CounterVec // streamed playbacks' chunks out of the ordinary, by kind
	eventMark                 prometheus.Counter     // events' child for mark echoes
	workerStops               prometheus.Counter
	paused                    prometheus.Counter
}

// countChunks adds a streamed playback's chunk counts.
func (m *metrics) countChunks(s chunkStats) {
	for _, k := range []struct {
		kind string
		n    int
	}{{"out_of_order", s.outOfOrder}, {"missing", s.missing}, {"late", s.late}, {"bad", s.bad}} {
		if k.n > 0 {
			m.streamChunks.WithLabelValues(k.kind).Add(float64(k.n))
		}
	}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sockets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callcast_edge_sockets", Help: "Media stream WebSockets open now.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callcast_edge_streams_active", Help: "Started media streams held by this edge.",
		}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callcast_edge_relayed_messages_total", Help: "Messages relayed from the bus to Twilio, by event.",
		}, []string{"event"}),
		relayedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_relayed_audio_bytes_total", Help: "μ-law audio bytes relayed to Twilio.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callcast_edge_events_published_total", Help: "Call events published to the bus, by event.",
		}, []string{"event"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callcast_edge_errors_total", Help: "Errors, by kind.",
		}, []string{"kind"}),
		firstAudio: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callcast_edge_start_to_first_audio_seconds",
			Help:    "Time from a stream's start to the first audio relayed to it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callcast_edge_playbacks_queued", Help: "Playbacks waiting in the calls' queues behind the one being sent.",
		}),
		sendQueue: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "callcast_edge_send_queue_depth",
			Help:    "Messages waiting for a socket's writer, sampled as each message is queued.",
			Buckets: []float64{0, 1, 2, 4, 8, 16, 32, 64},
		}),
		streamChunks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callcast_edge_stream_chunks_total",
			Help: "Chunks of streamed playbacks out of the ordinary, by kind: out_of_order (put back in order), missing (played as silence), late (after being given up, or twice: dropped), bad (no valid Callcast-Seq: dropped).",
		}, []string{"kind"}),
		workerStops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_worker_stops_total", Help: "Superseded worker attempts told to stop (a playback paused for producer audio, or moved to another worker).",
		}),
		caller: newCallerMetrics(),
		paused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_playbacks_paused_total", Help: "Playbacks paused for a producer's own media on .out, to resume after it.",
		}),
	}
	m.relayedMedia = m.relayed.WithLabelValues("media")
	m.relayedMark = m.relayed.WithLabelValues("mark")
	m.eventMark = m.events.WithLabelValues("mark")
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "callcast_edge_stream_buffer_bytes", Help: "Bytes streamed playbacks and producer media hold ahead of playout, undecoded and μ-law, across this edge's calls.",
	}, func() float64 { return float64(m.streamHeld.Load()) })
	for _, c := range append([]prometheus.Collector{held, m.sockets, m.streams, m.relayed, m.relayedBytes, m.events, m.errors, m.firstAudio, m.queued, m.sendQueue, m.streamChunks, m.workerStops, m.paused}, m.caller.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
