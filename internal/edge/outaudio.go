package edge

import (
	"encoding/base64"
	"time"

	"github.com/nats-io/nuid"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/twilio"
)

// Producer media on .out. μ-law a producer publishes on bus.StreamOut(sid)
// without a Callcast-Playback header is a playback of its own on the call's
// timeline, played by the edge like a streamed playback: an implicit one,
// with an ID of the edge's ("out-…") and events like any other. It goes
// before everything queued: the playback being sent pauses where it is
// (its worker told to stop), the producer's audio plays after what Twilio
// already holds, and the paused playback resumes from the byte it reached
// once the producer's audio is over (no .out media for outQuiet and all of
// it sent). The producer's marks go out after the audio published before
// them.

// outQuiet is how long .out may go without media before the producer's
// audio counts as over.
const outQuiet = 100 * time.Millisecond

var mulawFormat = bus.StreamFormat{Format: bus.FormatMulaw}

// onOutMedia takes producer media (payload: padded standard base64 of
// μ-law, already checked). The caller holds sendMu.
func (c *controller) onOutMedia(payload string) {
	var stop struct{ reply, hdr string }
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	it := c.implicit
	if it == nil {
		it = &item{id: "out-" + nuid.Next(), stream: &mulawFormat, end: -1}
		it.src = newStreamSource(mulawFormat, 0, c.wake)
		it.src.account(&c.ss.srv.metrics.streamHeld, c.ss.srv.cfg.StreamBufferBytes)
		it.src.implicit = true
		c.implicit = it
		if cur := c.sending; cur != nil {
			stop.reply, stop.hdr = c.pauseLocked(cur)
		}
		c.sending = it
		it.lastActivity = time.Now()
	}
	s := it.src
	s.mu.Lock()
	n := len(s.scratch)
	s.scratch = append(s.scratch, make([]byte, base64.StdEncoding.DecodedLen(len(payload)))...)
	k, err := base64.StdEncoding.Decode(s.scratch[n:], []byte(payload))
	if err == nil && k > 0 {
		s.input(s.scratch[n : n+k])
		s.in += int64(k)
	}
	s.scratch = s.scratch[:0]
	s.lastIn = time.Now()
	s.mu.Unlock()
	c.mu.Unlock()
	c.tellStop(stop.reply, stop.hdr)
	c.wake()
}

// onOutMark takes a producer's mark. While its audio waits at the edge,
// the mark waits with it and goes out after the audio published before
// it; otherwise it is relayed at once. It reports whether it was kept.
// The caller holds sendMu.
func (c *controller) onOutMark(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	it := c.implicit
	if it == nil || c.closed {
		return false
	}
	s := it.src
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.in == it.sent && len(s.marks) == 0 {
		return false // nothing of its audio waits here
	}
	s.marks = append(s.marks, outMark{off: s.in, name: name})
	return true
}

// outMarksLocked takes the producer's marks still waiting for their audio,
// which a clear drops: they go out right after the clear, so that Twilio
// echoes them as it would have had they gone out with their audio.
func (c *controller) outMarksLocked() []string {
	it := c.implicit
	if it == nil {
		return nil
	}
	s := it.src
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, m := range s.marks {
		names = append(names, m.name)
	}
	s.marks = nil
	return names
}

// sendMarks queues producer marks for Twilio. The caller holds sendMu.
func (c *controller) sendMarks(names []string) {
	for _, name := range names {
		bp := bufPool.Get().(*[]byte)
		*bp = twilio.AppendMark((*bp)[:0], c.ss.sid, name)
		if c.ss.enqueue(bp) {
			c.ss.srv.metrics.relayedMark.Inc()
		}
	}
}

// pauseLocked takes the sending playback back to the head of the queue,
// to resume from the byte it reached. A worker's attempt is superseded:
// it returns where to tell that worker to stop, if known yet.
func (c *controller) pauseLocked(it *item) (reply, hdr string) {
	c.sending = nil
	c.queue = append([]*item{it}, c.queue...)
	c.ss.srv.metrics.queued.Inc()
	c.ss.srv.metrics.paused.Inc()
	if it.edgePlayed() {
		return "", ""
	}
	c.watchdog.Stop()
	reply, hdr = it.reply, bus.PlaybackHeader(it.id, it.attempt)
	it.attempt++
	it.reply = ""
	c.ss.log.Info("producer audio on .out: playback paused", "playback", it.id, "offset_ms", bus.MsOf(it.sent))
	return reply, hdr
}

// outMark is a producer's mark waiting for the audio before it.
type outMark struct {
	off  int64 // bytes of the implicit playback before it
	name string
}
