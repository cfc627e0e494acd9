package edge

import (
	"time"

	"github.com/callcast/callcast/internal/bus"
)

// Barge-in. A playback may be interruptible (PlayRequest.Interruptible).
// When the caller starts speaking (the VAD's speech.started) while the
// playback they are hearing is interruptible, the edge
//
//   - stops it and every other interruptible playback whose audio is at
//     Twilio, with playback.interrupted, reason barge_in, and the heardMs
//     the caller heard;
//   - sends clear to Twilio;
//   - drops the interruptible playbacks queued behind it (barge_in too);
//   - keeps the non-interruptible ones queued, in order: the next plays at
//     once.
//
// Speech during a non-interruptible playback interrupts nothing, even if
// interruptible playbacks follow it; nor does speech while a producer's own
// media on .out (never interruptible) is at Twilio or waiting to go.
//
// Twilio's clear empties its whole buffer, so non-interruptible audio must
// never sit there behind interruptible audio: a non-interruptible playback
// does not start until the interruptible playbacks ahead of it have been
// played out (their last mark echoed). Its first audio then leaves the
// edge a few milliseconds after the interruptible audio ran out, instead
// of PLAYBACK_LEAD ahead: a gap that short between two playbacks is the
// price of never cutting a non-interruptible one.

// heldLocked reports whether the queued playback it must wait: it is not
// interruptible and interruptible audio is still at Twilio ahead of it.
func (c *controller) heldLocked(it *item) bool {
	if it.interruptible {
		return false
	}
	for _, d := range c.draining {
		if d.interruptible {
			return true
		}
	}
	return false
}

// atTwilioLocked lists the playbacks with audio at Twilio, in the order
// the caller hears them: the draining ones, one paused for producer media
// (at the head of the queue), the sending one.
func (c *controller) atTwilioLocked() []*item {
	at := append([]*item(nil), c.draining...)
	if len(c.queue) > 0 && c.queue[0].sent > c.queue[0].heard {
		at = append(at, c.queue[0])
	}
	if it := c.sending; it != nil && it.sent > it.heard {
		at = append(at, it)
	}
	return at
}

// bargeInLocked reports whether speech now interrupts: the caller hears an
// interruptible playback, and nothing at Twilio or on its way is a
// non-interruptible one that started already.
func (c *controller) bargeInLocked() bool {
	at := c.atTwilioLocked()
	if len(at) == 0 || c.implicit != nil {
		return false
	}
	for _, it := range at {
		if !it.interruptible {
			return false
		}
	}
	return true
}

// bargeIn runs on the reader's goroutine when the caller starts speaking.
func (ss *session) bargeIn() {
	c := ss.ctl
	if c == nil {
		return
	}
	c.sendMu.Lock() // the clear goes out before any more audio
	defer c.sendMu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if !c.bargeInLocked() {
		c.mu.Unlock()
		return
	}
	head := c.atTwilioLocked()[0]
	now := time.Now()
	var evs []bus.Event
	var stopped []*item
	// Everything at Twilio is interruptible: the clear takes it all, and
	// the sending one, interruptible or not started.
	for _, it := range append(append([]*item(nil), c.draining...), c.sending) {
		if it == nil {
			continue
		}
		it.heard = c.estimateHeard(it, now)
		evs = append(evs, c.event(bus.EventPlaybackInterrupted, it, bus.ReasonBargeIn))
		stopped = append(stopped, it)
	}
	keep := c.queue[:0]
	for _, it := range c.queue {
		if it.interruptible || it.sent > it.heard { // dropped, or at Twilio and cleared
			evs = append(evs, c.event(bus.EventPlaybackInterrupted, it, bus.ReasonBargeIn))
			stopped = append(stopped, it)
			c.ss.srv.metrics.queued.Dec()
			continue
		}
		keep = append(keep, it)
	}
	clear(c.queue[len(keep):])
	c.queue = keep
	c.draining, c.sending = nil, nil
	c.watchdog.Stop()
	next := c.advanceLocked()
	c.mu.Unlock()

	for _, it := range stopped {
		if it.src != nil {
			it.src.close()
		}
	}
	ss.sendClear()
	c.publish(evs)
	ss.srv.metrics.caller.bargeIns.Inc()
	ss.log.Debug("barge-in: the caller spoke over an interruptible playback", "playback", head.id, "heard_ms", bus.MsOf(head.heard), "stopped", len(stopped))
	c.dispatch(next)
}
