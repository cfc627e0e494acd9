// Package worker plays audio into live calls: it takes stream starts from the
// bus (queue group callcast-workers), opens the requested file in the audio
// directory, transcodes it to G.711 μ-law 8 kHz mono with package audio, and
// publishes 20 ms media frames on the stream's out subject, paced by Twilio's
// mark echoes so that only a short lead is ever buffered at Twilio.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
)

// ServiceName is the worker's NATS micro service name ($SRV.PING.callcast-worker).
const ServiceName = "callcast-worker"

// Version is reported in the service's $SRV.INFO.
const Version = "0.1.0"

// Config configures a Worker. Zero values mean the documented defaults.
type Config struct {
	// AudioDir holds the playable files. Default "./audio".
	AudioDir string
	// DefaultAudio is played when a start names no audio. Default "sample.mp3".
	DefaultAudio string
	// Concurrency caps simultaneous playbacks. Default 1000.
	Concurrency int
	// Lead is how far sending may run ahead of what the caller has heard.
	// Default 1.5 s.
	Lead time.Duration
	// MarkEvery is the audio between progress marks. Default 200 ms.
	MarkEvery time.Duration
	// MarkGrace is how long mark echoes may lag real time before pacing
	// falls back to the wall clock. Default 500 ms.
	MarkGrace time.Duration
	// MaxFileSize refuses larger audio files. Default 100 MiB.
	MaxFileSize int64
	// ID names this worker in logs and service info. Default: a random ID.
	ID string
	// Logger receives the worker's logs. Nil discards them.
	Logger *slog.Logger
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
		c.Lead = 1500 * time.Millisecond
	}
	if c.MarkEvery <= 0 {
		c.MarkEvery = 200 * time.Millisecond
	}
	if c.MarkGrace <= 0 {
		c.MarkGrace = 500 * time.Millisecond
	}
	if c.MaxFileSize <= 0 {
		c.MaxFileSize = 100 << 20
	}
	if c.ID == "" {
		c.ID = nuid.Next()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Worker serves the bus. Create it with New, start with Start, stop with
// Shutdown.
type Worker struct {
	cfg Config
	nc  *nats.Conn
	log *slog.Logger
	lib *library
	svc micro.Service

	slots chan struct{}
	ctx   context.Context // cancelled when Shutdown gives up waiting
	kill  context.CancelFunc
	jobs  sync.WaitGroup
}

// New returns a worker using nc. It fails if the audio directory cannot be
// opened.
func New(nc *nats.Conn, cfg Config) (*Worker, error) {
	cfg.setDefaults()
	lib, err := openLibrary(cfg.AudioDir, cfg.MaxFileSize)
	if err != nil {
		return nil, err
	}
	ctx, kill := context.WithCancel(context.Background())
	return &Worker{
		cfg:   cfg,
		nc:    nc,
		log:   cfg.Logger.With("worker", cfg.ID),
		lib:   lib,
		slots: make(chan struct{}, cfg.Concurrency),
		ctx:   ctx,
		kill:  kill,
	}, nil
}

// Start subscribes the worker to the bus in the callcast-workers queue group.
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
	if err := svc.AddEndpoint("stream-started", micro.HandlerFunc(w.onStreamStarted),
		micro.WithEndpointSubject(bus.SubjectStreamStarted)); err != nil {
		_ = svc.Stop()
		return fmt.Errorf("worker: add endpoint: %w", err)
	}
	w.svc = svc
	w.log.Info("worker started", "audio_dir", w.cfg.AudioDir, "default_audio", w.cfg.DefaultAudio, "concurrency", w.cfg.Concurrency)
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
	return errors.Join(err, w.lib.Close())
}

// Active returns the number of playbacks in flight.
func (w *Worker) Active() int { return len(w.slots) }

func (w *Worker) onStreamStarted(req micro.Request) {
	st, err := bus.DecodeStreamStarted(req.Data())
	if err != nil {
		w.log.Warn("ignoring invalid stream start", "err", err)
		return
	}
	name := st.CustomParameters["audio"]
	if name == "" {
		name = w.cfg.DefaultAudio
	}
	w.play(st.StreamSid, st.CallSid, name, "")
}

// play starts a playback in its own goroutine, owned by w.jobs.
func (w *Worker) play(sid, callSid, name, reqID string) {
	log := w.log.With("stream_sid", sid, "call_sid", callSid, "audio", name)
	p := &playback{
		nc:        w.nc,
		log:       log,
		id:        nuid.Next(),
		reqID:     reqID,
		sid:       sid,
		audio:     name,
		lead:      int64(w.cfg.Lead / time.Millisecond * bytesPerMs),
		markEvery: int64(w.cfg.MarkEvery / time.Millisecond * bytesPerMs),
		grace:     w.cfg.MarkGrace,
		notify:    make(chan struct{}, 1),
	}
	select {
	case w.slots <- struct{}{}:
	default:
		log.Error("worker at capacity; playback refused", "concurrency", w.cfg.Concurrency)
		p.event(bus.EventPlaybackFailed, 0, 0, "", &bus.Error{Code: bus.CodeBusy, Message: "all workers busy", Audio: name})
		return
	}
	w.jobs.Add(1)
	go func() {
		defer w.jobs.Done()
		defer func() { <-w.slots }()
		w.runPlayback(p)
	}()
}

func (w *Worker) runPlayback(p *playback) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic in playback", "panic", r)
			p.event(bus.EventPlaybackFailed, 0, 0, "", &bus.Error{Code: bus.CodeInternal, Message: fmt.Sprint("internal error: ", r), Audio: p.audio})
		}
	}()
	f, err := w.lib.Open(p.audio)
	if err != nil {
		w.fail(p, err)
		return
	}
	defer f.Close()
	tr, err := audio.NewTranscoder(f, audio.Options{})
	if err != nil {
		w.fail(p, err)
		return
	}
	p.src, p.info = tr, tr.Info()
	start := time.Now()
	res := p.run(w.ctx)
	elapsed := time.Since(start).Round(time.Millisecond)
	switch {
	case res.err == nil:
		p.log.Info("playback finished", "playback", p.id, "sent_ms", res.sent/bytesPerMs, "took", elapsed)
		p.event(bus.EventPlaybackFinished, res.sent, res.heard, "", nil)
	case res.sent == 0 && !isStop(res.err):
		w.fail(p, res.err)
	case isStop(res.err):
		reason := stopReason(res.err)
		p.log.Info("playback interrupted", "playback", p.id, "reason", reason, "sent_ms", res.sent/bytesPerMs, "heard_ms", res.heard/bytesPerMs)
		p.event(bus.EventPlaybackInterrupted, res.sent, res.heard, reason, nil)
	default:
		p.log.Error("playback failed", "playback", p.id, "err", res.err, "sent_ms", res.sent/bytesPerMs)
		p.event(bus.EventPlaybackFailed, res.sent, res.heard, "", errorBody(res.err, p.audio))
	}
}

func isStop(err error) bool {
	return errors.Is(err, errStreamStopped) || errors.Is(err, errCleared) || errors.Is(err, context.Canceled)
}

func stopReason(err error) string {
	switch {
	case errors.Is(err, errStreamStopped):
		return "stop"
	case errors.Is(err, errCleared):
		return "clear"
	default:
		return "shutdown"
	}
}

func (w *Worker) fail(p *playback, err error) {
	p.log.Error("playback failed", "err", err)
	p.event(bus.EventPlaybackFailed, 0, 0, "", errorBody(err, p.audio))
}

// errorBody classifies err for producers.
func errorBody(err error, name string) *bus.Error {
	code := bus.CodeInternal
	switch {
	case errors.Is(err, ErrBadName), errors.Is(err, ErrNotFound), errors.Is(err, ErrNotAFile):
		code = bus.CodeUnknownAudio
	case errors.Is(err, ErrTooLarge), errors.Is(err, audio.ErrBadInput), errors.Is(err, audio.ErrUnsupported), errors.Is(err, audio.ErrTruncated):
		code = bus.CodeBadAudio
	case errors.Is(err, errNoMarkEcho):
		code = bus.CodeNoMarkEcho
	}
	return &bus.Error{Code: code, Message: err.Error(), Audio: name}
}
