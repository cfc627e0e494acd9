package edge

import (
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/twilio"
)

// The pacer sends the playbacks the edge plays itself (streamed playbacks,
// producer media on .out) the way workers send files: media messages of
// Chunk (200 ms) while less than Lead is buffered at Twilio by the marks it
// echoed, a mark after each message, the playback's last mark when its
// audio ends. The first message leaves as soon as 20 ms of audio exist, and
// so does any message while Twilio holds less than a chunk: a producer that
// trickles is heard as it speaks, one that pauses is heard as silence.

// pacerChunk is the audio of one media message the pacer sends.
const pacerChunk = 200 * audio.SampleRate / 1000

// markGrace is how long mark echoes may lag real time before the pacer
// goes by the wall clock instead, as workers do (worker.Config.MarkGrace):
// a peer that plays slower than real time is then sent audio at real time
// and found out (see lagMeter), not waited for.
const markGrace = 500 * time.Millisecond

// paceLoop runs the controller's pacer until the call ends.
func (c *controller) paceLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.quit:
			return
		case <-c.kick:
		}
		c.pump()
	}
}

// wake pokes the pacer: audio, an echo, an end or a failure may let it move.
func (c *controller) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// step is what one round of the pacer decided, done outside the lock.
type step struct {
	msgs     [2]*[]byte
	n        int
	media    int // audio bytes in msgs
	evs      []bus.Event
	next     *item
	closeSrc *streamSource
	stats    chunkStats
}

func (st *step) add(bp *[]byte) { st.msgs[st.n] = bp; st.n++ }

// pump sends what the sending playback may send now.
func (c *controller) pump() {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	m := c.ss.srv.metrics
	for {
		var st step
		c.mu.Lock()
		more := c.stepLocked(&st, time.Now())
		c.mu.Unlock()
		for i, bp := range st.msgs[:st.n] {
			if !c.ss.enqueue(bp) {
				continue
			}
			if i == 0 && st.media > 0 {
				m.relayedMedia.Inc()
				m.relayedBytes.Add(float64(st.media))
				if !c.ss.gotAudio.Swap(true) {
					m.firstAudio.Observe(time.Since(c.ss.startedAt).Seconds())
				}
			} else {
				m.relayedMark.Inc()
			}
		}
		if c.holding {
			c.held = append(c.held, st.evs...)
		} else {
			c.publish(st.evs)
		}
		if st.closeSrc != nil {
			st.closeSrc.close()
		}
		m.countChunks(st.stats)
		c.dispatch(st.next)
		if !more {
			return
		}
	}
}

// stepLocked decides the next message of the sending playback, if the edge
// plays it, and reports whether to look again at once.
func (c *controller) stepLocked(st *step, now time.Time) bool {
	if c.closed {
		return false
	}
	c.failQueuedLocked(st)
	it := c.sending
	if it == nil || !it.edgePlayed() {
		return false
	}
	s := it.src
	s.mu.Lock()
	st.stats, s.stats = s.stats, chunkStats{}
	avail, done := s.out.len(), s.decoded
	if len(s.marks) > 0 && s.marks[0].off <= it.sent {
		// A producer's mark, after the audio published before it.
		name := s.marks[0].name
		s.marks = s.marks[1:]
		s.mu.Unlock()
		bp := bufPool.Get().(*[]byte)
		*bp = twilio.AppendMark((*bp)[:0], c.ss.sid, name)
		st.add(bp)
		return true
	}
	if s.implicit && !done {
		// Producer media on .out is over once it has been quiet a while:
		// then the rest goes, a part of a frame included.
		if quiet := now.Sub(s.lastIn); quiet >= outQuiet {
			done = true
		} else if avail < audio.FrameSize {
			c.tick.Reset(outQuiet - quiet)
		}
	}
	if s.fail != nil || avail == 0 && done {
		fail, decErr := s.fail, s.decErr
		s.mu.Unlock()
		switch {
		case fail != nil:
			e := *fail
			it.failure = &e
		case decErr != nil && !errors.Is(decErr, audio.ErrTruncated):
			it.failure = &bus.Error{Code: bus.CodeBadAudio, Message: decErr.Error()}
		case decErr != nil:
			c.ss.log.Info("streamed audio ended mid-frame; played what was decodable", "playback", it.id, "err", decErr)
		}
		c.endLocked(it, st)
		return true
	}
	buffered := c.bufferedLocked(it)
	if c.wallFor != it {
		c.wallFor, c.wallLevel, c.wallAt = it, buffered, now
	}
	c.wallLevel = max(0, c.wallLevel-bus.BytesOf(now.Sub(c.wallAt)))
	c.wallAt = now
	grace, lead := bus.BytesOf(markGrace), bus.BytesOf(c.ss.srv.cfg.Lead)
	byWall := int64(0) // emptied by the wall clock: room whatever the marks say
	if c.wallLevel > 0 {
		byWall = c.wallLevel + grace
	}
	buffered = min(buffered, byWall)
	if buffered >= lead {
		s.mu.Unlock()
		// By the wall clock, room comes in this long, unless an echo
		// comes first.
		target := max(0, lead-grace-1)
		c.tick.Reset(time.Duration(c.wallLevel-target)*time.Millisecond/(audio.SampleRate/1000) + time.Millisecond)
		return false
	}
	n := min(avail, pacerChunk)
	cut := false // at a producer's mark
	if len(s.marks) > 0 && s.marks[0].off-it.sent < int64(n) {
		n, cut = int(s.marks[0].off-it.sent), true
	}
	if n < pacerChunk && !done && !cut {
		// Less than a message: send it only while Twilio runs low.
		if buffered >= pacerChunk {
			s.mu.Unlock()
			return false
		}
		n -= n % audio.FrameSize
		if n == 0 {
			s.mu.Unlock()
			return false
		}
	}
	bp := bufPool.Get().(*[]byte)
	*bp = twilio.AppendMedia((*bp)[:0], c.ss.sid, s.out.peek(n))
	full := s.out.len() >= MaxStreamAhead
	s.out.discard(n)
	if full {
		s.cond.Broadcast() // room for the decoder
	}
	s.mu.Unlock()
	st.add(bp)
	st.media = n
	if !it.started {
		it.started, it.heardAt = true, now
		st.evs = append(st.evs, c.event(bus.EventPlaybackStarted, it, ""))
	}
	it.sent += int64(n)
	c.wallLevel += int64(n)
	it.marked = it.sent
	mp := bufPool.Get().(*[]byte)
	*mp = appendPlaybackMark((*mp)[:0], c.ss.sid, it.id, it.sent, false)
	st.add(mp)
	return true
}

// endLocked ends the sending playback the edge plays: its last mark goes
// out and it drains, or, when nothing of it was sent, its event goes out
// at once.
func (c *controller) endLocked(it *item, st *step) {
	c.sending = nil
	if c.implicit == it {
		c.implicit = nil
	}
	st.closeSrc = it.src
	if it.sent == 0 {
		kind := bus.EventPlaybackFinished
		if it.failure != nil {
			kind = bus.EventPlaybackFailed
		}
		ev := c.event(kind, it, "")
		ev.Error = it.failure
		st.evs = append(st.evs, ev)
		if it.failure != nil {
			c.ss.log.Warn("playback failed", "playback", it.id, "stream", it.stream.String(), "code", it.failure.Code, "err", it.failure.Message)
		}
	} else {
		it.end = it.sent
		bp := bufPool.Get().(*[]byte)
		*bp = appendPlaybackMark((*bp)[:0], c.ss.sid, it.id, it.sent, true)
		st.add(bp)
		c.draining = append(c.draining, it)
		if it.failure != nil {
			c.ss.log.Warn("playback failed part way", "playback", it.id, "stream", it.stream.String(), "code", it.failure.Code, "err", it.failure.Message, "sent_ms", bus.MsOf(it.sent))
		}
	}
	st.next = c.advanceLocked()
}

// failQueuedLocked ends the queued streamed playbacks whose producer
// failed them (stalled, too large) before their turn.
func (c *controller) failQueuedLocked(st *step) {
	for i := 0; i < len(c.queue); i++ {
		it := c.queue[i]
		if it.src == nil || it.sent > 0 {
			continue
		}
		it.src.mu.Lock()
		fail := it.src.fail
		it.src.mu.Unlock()
		if fail == nil {
			continue
		}
		c.queue = append(c.queue[:i], c.queue[i+1:]...)
		i--
		c.ss.srv.metrics.queued.Dec()
		e := *fail
		ev := c.event(bus.EventPlaybackFailed, it, "")
		ev.Error = &e
		st.evs = append(st.evs, ev)
		it.src.close()
		c.ss.log.Warn("playback failed", "playback", it.id, "stream", it.stream.String(), "code", e.Code, "err", e.Message)
	}
}

// bufferedLocked is the audio at Twilio not yet heard, by its marks, up to
// and including it's: the draining playbacks', a paused one's, its own.
func (c *controller) bufferedLocked(it *item) int64 {
	b := it.sent - it.heard
	for _, d := range c.draining {
		b += max(0, d.end-d.heard)
	}
	for _, q := range c.queue {
		b += max(0, q.sent-q.heard)
	}
	return b
}

// tellStopEvery is how often a superseded attempt whose frames keep
// coming is told again to stop: once per burst of its frames, not once per
// frame.
const tellStopEvery = time.Second

// tellStop tells a worker's superseded attempt hdr to stop, on the reply
// subject of its frames.
func (c *controller) tellStop(reply, hdr string) {
	if reply == "" {
		return
	}
	now := time.Now()
	c.stopMu.Lock()
	again := hdr == c.stopHdr && now.Sub(c.stopTold) < tellStopEvery
	if !again {
		c.stopHdr, c.stopTold = hdr, now
	}
	c.stopMu.Unlock()
	if again {
		return
	}
	msg := &nats.Msg{Subject: reply, Header: nats.Header{bus.HeaderStop: {hdr}}}
	if err := c.ss.srv.nc.PublishMsg(msg); err != nil {
		c.ss.log.Warn("telling a worker to stop failed", "attempt", hdr, "err", err)
		return
	}
	c.ss.srv.metrics.workerStops.Inc()
}

// appendPlaybackMark appends the outbound mark message named
// bus.PlaybackMark(id, off, last) for sid without allocating: sid and id
// hold only letters, digits, '-' and '_', which JSON takes as they are.
func appendPlaybackMark(dst []byte, sid, id string, off int64, last bool) []byte {
	dst = append(dst, `{"event":"mark","streamSid":"`...)
	dst = append(dst, sid...)
	dst = append(dst, `","mark":{"name":"cc:`...)
	dst = append(dst, id...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, off, 10)
	if last {
		dst = append(dst, ":end"...)
	}
	return append(dst, `"}}`...)
}
