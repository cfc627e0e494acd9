package worker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/twilio"
)

const bytesPerMs = audio.SampleRate / 1000 // μ-law bytes per millisecond

// While a playback decodes its way to the offset an earlier attempt reached,
// it marks that offset every heartbeat, so that the edge does not take the
// silence for a dead worker (it moves a playback after its RenderTimeout).
const (
	heartbeat = 100 * time.Millisecond
	skipChunk = 1600 // bytes decoded between checks: 200 ms of audio
)

// Reasons a playback stops early.
var (
	errNoEcho        = errors.New("worker: Twilio stopped echoing marks: the call or its edge is gone")
	errStreamGone    = errors.New("worker: no edge holds the stream any more")
	errStreamStopped = errors.New("worker: stream stopped")
	errCleared       = errors.New("worker: cleared")
	errInterrupted   = errors.New("worker: playback interrupted")
	errSuperseded    = errors.New("worker: the edge moved the playback on")
)

// playback sends one audio source to one stream from offset on, paced by
// Twilio's mark echoes so that no more than lead is buffered at Twilio.
type playback struct {
	nc      *nats.Conn
	log     *slog.Logger
	id      string
	attempt int
	sid     string
	audio   string
	// duration is the audio's length in ms, told the edge on the first
	// media message (bus.HeaderDuration).
	duration int64
	src      io.Reader
	offset   int64 // bytes of the audio already played by an earlier attempt
	backlog  int64 // bytes of earlier playbacks buffered at Twilio ahead of this one, at the start

	lead      int64 // bytes that may be buffered at Twilio
	markEvery int64 // bytes between progress marks
	chunk     int   // bytes per media message, a multiple of audio.FrameSize
	grace     time.Duration

	aheadMu sync.Mutex
	ahead   []bus.Ahead // earlier playbacks still buffered, heard moved on by their marks

	heard    atomic.Int64  // offset confirmed played by mark echoes
	lastEcho atomic.Int64  // unix nanoseconds of the last echo of this or an earlier playback's mark
	silence  time.Duration // no echo for this long while audio is unheard: the call is gone
	reply    string        // reply subject of its frames: NATS answers 503 there when no edge holds the stream
	lastPub  time.Time     // when it last published on the stream
	// pingEvery is how long it may go without publishing before it asks
	// NATS whether an edge still holds the stream.
	pingEvery time.Duration
	notify    chan struct{} // poked when heard changes or the playback must stop
	stopMu    sync.Mutex
	stopErr   error
	stoppedAt time.Time // when the edge told it to stop (errSuperseded)
}

// observe handles the stream's events: mark echoes move heard forward;
// stop, clear, or the end of this playback stop it.
func (p *playback) observe(msg *nats.Msg) {
	ev, err := bus.DecodeEvent(msg.Data)
	if err != nil {
		return
	}
	switch ev.Event {
	case bus.EventMark:
		if ev.Mark == nil {
			return
		}
		id, off, _, ok := bus.ParsePlaybackMark(ev.Mark.Name)
		if !ok {
			return
		}
		p.lastEcho.Store(time.Now().UnixNano())
		if id != p.id {
			p.aheadMu.Lock()
			for i := range p.ahead {
				if p.ahead[i].PlaybackID == id && off > p.ahead[i].Heard {
					p.ahead[i].Heard = off
				}
			}
			p.aheadMu.Unlock()
			break
		}
		for {
			cur := p.heard.Load()
			if off <= cur || p.heard.CompareAndSwap(cur, off) {
				break
			}
		}
	case bus.EventStop:
		p.stop(errStreamStopped)
	case bus.EventClear:
		p.stop(errCleared)
	case bus.EventPlaybackInterrupted, bus.EventPlaybackFailed:
		if ev.Playback == nil || ev.Playback.ID != p.id {
			return
		}
		p.stop(errInterrupted)
	default:
		return
	}
	p.wake()
}

// wake pokes the playback's loop to look at its state.
func (p *playback) wake() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *playback) stop(err error) {
	p.stopMu.Lock()
	if p.stopErr == nil {
		p.stopErr = err
		if err == errSuperseded {
			p.stoppedAt = time.Now()
		}
	}
	p.stopMu.Unlock()
}

func (p *playback) stopped() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	return p.stopErr
}

// run sends the audio, then the playback's last mark. It returns the bytes
// sent (counting from the start of the audio) and why it stopped early, if
// it did.
func (p *playback) run(ctx context.Context) (int64, error) {
	sub, err := p.nc.Subscribe(bus.StreamEvents(p.sid), p.observe)
	if err != nil {
		return p.offset, fmt.Errorf("worker: subscribe events: %w", err)
	}
	defer sub.Unsubscribe()
	p.lastEcho.Store(time.Now().UnixNano())

	msg := &nats.Msg{Subject: bus.StreamOut(p.sid), Reply: p.reply, Header: nats.Header{}}
	msg.Header.Set(bus.HeaderPlayback, bus.PlaybackHeader(p.id, p.attempt))
	p.lastPub = time.Now()
	if p.offset > 0 {
		if err := p.skip(ctx, msg); err != nil {
			return p.offset, err
		}
		p.lastEcho.Store(time.Now().UnixNano()) // the skip was our time, not Twilio's silence
	}
	frame := make([]byte, p.chunk)
	buf := make([]byte, 0, 64+base64.StdEncoding.EncodedLen(p.chunk))
	sent, lastMark := p.offset, p.offset
	var t0 time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	var srcErr error
	for {
		if err := p.pace(ctx, sent, t0, timer); err != nil {
			return sent, err
		}
		n, rerr := io.ReadFull(p.src, frame)
		if err := p.stopped(); err != nil {
			return sent, err // stopped while decoding: send nothing more
		}
		if n > 0 {
			if t0.IsZero() {
				t0 = time.Now()
			}
			buf = append(buf[:0], `{"event":"media","media":{"payload":"`...)
			buf = base64.StdEncoding.AppendEncode(buf, frame[:n])
			buf = append(buf, `"}}`...)
			msg.Data = buf
			first := sent == p.offset && p.duration > 0
			if first {
				msg.Header.Set(bus.HeaderDuration, strconv.FormatInt(p.duration, 10))
			}
			err := p.nc.PublishMsg(msg)
			if first {
				msg.Header.Del(bus.HeaderDuration)
			}
			if err != nil {
				return sent, fmt.Errorf("worker: publish: %w", err)
			}
			p.lastPub = time.Now()
			sent += int64(n)
			if sent-lastMark >= p.markEvery {
				if err := p.mark(msg, sent, false, ""); err != nil {
					return sent, err
				}
				lastMark = sent
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			srcErr = rerr
			break
		}
	}
	if sent == 0 {
		if srcErr == nil {
			srcErr = fmt.Errorf("%w: no audio in %q", audio.ErrBadInput, p.audio)
		}
		return 0, srcErr
	}
	detail := ""
	if srcErr != nil {
		p.log.Warn("audio ended early; played what was decodable", "err", srcErr)
		detail = srcErr.Error()
	}
	return sent, p.mark(msg, sent, true, detail)
}

// skip decodes and discards the audio up to offset, marking offset every
// heartbeat, and stops early if the playback is stopped.
func (p *playback) skip(ctx context.Context, msg *nats.Msg) error {
	last := time.Now()
	for left := p.offset; left > 0; {
		if err := p.stopped(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.CopyN(io.Discard, p.src, min(left, skipChunk))
		left -= n
		if err != nil {
			return fmt.Errorf("worker: skip to offset %d: %w", p.offset, err)
		}
		if left > 0 && time.Since(last) >= heartbeat {
			if err := p.mark(msg, p.offset, false, ""); err != nil {
				return err
			}
			last = time.Now()
		}
	}
	return nil
}

// pace waits while the lead is used up: until Twilio has played enough of
// what was sent, by its marks or, when they lag by more than grace, by the
// wall clock.
func (p *playback) pace(ctx context.Context, sent int64, t0 time.Time, timer *time.Timer) error {
	for {
		if err := p.stopped(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		// Audio is waiting to be heard but no mark has come back for long:
		// nobody is listening any more (the wall clock alone would keep
		// sending into the void).
		if sent > p.heard.Load() && now.Sub(time.Unix(0, p.lastEcho.Load())) > p.silence {
			return errNoEcho
		}
		if p.buffered(sent, t0, now) < p.lead {
			return nil
		}
		// Quiet for a ping interval: ask NATS whether an edge still holds
		// the stream (see bus.HeaderPing).
		if p.reply != "" && now.Sub(p.lastPub) >= p.pingEvery {
			if err := p.ping(); err != nil {
				return err
			}
		}
		// When the wall clock alone would let the next chunk go, or the
		// next ping is due.
		wait := t0.Add(p.grace + time.Duration(p.backlog+sent-p.offset-p.lead+int64(p.chunk))*time.Millisecond/bytesPerMs).Sub(now)
		if p.reply != "" {
			wait = min(wait, p.lastPub.Add(p.pingEvery).Sub(now))
		}
		timer.Reset(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
		case <-p.notify:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// buffered estimates the audio queued at Twilio: by the marks, what the
// playbacks ahead and this one sent beyond what was heard; by the wall
// clock, everything sent since t0 less the time since (minus grace). The
// smaller wins: marks that lag only ever hold sending back by grace.
func (p *playback) buffered(sent int64, t0, now time.Time) int64 {
	byMarks := sent - p.heard.Load()
	p.aheadMu.Lock()
	for _, a := range p.ahead {
		byMarks += max(0, a.End-a.Heard)
	}
	p.aheadMu.Unlock()
	if t0.IsZero() {
		return byMarks
	}
	played := (int64(now.Sub(t0)) - int64(p.grace)) * bytesPerMs / int64(time.Millisecond)
	byWall := p.backlog + sent - p.offset - max(0, played)
	return min(byMarks, byWall)
}

// streamPingEvery replaces pingEvery for a playback whose edge is watched
// (see edgeWatch): the pings then only back up the stream's stop event, and
// steady playback, which publishes every 200 ms, sends none.
const streamPingEvery = time.Second

// pingEvery is how often a playback with nothing to send checks that an
// edge still holds its stream.
const pingEvery = 75 * time.Millisecond

// ping publishes an empty HeaderPing message on the stream with the
// playback's reply subject.
func (p *playback) ping() error {
	m := &nats.Msg{Subject: bus.StreamOut(p.sid), Reply: p.reply, Header: nats.Header{}}
	m.Header.Set(bus.HeaderPing, "1")
	if err := p.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("worker: publish ping: %w", err)
	}
	p.lastPub = time.Now()
	return nil
}

func (p *playback) mark(msg *nats.Msg, off int64, last bool, detail string) error {
	data, err := json.Marshal(bus.OutMessage{Event: twilio.EventMark, Mark: &twilio.Mark{Name: bus.PlaybackMark(p.id, off, last)}})
	if err != nil {
		return err
	}
	m := &nats.Msg{Subject: msg.Subject, Reply: msg.Reply, Header: msg.Header, Data: data}
	if detail != "" {
		m.Header = nats.Header{}
		m.Header.Set(bus.HeaderPlayback, msg.Header.Get(bus.HeaderPlayback))
		m.Header.Set(bus.HeaderError, strings.Join(strings.Fields(detail), " "))
	}
	if err := p.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("worker: publish mark: %w", err)
	}
	return nil
}
