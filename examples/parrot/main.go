// Command parrot is a voice bot in a hundred lines: it listens to every
// call on a callcast bus and, each time the caller stops speaking, says
// back what they said. Its echo is interruptible, so speaking over it cuts
// it short (barge-in). It uses nothing but the bus, through the public
// client package:
//
//   - it finds calls by asking the edges for them (callcast.calls) every
//     quarter second, and takes a lease on each one's audio
//     (callcast.stream.<sid>.listen → callcast.stream.<sid>.in);
//   - it follows every call's events (callcast.stream.*.events) for
//     speech.stopped, whose atMs and durationMs say which audio was speech;
//   - it plays that audio back as a streamed μ-law playback with
//     "interruptible": true (callcast.play, callcast.playback.<id>.audio).
//
// With the all-in-one edge running (go run ./cmd/edge), run it with no
// flags and place a call that speaks:
//
//	go run ./examples/parrot
//	go run ./cmd/callsim -param audio=none -in internal/callsim/testdata/hello.wav -in-at 2s -o echo.wav
//
// -nats (env NATS_URL) points it at another bus.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/client"
)

type config struct {
	natsURL string
	// poll is how often the edges are asked for their calls.
	poll time.Duration
	// pad is the audio kept before the speech's start and after its end.
	pad time.Duration
	// keep is how much of each caller's audio is held for echoing.
	keep time.Duration
}

func main() {
	cfg := config{poll: 250 * time.Millisecond, pad: 100 * time.Millisecond, keep: 30 * time.Second}
	def := os.Getenv("NATS_URL")
	if def == "" {
		def = nats.DefaultURL
	}
	flag.StringVar(&cfg.natsURL, "nats", def, "NATS URL of the callcast bus (env NATS_URL)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "parrot:", err)
		os.Exit(1)
	}
}

// run parrots every call until ctx ends.
func run(ctx context.Context, cfg config, log *slog.Logger) error {
	nc, err := nats.Connect(cfg.natsURL, nats.Name("callcast-parrot"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		return err
	}
	defer nc.Close()
	p := &parrot{c: client.New(nc, client.Options{}), cfg: cfg, log: log, calls: map[string]*call{}}
	events, err := p.c.Events(ctx, "") // every call's
	if err != nil {
		return err
	}
	defer events.Close()
	log.Info("parrot listening", "nats", cfg.natsURL)

	var wg sync.WaitGroup
	wg.Go(func() { p.discover(ctx) })
	for {
		ev, err := events.Next(ctx)
		if err != nil {
			break // ctx ended
		}
		switch ev.Kind {
		case client.EventSpeechStopped:
			if c := p.track(ctx, ev.StreamSid); c != nil {
				wg.Go(func() { p.echo(ctx, c, *ev.Speech) })
			}
		case client.EventStop:
			p.untrack(ev.StreamSid)
		}
	}
	wg.Wait()
	p.mu.Lock()
	for sid := range p.calls {
		p.closeLocked(sid)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

type parrot struct {
	c   *client.Client
	cfg config
	log *slog.Logger

	mu    sync.Mutex
	calls map[string]*call
	wg    sync.WaitGroup // the calls' readers
}

// call is one call's recent audio.
type call struct {
	sid string
	l   *client.Listener

	mu     sync.Mutex
	chunks []client.Chunk // oldest first, the last cfg.keep of it
	echoes int
}

// discover asks the edges for their calls until ctx ends.
func (p *parrot) discover(ctx context.Context) {
	t := time.NewTicker(p.cfg.poll)
	defer t.Stop()
	for {
		if calls, err := p.c.Calls(ctx); err == nil {
			for _, c := range calls {
				p.track(ctx, c.StreamSid)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// track starts listening to a call, once; it returns the call, or nil if
// it cannot be heard.
func (p *parrot) track(ctx context.Context, sid string) *call {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.calls[sid]; ok {
		return c
	}
	l, err := p.c.Listen(ctx, sid, client.ListenOptions{})
	if err != nil {
		if !errors.Is(err, client.ErrUnknownStream) && ctx.Err() == nil {
			p.log.Warn("cannot listen to the call", "stream_sid", sid, "err", err)
		}
		return nil
	}
	c := &call{sid: sid, l: l}
	p.calls[sid] = c
	p.log.Info("listening", "stream_sid", sid)
	p.wg.Go(func() { p.read(c) })
	return c
}

// read keeps the call's audio of the last cfg.keep.
func (p *parrot) read(c *call) {
	for {
		ch, err := c.l.Next(context.Background())
		if err != nil {
			return // the call ended (io.EOF) or the listener closed
		}
		c.mu.Lock()
		c.chunks = append(c.chunks, ch)
		cut := 0
		for cut < len(c.chunks) && c.chunks[cut].TimestampMs < ch.TimestampMs-p.cfg.keep.Milliseconds() {
			cut++
		}
		c.chunks = c.chunks[cut:]
		c.mu.Unlock()
	}
}

func (p *parrot) untrack(sid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked(sid)
}

func (p *parrot) closeLocked(sid string) {
	if c, ok := p.calls[sid]; ok {
		delete(p.calls, sid)
		_ = c.l.Close()
	}
}

// between returns the call's audio from stream time from to to, in ms,
// each chunk where its timestamp puts it: a frame lost on the way is
// heard as 20 ms of silence, not as the rest arriving early.
func (c *call) between(from, to int64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]byte, (to-from)*8)
	for i := range out {
		out[i] = 0xFF // μ-law silence
	}
	last := 0
	for _, ch := range c.chunks {
		start, end := ch.TimestampMs, ch.TimestampMs+int64(len(ch.Audio))/8
		if end <= from || start >= to {
			continue
		}
		a := ch.Audio[max(0, (from-start)*8):min(int64(len(ch.Audio)), (to-start)*8)]
		off := max(0, (start-from)*8)
		last = max(last, copy(out[off:], a)+int(off))
	}
	return out[:last]
}

// echo says back the speech that speech.stopped describes.
func (p *parrot) echo(ctx context.Context, c *call, sp client.Speech) {
	pad := p.cfg.pad.Milliseconds()
	said := c.between(sp.AtMs-sp.DurationMs-pad, sp.AtMs+pad)
	if len(said) == 0 {
		return // it started before the lease
	}
	c.mu.Lock()
	c.echoes++
	id := fmt.Sprintf("parrot-%d", c.echoes)
	c.mu.Unlock()
	w, err := p.c.Stream(ctx, c.sid, client.Mulaw, client.PlayOptions{ID: id, Interruptible: true})
	if err == nil {
		_, err = w.Write(said)
		err = errors.Join(err, w.Close())
	}
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("echo failed", "stream_sid", c.sid, "err", err)
		}
		return
	}
	p.log.Info("echoing", "stream_sid", c.sid, "playback", w.Playback().ID, "ms", len(said)/8)
}
