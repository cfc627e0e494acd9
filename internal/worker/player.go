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

// markPrefix starts the name of every mark a playback sends:
// "cc:<playbackID>:<offset>", offset being the bytes of audio sent before it.
const markPrefix = "cc:"

// Reasons a playback stops early.
var (
	errStreamStopped = errors.New("worker: stream stopped")
	errCleared       = errors.New("worker: cleared")
	errNoMarkEcho    = errors.New("worker: last mark never echoed")
)

// playback sends one audio source to one stream, paced by Twilio's mark
// echoes so that no more than lead is ever buffered at Twilio.
type playback struct {
	nc    *nats.Conn
	log   *slog.Logger
	id    string
	reqID string
	sid   string
	audio string
	src   io.Reader
	info  audio.Info

	lead      int64 // bytes that may be sent ahead of what was heard
	markEvery int64 // bytes between progress marks
	grace     time.Duration

	heard   atomic.Int64  // bytes confirmed played by mark echoes
	notify  chan struct{} // poked when heard changes or the stream stops
	stopMu  sync.Mutex
	stopErr error
}

// observe handles the stream's events: mark echoes move heard forward, stop
// and clear end the playback.
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
		off, ok := p.markOffset(ev.Mark.Name)
		if !ok {
			return
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
	default:
		return
	}
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *playback) markName(off int64) string {
	return markPrefix + p.id + ":" + strconv.FormatInt(off, 10)
}

func (p *playback) markOffset(name string) (int64, bool) {
	rest, ok := strings.CutPrefix(name, markPrefix+p.id+":")
	if !ok {
		return 0, false
	}
	off, err := strconv.ParseInt(rest, 10, 64)
	return off, err == nil && off >= 0
}

func (p *playback) stop(err error) {
	p.stopMu.Lock()
	if p.stopErr == nil {
		p.stopErr = err
	}
	p.stopMu.Unlock()
}

func (p *playback) stopped() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	return p.stopErr
}

// result is how a playback ended.
type result struct {
	sent, heard int64 // bytes
	err         error // nil: played to the end and confirmed by Twilio
}

// run sends the audio and waits for the echo of its last mark.
func (p *playback) run(ctx context.Context) result {
	sub, err := p.nc.Subscribe(bus.StreamEvents(p.sid), p.observe)
	if err != nil {
		return result{err: fmt.Errorf("worker: subscribe events: %w", err)}
	}
	defer sub.Unsubscribe()

	out := bus.StreamOut(p.sid)
	frame := make([]byte, audio.FrameSize)
	msg := make([]byte, 0, 64+base64.StdEncoding.EncodedLen(audio.FrameSize))
	var sent, lastMark int64
	var t0 time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	for {
		// Pace: wait while the lead is used up.
		for {
			if err := p.stopped(); err != nil {
				return result{sent: sent, heard: p.heard.Load(), err: err}
			}
			if err := ctx.Err(); err != nil {
				return result{sent: sent, heard: p.heard.Load(), err: err}
			}
			heard := p.heardAt(t0, time.Now())
			if sent-heard < p.lead {
				break
			}
			// Wall clock fallback: when marks lag by more than grace, assume
			// Twilio plays in real time.
			wait := t0.Add(p.grace + time.Duration(sent-p.lead+audio.FrameSize)*time.Millisecond/bytesPerMs).Sub(time.Now())
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

		n, rerr := io.ReadFull(p.src, frame)
		if n > 0 {
			if t0.IsZero() {
				t0 = time.Now()
				p.event(bus.EventPlaybackStarted, sent, 0, "", nil)
			}
			msg = append(msg[:0], `{"event":"media","media":{"payload":"`...)
			msg = base64.StdEncoding.AppendEncode(msg, frame[:n])
			msg = append(msg, `"}}`...)
			if err := p.nc.Publish(out, msg); err != nil {
				return result{sent: sent, heard: p.heard.Load(), err: fmt.Errorf("worker: publish: %w", err)}
			}
			sent += int64(n)
			if sent-lastMark >= p.markEvery {
				if err := p.mark(out, sent); err != nil {
					return result{sent: sent, heard: p.heard.Load(), err: err}
				}
				lastMark = sent
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if errors.Is(rerr, audio.ErrTruncated) {
			p.log.Warn("audio truncated; played what was decodable", "err", rerr)
			break
		}
		if rerr != nil {
			return result{sent: sent, heard: p.heard.Load(), err: rerr}
		}
	}
	if sent == 0 {
		return result{err: fmt.Errorf("%w: no audio in %q", audio.ErrBadInput, p.audio)}
	}
	if lastMark != sent {
		if err := p.mark(out, sent); err != nil {
			return result{sent: sent, heard: p.heard.Load(), err: err}
		}
	}
	return p.awaitEnd(ctx, sent, t0)
}

// awaitEnd waits for Twilio to confirm the last byte was played.
func (p *playback) awaitEnd(ctx context.Context, sent int64, t0 time.Time) result {
	// The buffered remainder plus a generous margin for a slow network.
	deadline := t0.Add(time.Duration(sent)*time.Millisecond/bytesPerMs + p.grace + 10*time.Second)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		heard := p.heard.Load()
		if heard >= sent {
			return result{sent: sent, heard: heard}
		}
		if err := p.stopped(); err != nil {
			return result{sent: sent, heard: heard, err: err}
		}
		select {
		case <-ctx.Done():
			return result{sent: sent, heard: heard, err: ctx.Err()}
		case <-timer.C:
			return result{sent: sent, heard: heard, err: errNoMarkEcho}
		case <-p.notify:
		}
	}
}

// heardAt is how much audio the caller has heard by now: what the marks
// confirm, or, when they lag by more than grace, what real-time playback
// since the first frame would have played.
func (p *playback) heardAt(t0, now time.Time) int64 {
	heard := p.heard.Load()
	if t0.IsZero() {
		return heard
	}
	if wall := int64(now.Sub(t0)-p.grace) * bytesPerMs / int64(time.Millisecond); wall > heard {
		return wall
	}
	return heard
}

func (p *playback) mark(subject string, off int64) error {
	data, err := json.Marshal(bus.OutMessage{Event: "mark", Mark: &twilio.Mark{Name: p.markName(off)}})
	if err != nil {
		return err
	}
	if err := p.nc.Publish(subject, data); err != nil {
		return fmt.Errorf("worker: publish mark: %w", err)
	}
	return nil
}

// event publishes a playback lifecycle event on the stream's events subject.
func (p *playback) event(kind string, sent, heard int64, reason string, e *bus.Error) {
	ev := bus.NewEvent(p.sid, kind)
	ev.Playback = &bus.Playback{
		ID:         p.id,
		RequestID:  p.reqID,
		Audio:      p.audio,
		DurationMs: p.info.Duration.Milliseconds(),
		SentMs:     sent / bytesPerMs,
		HeardMs:    heard / bytesPerMs,
		Reason:     reason,
	}
	ev.Error = e
	data, err := json.Marshal(ev)
	if err == nil {
		err = p.nc.Publish(bus.StreamEvents(p.sid), data)
	}
	if err != nil {
		p.log.Warn("publish playback event failed", "event", kind, "err", err)
	}
}
