package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
)

// ListenOptions are the options of Listen. The zero value takes the edge's
// default lease and buffers 5 s of audio.
type ListenOptions struct {
	// Lease is the lease asked for; the edge may shorten it. The Listener
	// renews it at half its length until Close. Zero: the edge's default.
	Lease time.Duration
	// Buffer is how many chunks wait for Next; past that, chunks are
	// dropped and counted (Dropped). Zero: 256, 5 s of Twilio's 20 ms
	// messages.
	Buffer int
}

// Chunk is a piece of the caller's audio: G.711 μ-law, 8000 Hz mono, as
// Twilio sent it (160 bytes = 20 ms).
type Chunk struct {
	Seq         int64 // Twilio's chunk number of its first 20 ms frame
	TimestampMs int64 // Twilio's timestamp of its first frame: ms since the stream started
	Audio       []byte
}

// defaultLease is assumed when the edge names no lease length.
const defaultLease = 10 * time.Second

// Listener receives a call's caller audio for as long as it holds a lease,
// which it renews until Close.
type Listener struct {
	c     *Client
	sid   string
	audio *nats.Subscription
	stops *nats.Subscription
	ch    chan *nats.Msg

	lease   time.Duration
	ended   chan struct{} // the call ended
	endOnce sync.Once
	// life ends at Close, cancelling a renewal in flight (the one context
	// kept in a struct: the listener's lifetime).
	life      context.Context
	quit      context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Listen asks the edge holding the call of streamSid for its caller audio
// (a lease on callcast.stream.<sid>.in) and returns a Listener delivering
// it from then on. No edge holding the call is ErrUnknownStream.
func (c *Client) Listen(ctx context.Context, streamSid string, opts ListenOptions) (*Listener, error) {
	if err := bus.CheckStreamSid(streamSid); err != nil {
		return nil, fmt.Errorf("client: listen: %w: %w", ErrBadRequest, err)
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	l := &Listener{c: c, sid: streamSid, ch: make(chan *nats.Msg, opts.Buffer), ended: make(chan struct{})}
	var err error
	// Subscribed before the lease is asked for: no audio is lost between.
	if l.audio, err = c.nc.ChanSubscribe(bus.StreamIn(streamSid), l.ch); err != nil {
		return nil, opError("listen", err)
	}
	if l.stops, err = c.nc.Subscribe(bus.StreamEvents(streamSid), l.onEvent); err != nil {
		_ = l.audio.Unsubscribe()
		return nil, opError("listen", err)
	}
	lease, err := l.request(ctx, opts.Lease)
	if err != nil {
		l.unsubscribe()
		return nil, err
	}
	l.lease = lease
	l.life, l.quit = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.renew(opts.Lease)
	return l, nil
}

// request asks for a lease and returns its length.
func (l *Listener) request(ctx context.Context, asked time.Duration) (time.Duration, error) {
	data, err := json.Marshal(bus.ListenRequest{Type: bus.TypeListenRequest, LeaseMs: asked.Milliseconds()})
	if err != nil {
		return 0, fmt.Errorf("client: listen: %w", err)
	}
	msg, err := l.c.request(ctx, bus.StreamListen(l.sid), data)
	if errors.Is(err, nats.ErrNoResponders) {
		return 0, fmt.Errorf("client: listen: %w (%w)", ErrUnknownStream, err)
	}
	if err != nil {
		return 0, opError("listen", err)
	}
	return leaseOf(msg.Data, l.sid)
}

// leaseOf reads the edge's answer to a lease request on sid's audio: the
// lease's length, or the error it answered.
func leaseOf(data []byte, sid string) (time.Duration, error) {
	var reply bus.ListenReply
	if len(data) > bus.MaxMessageSize || json.Unmarshal(data, &reply) != nil || reply.Type != bus.TypeListenReply {
		return 0, fmt.Errorf("client: listen: %w: %.200q", ErrBadReply, data)
	}
	if reply.Error != nil {
		return 0, fmt.Errorf("client: listen: %w", replyError(reply.Error))
	}
	if want := bus.StreamIn(sid); reply.Subject != "" && reply.Subject != want {
		return 0, fmt.Errorf("client: listen: %w: subject %.80q, want %q", ErrBadReply, reply.Subject, want)
	}
	if reply.LeaseMs <= 0 {
		return defaultLease, nil
	}
	return time.Duration(min(reply.LeaseMs, maxLeaseMs)) * time.Millisecond, nil
}

// maxLeaseMs bounds a lease the client believes: an hour.
const maxLeaseMs = 3600_000

// renew renews the lease at half its length until Close or the call's end.
func (l *Listener) renew(asked time.Duration) {
	defer l.wg.Done()
	t := time.NewTimer(l.lease / 2)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-l.life.Done():
			return
		case <-l.ended:
			return
		}
		ctx, cancel := context.WithTimeout(l.life, min(l.lease/2, l.c.opts.Timeout))
		lease, err := l.request(ctx, asked)
		cancel()
		switch {
		case err == nil:
			l.lease = lease
		case errors.Is(err, ErrUnknownStream):
			l.end() // the call is gone
			return
		}
		// Any other failure: try again at the next half lease, which
		// comes sooner than the lease ends.
		t.Reset(l.lease / 2)
	}
}

func (l *Listener) onEvent(msg *nats.Msg) {
	if ev, err := bus.DecodeEvent(msg.Data); err == nil && ev.Event == bus.EventStop {
		l.end()
	}
}

func (l *Listener) end() { l.endOnce.Do(func() { close(l.ended) }) }

// Next returns the next chunk of caller audio. After the call's end and the
// chunks that came before it, it returns io.EOF; after Close, ErrClosed.
func (l *Listener) Next(ctx context.Context) (Chunk, error) {
	select {
	case <-l.life.Done():
		return Chunk{}, fmt.Errorf("client: listen: %w", ErrClosed)
	default:
	}
	select {
	case msg := <-l.ch:
		return chunkOf(msg), nil
	default:
	}
	select {
	case msg := <-l.ch:
		return chunkOf(msg), nil
	case <-l.ended:
		select {
		case msg := <-l.ch:
			return chunkOf(msg), nil
		default:
			return Chunk{}, io.EOF
		}
	case <-l.life.Done():
		return Chunk{}, fmt.Errorf("client: listen: %w", ErrClosed)
	case <-ctx.Done():
		return Chunk{}, opError("listen", ctx.Err())
	}
}

func chunkOf(msg *nats.Msg) Chunk {
	seq, _ := strconv.ParseInt(msg.Header.Get(bus.HeaderSeq), 10, 64)
	ts, _ := strconv.ParseInt(msg.Header.Get(bus.HeaderTimestamp), 10, 64)
	return Chunk{Seq: seq, TimestampMs: ts, Audio: msg.Data}
}

// Dropped returns how many chunks were dropped because Next fell behind.
func (l *Listener) Dropped() int {
	n, _ := l.audio.Dropped()
	return n
}

// Close stops renewing the lease (the edge stops publishing when it
// lapses) and stops delivering audio.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.quit()
		l.wg.Wait()
		l.unsubscribe()
	})
	return nil
}

func (l *Listener) unsubscribe() {
	_ = l.audio.Unsubscribe()
	_ = l.stops.Unsubscribe()
}
