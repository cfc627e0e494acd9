// Package worker plays audio into live calls: it takes stream starts from the
// bus (queue group callcast-workers), opens the requested audio by name with
// package library (a file in the audio directory, else an object in the
// JetStream Object Store), as G.711 μ-law 8 kHz mono transcoded once and then
// served from a cache shared by all workers, and
// publishes 20 ms media frames on the stream's out subject, paced by Twilio's
// mark echoes so that only a short lead is ever buffered at Twilio.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/library"
)

// NoDefaultAudio, as Config.DefaultAudio, plays nothing on calls that name
// no audio.
const NoDefaultAudio = "none"

// MaxLead bounds Config.Lead well below the 10 minutes of audio Twilio
// buffers: beyond a few seconds a lead only delays noticing a dead call.
const MaxLead = time.Minute

// ServiceName is the worker's NATS micro service name ($SRV.PING.callcast-worker).
const ServiceName = "callcast-worker"

// Version is reported in the service's $SRV.INFO.
const Version = "0.1.0"

// Config configures a Worker. Zero values mean the documented defaults.
type Config struct {
	// AudioDir holds the playable files. Default "./audio".
	AudioDir string
	// DefaultAudio is played when a start names no audio. Default
	// "sample.mp3"; NoDefaultAudio plays nothing, leaving the call to
	// producers.
	DefaultAudio string
	// Concurrency caps simultaneous playbacks. Default 1000.
	Concurrency int
	// Lead is how far sending may run ahead of what the caller has heard:
	// the margin that rides out a stall anywhere between the worker and
	// Twilio. Default 2 s; at least MarkEvery + Chunk, at most MaxLead.
	Lead time.Duration
	// MarkEvery is the audio between progress marks. Default 200 ms.
	MarkEvery time.Duration
	// Chunk is the audio in one media message, a multiple of 20 ms.
	// Default 200 ms: one message per mark, half the messages of 100 ms
	// chunks for the same pacing.
	Chunk time.Duration
	// MarkGrace is how long mark echoes may lag real time before pacing
	// falls back to the wall clock. Default 500 ms.
	MarkGrace time.Duration
	// MaxFileSize refuses larger audio files. Default 100 MiB.
	MaxFileSize int64
	// JetStream plays audio from the Object Store bucket callcast-audio
	// (names not found in AudioDir) and shares transcoded audio with every
	// worker through the bucket callcast-cache. Without it, or when the
	// server has no JetStream, the worker plays local files and caches in
	// memory only. Run and the all-in-one edge set it.
	JetStream bool
	// CacheBytes bounds the memory cache of transcoded audio. Default
	// 256 MiB; negative: none.
	CacheBytes int64
	// LibraryMaxBytes, CacheMaxBytes and Replicas configure the Object
	// Store buckets (library.Options: LIBRARY_MAX_BYTES, CACHE_MAX_BYTES,
	// NATS_REPLICAS). Zero values: the library's defaults.
	LibraryMaxBytes int64
	CacheMaxBytes   int64
	Replicas        int
	// EchoTimeout stops a playback when Twilio has echoed none of its marks
	// for this long while its audio waits to be heard: the call or its edge
	// is gone without a stop. Default 5 s.
	EchoTimeout time.Duration
	// RequestTimeout bounds a request to an edge. Default 2 s.
	RequestTimeout time.Duration
	// ID names this worker in logs and service info. Default: a random ID.
	ID string
	// Logger receives the worker's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the worker's metrics. Nil: a private registry.
	Registerer prometheus.Registerer
}

// Validate reports a setting New would refuse, without starting anything.
func (c Config) Validate() error {
	c.setDefaults()
	if min := c.MarkEvery + c.Chunk; c.Lead < min || c.Lead > MaxLead {
		return fmt.Errorf("worker: lead %v: want %v to %v", c.Lead, min, MaxLead)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.AudioDir == "" {
		c.AudioDir = "./audio"
	}
	if c.DefaultAudio == "" {
		c.DefaultAudio = "sample.mp3"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1000
	}
	if c.Lead <= 0 {
		c.Lead = 2 * time.Second
	}
	if c.MarkEvery <= 0 {
		c.MarkEvery = 200 * time.Millisecond
	}
	if c.Chunk < 20*time.Millisecond {
		c.Chunk = 200 * time.Millisecond
	}
	if c.MarkGrace <= 0 {
		c.MarkGrace = 500 * time.Millisecond
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = 100 << 20
	}
	if c.EchoTimeout <= 0 {
		c.EchoTimeout = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 2 * time.Second
	}
	if c.ID == "" {
		c.ID = nuid.Next()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
}

// Worker serves the bus. Create it with New, start with Start, stop with
// Shutdown.
type Worker struct {
	cfg Config
	nc  *nats.Conn
	log *slog.Logger
	lib *library.Library
	svc micro.Service
	m   *metrics

	slots chan struct{}
	ctx   context.Context // cancelled when Shutdown gives up waiting
	kill  context.CancelFunc
	jobs  sync.WaitGroup

	// Playbacks' frames carry reply subjects under inbox; NATS answers
	// there with a 503 when no edge holds the stream (see bus.HeaderPing).
	inbox    string
	inboxSub *nats.Subscription
	byReply  sync.Map // reply token → *playback or *edgeWatch

	edgesMu  sync.Mutex
	edges    map[string]*edgeWatch // by alive subject
	edgeN    int                   // edge watches started, for their tokens
	watchers sync.WaitGroup        // probeEdge goroutines

	reconnMu     sync.Mutex
	reconnects   uint64    // the connection's reconnect count last seen
	reconnSeenAt time.Time // when it was seen to change
}

// reconnectGrace is how long after this worker's connection came back a
// no-responders answer is not believed: edges re-subscribe after a NATS
// restart at their own pace.
const reconnectGrace = 5 * time.Second

// flushTimeout bounds Start's wait for the server to confirm subscriptions.
const flushTimeout = 2 * time.Second

// New returns a worker using nc. It fails if the audio directory cannot be
// opened.
func New(nc *nats.Conn, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("worker: metrics: %w", err)
	}
	log := cfg.Logger.With("worker", cfg.ID)
	lo := library.Options{Dir: cfg.AudioDir, MaxFileSize: cfg.MaxFileSize, MemoryBytes: cfg.CacheBytes, Logger: log,
		LibraryMaxBytes: cfg.LibraryMaxBytes, CacheMaxBytes: cfg.CacheMaxBytes, Replicas: cfg.Replicas}
	if cfg.JetStream {
		if lo.JS, err = jetstream.New(nc); err != nil {
			return nil, fmt.Errorf("worker: jetstream: %w", err)
		}
	}
	bindCtx, cancel := context.WithTimeout(context.Background(), cfg.RequestTimeout)
	defer cancel()
	lib, err := library.New(bindCtx, lo)
	if err != nil {
		return nil, err
	}
	if err := registerCacheMetrics(cfg.Registerer, lib); err != nil {
		lib.Close()
		return nil, fmt.Errorf("worker: metrics: %w", err)
	}
	ctx, kill := context.WithCancel(context.Background())
	return &Worker{
		cfg:   cfg,
		nc:    nc,
		log:   log,
		lib:   lib,
		m:     m,
		slots: make(chan struct{}, cfg.Concurrency),
		edges: make(map[string]*edgeWatch),
		ctx:   ctx,
		kill:  kill,
	}, nil
}

// Start subscribes the worker to the bus in the callcast-workers queue
// group: stream starts, play requests and render requests.
func (w *Worker) Start() error {
	svc, err := micro.AddService(w.nc, micro.Config{
		Name:        ServiceName,
		Version:     Version,
		Description: "Plays audio into live Twilio calls",
		QueueGroup:  bus.QueueWorkers,
		Metadata:    map[string]string{"worker": w.cfg.ID},
	})
	if err != nil {
		return fmt.Errorf("worker: add service: %w", err)
	}
	endpoints := []struct {
		name, subject string
		handler       micro.HandlerFunc
	}{
		{"stream-started", bus.SubjectStreamStarted, w.onStreamStarted},
		{"play", bus.SubjectPlay, w.onPlay},
		{"render", bus.SubjectRender, w.onRender},
	}
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.name, e.handler, micro.WithEndpointSubject(e.subject)); err != nil {
			_ = svc.Stop()
			return fmt.Errorf("worker: add endpoint %s: %w", e.name, err)
		}
	}
	w.svc = svc
	w.inbox = w.nc.NewInbox()
	if w.inboxSub, err = w.nc.Subscribe(w.inbox+".*", w.onNoResponders); err != nil {
		_ = svc.Stop()
		return fmt.Errorf("worker: subscribe replies: %w", err)
	}
	// Start means subscribed: once the server has the subscriptions, no
	// stream start published after Start returns can miss this worker.
	// Disconnected, the client subscribes again when it reconnects.
	if !w.nc.IsConnected() {
		w.log.Info("not connected to NATS yet; subscribing on connect")
	} else if err := w.nc.FlushTimeout(flushTimeout); err != nil {
		w.log.Warn("worker subscriptions not yet confirmed by the NATS server", "err", err)
	}
	w.log.Info("worker started", "audio_dir", w.cfg.AudioDir, "default_audio", w.cfg.DefaultAudio, "concurrency", w.cfg.Concurrency,
		"object_store", w.lib.Shared(), "cache_bytes", w.cfg.CacheBytes)
	return nil
}

// Shutdown stops taking new work, lets playbacks in flight finish until ctx
// is done, then stops them and waits for them to return.
func (w *Worker) Shutdown(ctx context.Context) error {
	var err error
	if w.svc != nil {
		err = w.svc.Stop()
	}
	done := make(chan struct{})
	go func() { w.jobs.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		w.log.Warn("worker drain deadline passed; stopping playbacks")
		w.kill()
		<-done
	}
	w.kill()
	w.watchers.Wait() // their playbacks have all ended
	if w.inboxSub != nil {
		err = errors.Join(err, w.inboxSub.Unsubscribe())
	}
	return errors.Join(err, w.lib.Close())
}

// onNoResponders stops the playback whose frame or ping found no edge
// holding its stream: the call is over, or its edge is gone.
//
// A message with bus.HeaderStop instead is the edge telling the attempt
// that published there to stop: the playback has moved on without it.
func (w *Worker) onNoResponders(msg *nats.Msg) {
	if msg.Header.Get(bus.HeaderStop) != "" {
		token := msg.Subject[strings.LastIndexByte(msg.Subject, '.')+1:]
		if p, ok := w.byReply.Load(token); ok {
			if p, ok := p.(*playback); ok {
				p.stop(errSuperseded)
				p.wake()
			}
		}
		return
	}
	if msg.Header.Get("Status") != "503" {
		return
	}
	w.reconnMu.Lock()
	if r := w.nc.Stats().Reconnects; r != w.reconnects {
		w.reconnects, w.reconnSeenAt = r, time.Now()
	}
	recent := time.Since(w.reconnSeenAt) < reconnectGrace
	w.reconnMu.Unlock()
	if recent {
		return
	}
	token := msg.Subject[strings.LastIndexByte(msg.Subject, '.')+1:]
	v, _ := w.byReply.Load(token)
	switch v := v.(type) {
	case *playback:
		v.stop(errStreamGone)
		v.wake()
	case *edgeWatch:
		w.edgeGone(v)
	}
}

// Active returns the number of playbacks in flight.
func (w *Worker) Active() int { return len(w.slots) }

// SharedStore reports whether the worker reaches the JetStream buckets
// (the audio library and the shared cache) now.
func (w *Worker) SharedStore() bool { return w.lib.Shared() }

// go runs f in a goroutine owned by w.jobs, so that micro's one-at-a-time
// handlers never wait on the network.
func (w *Worker) goJob(f func()) {
	w.jobs.Add(1)
	go func() {
		defer w.jobs.Done()
		f()
	}()
}

// onStreamStarted queues the call's own audio (customParameters.audio, else
// DefaultAudio) on the edge holding the stream, unless that edge has
// queued it itself (StreamStarted.AudioByEdge).
func (w *Worker) onStreamStarted(req micro.Request) {
	st, err := bus.DecodeStreamStarted(req.Data())
	if err != nil {
		w.log.Warn("ignoring invalid stream start", "err", err)
		return
	}
	if st.AudioByEdge {
		return
	}
	name := st.CustomParameters["audio"]
	if name == "" {
		name = w.cfg.DefaultAudio
	}
	if name == NoDefaultAudio {
		return
	}
	log := w.log.With("stream_sid", st.StreamSid, "call_sid", st.CallSid, "audio", name)
	w.goJob(func() {
		reply := w.enqueue(&bus.PlayRequest{StreamSid: st.StreamSid, Audio: name, Mode: bus.ModeQueue})
		if reply.Error == nil {
			return
		}
		log.Error("playback failed", "code", reply.Error.Code, "err", reply.Error.Message)
		ev := bus.NewEvent(st.StreamSid, bus.EventPlaybackFailed)
		ev.Playback = &bus.Playback{ID: reply.PlaybackID, Audio: name}
		ev.Error = reply.Error
		w.publishEvent(ev)
	})
}

// onPlay serves callcast.play: check the request and the audio, then queue
// it on the edge that holds the stream.
func (w *Worker) onPlay(req micro.Request) {
	pr, err := bus.DecodePlayRequest(req.Data())
	if err != nil {
		w.respond(req, bus.ErrorReply(bus.CodeBadRequest, err.Error()))
		return
	}
	w.goJob(func() { w.respond(req, w.enqueue(pr)) })
}

// enqueue checks the audio and hands the playback to the edge holding the
// stream.
func (w *Worker) enqueue(pr *bus.PlayRequest) bus.PlayReply {
	id := nuid.Next()
	enq := bus.Enqueue{
		Type: bus.TypeEnqueue, PlaybackID: id, RequestID: pr.ID, Audio: pr.Audio, Stream: pr.Stream,
		Mode: pr.Mode, Interruptible: pr.Interruptible,
	}
	// A streamed playback's audio does not exist yet: the edge that holds
	// the call plays it, subscribed to bus.PlaybackAudio(id) before it
	// answers, and its reply (with audioSubject) goes back as it is.
	if pr.Stream == nil {
		pctx, cancel := context.WithTimeout(w.ctx, w.cfg.RequestTimeout)
		info, err := w.lib.Probe(pctx, pr.Audio)
		cancel()
		if err != nil {
			return bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: id, Error: errorBody(err, pr.Audio)}
		}
		enq.DurationMs = info.Duration.Milliseconds()
	}
	data, err := json.Marshal(enq)
	if err != nil {
		return bus.ErrorReply(bus.CodeInternal, err.Error())
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.RequestTimeout)
	defer cancel()
	resp, err := w.nc.RequestWithContext(ctx, bus.StreamPlay(pr.StreamSid), data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return bus.ErrorReply(bus.CodeUnknownStream, fmt.Sprintf("no live call has stream %s", pr.StreamSid))
	case err != nil:
		return bus.ErrorReply(bus.CodeInternal, fmt.Sprintf("queue on the edge: %v", err))
	}
	reply, err := bus.DecodePlayReply(resp.Data)
	if err != nil {
		return bus.ErrorReply(bus.CodeInternal, fmt.Sprintf("edge reply: %v", err))
	}
	return *reply
}

// onRender serves callcast.render: take one playback for a stream and send
// it, if there is room. Opening the audio may fetch it from the Object
// Store, so it is done off the handler.
func (w *Worker) onRender(req micro.Request) {
	rr, err := bus.DecodeRenderRequest(req.Data())
	if err != nil {
		w.respond(req, bus.ErrorReply(bus.CodeBadRequest, err.Error()))
		return
	}
	if rr.Expires != 0 && time.Now().UnixMilli() > rr.Expires {
		// The edge gave up on this request (it sat in a buffer across an
		// outage): it has re-dispatched or ended the playback since.
		w.m.staleRenders.Inc()
		w.log.Debug("dropping a render request that expired before it arrived", "playback", rr.PlaybackID, "attempt", rr.Attempt, "late", time.Since(time.UnixMilli(rr.Expires)).Round(time.Millisecond))
		return
	}
	select {
	case w.slots <- struct{}{}:
	default:
		w.respond(req, bus.ErrorReply(bus.CodeBusy, fmt.Sprintf("worker %s is at its %d playbacks", w.cfg.ID, w.cfg.Concurrency)))
		return
	}
	w.goJob(func() {
		defer func() { <-w.slots }()
		w.render(req, rr)
	})
}

// render opens a playback's audio, answers the render request and sends
// the audio.
func (w *Worker) render(req micro.Request, rr *bus.RenderRequest) {
	log := w.log.With("stream_sid", rr.StreamSid, "call_sid", rr.CallSid, "audio", rr.Audio, "playback", rr.PlaybackID)
	defer func() {
		if r := recover(); r != nil {
			log.Error("panic in playback", "panic", r)
		}
	}()
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.RequestTimeout)
	src, err := w.lib.Open(ctx, rr.Audio)
	cancel()
	if err != nil {
		log.Error("playback failed", "err", err)
		w.respond(req, bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: rr.PlaybackID, Error: errorBody(err, rr.Audio)})
		return
	}
	defer src.Close()
	w.respond(req, bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: rr.PlaybackID, DurationMs: src.Info().Duration.Milliseconds()})
	p := &playback{
		nc:        w.nc,
		log:       log,
		id:        rr.PlaybackID,
		attempt:   rr.Attempt,
		sid:       rr.StreamSid,
		audio:     rr.Audio,
		duration:  src.Info().Duration.Milliseconds(),
		src:       src,
		offset:    rr.Offset,
		ahead:     rr.Ahead,
		lead:      int64(w.cfg.Lead / time.Millisecond * bytesPerMs),
		markEvery: int64(w.cfg.MarkEvery / time.Millisecond * bytesPerMs),
		chunk:     int(w.cfg.Chunk/(20*time.Millisecond)) * audio.FrameSize,
		grace:     w.cfg.MarkGrace,
		silence:   w.cfg.EchoTimeout,
		notify:    make(chan struct{}, 1),
	}
	for _, a := range rr.Ahead {
		p.backlog += max(0, a.End-a.Heard)
	}
	// A resumed attempt: what earlier attempts sent and Twilio has not
	// played yet is still buffered there, ahead of this attempt's audio.
	p.heard.Store(rr.Heard)
	p.backlog += rr.Offset - rr.Heard
	timed := &timedReader{r: src}
	p.src = timed
	p.pingEvery = pingEvery
	if w.inbox != "" {
		token := rr.PlaybackID + "-" + strconv.Itoa(rr.Attempt)
		p.reply = w.inbox + "." + token
		w.byReply.Store(token, p)
		defer w.byReply.Delete(token)
		if rr.EdgeAlive != "" {
			// The edge's probe covers the edge vanishing; the stream's own
			// pings only back up its stop event.
			defer w.watchEdge(rr.EdgeAlive, p)()
			p.pingEvery = streamPingEvery
		}
	}
	w.m.active.Inc()
	defer w.m.active.Dec()
	start := time.Now()
	sent, err := p.run(w.ctx)
	took := time.Since(start).Round(time.Millisecond)
	w.m.audioBytes.Add(float64(sent - rr.Offset))
	rtf := 0.0
	if timed.spent > 0 {
		rtf = (time.Duration(timed.n) * time.Millisecond / bytesPerMs).Seconds() / timed.spent.Seconds()
		w.m.transcode.Observe(rtf)
	}
	switch {
	case err == nil:
		w.m.playbacks.WithLabelValues("sent").Inc()
		log.Info("playback sent", "sent_ms", sent/bytesPerMs, "took", took, "cached", src.Cached(), "transcode", timed.spent.Round(time.Microsecond), "realtime_factor", int(rtf))
	case errors.Is(err, errSuperseded):
		w.m.playbacks.WithLabelValues("superseded").Inc()
		p.stopMu.Lock()
		w.m.stopDelay.Observe(time.Since(p.stoppedAt).Seconds())
		p.stopMu.Unlock()
		log.Info("playback superseded: the edge moved it on", "sent_ms", sent/bytesPerMs, "took", took)
	case isStop(err):
		w.m.playbacks.WithLabelValues("stopped").Inc()
		log.Info("playback stopped", "reason", err, "sent_ms", sent/bytesPerMs, "took", took, "cached", src.Cached())
	default:
		w.m.playbacks.WithLabelValues("failed").Inc()
		log.Error("playback failed", "err", err, "sent_ms", sent/bytesPerMs)
	}
}

func (w *Worker) respond(req micro.Request, reply bus.PlayReply) {
	result := "ok"
	if reply.Error != nil {
		result = reply.Error.Code
	}
	w.m.requests.WithLabelValues(req.Subject(), result).Inc()
	data, err := json.Marshal(reply)
	if err != nil {
		w.log.Error("encode reply", "err", err)
		return
	}
	if req.Reply() == "" {
		return
	}
	// Published directly rather than with req.Respond or req.Error: replies
	// leave from job goroutines, and micro's request is not safe to answer
	// from another goroutine once the handler has returned.
	msg := &nats.Msg{Subject: req.Reply(), Data: data}
	if reply.Error != nil {
		code := "500"
		switch reply.Error.Code {
		case bus.CodeBadRequest, bus.CodeUnknownAudio, bus.CodeBadAudio, bus.CodeUnknownStream:
			code = "400"
		case bus.CodeBusy, bus.CodeUnavailable:
			code = "503"
		}
		msg.Header = nats.Header{micro.ErrorHeader: {reply.Error.Message}, micro.ErrorCodeHeader: {code}}
	}
	if err := w.nc.PublishMsg(msg); err != nil {
		w.log.Warn("reply failed", "err", err)
	}
}

func (w *Worker) publishEvent(ev bus.Event) {
	data, err := json.Marshal(ev)
	if err == nil {
		err = w.nc.Publish(bus.StreamEvents(ev.StreamSid), data)
	}
	if err != nil {
		w.log.Warn("publish event failed", "event", ev.Event, "err", err)
	}
}

func isStop(err error) bool {
	return errors.Is(err, errStreamStopped) || errors.Is(err, errCleared) || errors.Is(err, errSuperseded) || errors.Is(err, errInterrupted) ||
		errors.Is(err, errNoEcho) || errors.Is(err, errStreamGone) || errors.Is(err, errEdgeGone) || errors.Is(err, context.Canceled)
}

// errorBody classifies err for producers.
func errorBody(err error, name string) *bus.Error {
	code := bus.CodeInternal
	switch {
	case errors.Is(err, library.ErrUnavailable):
		// Whether the audio exists is not known: worth trying again.
		code = bus.CodeUnavailable
	case errors.Is(err, library.ErrBadName), errors.Is(err, library.ErrNotFound), errors.Is(err, library.ErrNotAFile):
		code = bus.CodeUnknownAudio
	case errors.Is(err, library.ErrTooLarge), errors.Is(err, audio.ErrBadInput), errors.Is(err, audio.ErrUnsupported), errors.Is(err, audio.ErrTruncated):
		code = bus.CodeBadAudio
	}
	return &bus.Error{Code: code, Message: err.Error(), Audio: name}
}
