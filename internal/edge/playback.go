package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/twilio"
)

// item is one playback on a call.
type item struct {
	id, reqID, audio string
	durationMs       int64
	attempt          int
	lost             int    // workers that went silent on it
	marked           int64  // offset of the last progress mark relayed
	reconnects       uint64 // the edge's NATS reconnects when the attempt was dispatched

	sent, heard  int64     // bytes of its audio relayed / confirmed played
	end          int64     // offset of its last mark once relayed, else -1
	heardAt      time.Time // when heard last moved (or its first frame went out)
	lastActivity time.Time // last frame from its worker, or its dispatch
	started      bool
	flowing      bool       // the current attempt's worker has sent a frame
	failure      *bus.Error // set when its worker gave up part way

	stream        *bus.StreamFormat // a streamed playback's format; nil for files
	interruptible bool              // the caller's speech stops it (barge-in, see bargein.go)
	// src holds the audio of a playback the edge plays itself (a streamed
	// playback, or producer media on .out): the pacer sends it.
	src *streamSource
	// reply is the reply subject of the latest frame of its worker's
	// attempt: where the edge tells a superseded attempt to stop.
	reply string
	// fill collects a worker's frames for the edge's audio cache
	// (audiocache.go); nil when they are not kept.
	fill *cacheFill
}

// edgePlayed reports whether the edge sends its audio itself, rather than
// a worker.
func (it *item) edgePlayed() bool { return it.src != nil }

func (it *item) body(reason string) *bus.Playback {
	p := &bus.Playback{
		ID: it.id, RequestID: it.reqID, Audio: it.audio, DurationMs: it.durationMs,
		SentMs: bus.MsOf(it.sent), HeardMs: bus.MsOf(it.heard), Reason: reason,
	}
	if it.stream != nil {
		p.Stream = it.stream.String()
	}
	return p
}

// controller arbitrates the playbacks of one call, its one timeline: one at
// a time is sent (sending); those fully sent wait in draining for Twilio to
// echo their last mark; the rest wait in queue. A file is handed to a
// worker over bus.SubjectRender, and only that worker's frames are relayed;
// a streamed playback is decoded and sent by the edge itself (pacer.go).
type controller struct {
	ss *session

	// sendMu orders what goes to the socket: held from deciding what to
	// send to queuing it for the writer, by the relay, the pacer and
	// whoever clears, so that nothing of a playback stopped by a clear
	// goes out after the clear. Taken before mu.
	sendMu sync.Mutex

	mu       sync.Mutex
	queue    []*item
	sending  *item
	draining []*item
	closed   bool

	wg       sync.WaitGroup // dispatches, the pacer, stream decoders
	quit     chan struct{}
	kick     chan struct{} // pokes the pacer
	tick     *time.Timer   // pokes the pacer when .out has been quiet long enough
	implicit *item         // producer media on .out being sent, until its last mark
	holding  bool          // the pacer's events wait in held (holdEvents); guarded by sendMu
	held     []bus.Event

	// The pacer's wall-clock estimate of Twilio's buffer while it sends
	// wallFor: wallLevel bytes at wallAt, draining in real time.
	wallFor   *item
	wallLevel int64
	wallAt    time.Time
	watchdog  *time.Timer // fires checkWorker when the sending playback's worker goes quiet

	// The superseded attempt last told to stop, and when (tellStop).
	stopMu   sync.Mutex
	stopHdr  string
	stopTold time.Time
}

func newController(ss *session) *controller {
	c := &controller{ss: ss, quit: make(chan struct{}), kick: make(chan struct{}, 1)}
	c.watchdog = time.AfterFunc(time.Hour, c.checkWorker)
	c.watchdog.Stop()
	c.tick = time.AfterFunc(time.Hour, c.wake)
	c.tick.Stop()
	c.wg.Add(1)
	go c.paceLoop()
	return c
}

// close ends every playback (reason: stop, shutdown…) and waits for the
// controller's goroutines.
func (c *controller) close(reason string) {
	c.releaseEvents()
	c.mu.Lock()
	evs := c.interruptLocked(reason)
	c.closed = true
	c.watchdog.Stop()
	c.tick.Stop()
	c.mu.Unlock()
	close(c.quit)
	c.publish(evs)
	c.wg.Wait()
}

// onEnqueue takes a playback for this call from a worker (bus.StreamPlay).
func (c *controller) onEnqueue(msg *nats.Msg) {
	req, err := bus.DecodeEnqueue(msg.Data)
	if err != nil {
		c.ss.srv.metrics.errors.WithLabelValues("bad_enqueue").Inc()
		c.respond(msg, bus.ErrorReply(bus.CodeBadRequest, err.Error()))
		return
	}
	it := &item{id: req.PlaybackID, reqID: req.RequestID, audio: req.Audio, durationMs: req.DurationMs, end: -1,
		stream: req.Stream, interruptible: req.Interruptible}
	if it.stream == nil {
		c.fromCache(it)
	}
	reply := bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: it.id, DurationMs: it.durationMs}
	c.mu.Lock()
	full := req.Mode != bus.ModeInterrupt && len(c.queue) >= c.ss.srv.cfg.MaxQueuedPlaybacks
	c.mu.Unlock()
	if it.stream != nil && !full {
		// Subscribed, and the server has it, before the reply: whatever the
		// producer publishes once it has the reply reaches this source.
		src, e := c.openStream(it)
		if e != nil {
			c.respond(msg, bus.PlayReply{Type: bus.TypePlayReply, PlaybackID: it.id, Error: e})
			return
		}
		it.src = src
		reply.AudioSubject = bus.PlaybackAudio(it.id)
	}
	if req.Mode == bus.ModeInterrupt {
		c.sendMu.Lock()
		defer c.sendMu.Unlock()
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		if it.src != nil {
			it.src.close()
		}
		c.respond(msg, bus.ErrorReply(bus.CodeUnknownStream, "the stream has ended"))
		return
	}
	if req.Mode != bus.ModeInterrupt && len(c.queue) >= c.ss.srv.cfg.MaxQueuedPlaybacks {
		c.mu.Unlock()
		if it.src != nil {
			it.src.close()
		}
		c.ss.srv.metrics.errors.WithLabelValues("queue_full").Inc()
		reply := bus.ErrorReply(bus.CodeQueueFull, fmt.Sprintf("the call already has %d playbacks queued", c.ss.srv.cfg.MaxQueuedPlaybacks))
		reply.PlaybackID = it.id
		c.respond(msg, reply)
		return
	}
	var evs []bus.Event
	var marks []string
	if req.Mode == bus.ModeInterrupt {
		marks = c.outMarksLocked()
		evs = c.interruptLocked("interrupt")
	}
	if it.src != nil && it.src.decodes() {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			it.src.run()
		}()
	}
	c.queue = append(c.queue, it)
	c.ss.srv.metrics.queued.Inc()
	next := c.advanceLocked()
	c.mu.Unlock()

	if req.Mode == bus.ModeInterrupt {
		c.ss.sendClear()
		c.sendMarks(marks)
	}
	c.publish(evs)
	c.respond(msg, reply)
	c.dispatch(next)
}

// fromCache makes the file playback it one the edge plays itself when its
// audio is in the edge's cache.
func (c *controller) fromCache(it *item) {
	if e := c.ss.srv.cache.get(it.audio); e != nil {
		it.src = newCachedSource(e, c.wake)
		if it.durationMs == 0 {
			it.durationMs = e.durationMs
		}
	}
}

// ownItem returns the playback of the call's own audio, name: one the
// edge plays from its cache when it holds the audio. For a name no library
// could hold it returns nil and the playback.failed a worker would have
// caused.
func (c *controller) ownItem(name string) (*item, []bus.Event) {
	it := &item{id: nuid.Next(), audio: name, end: -1}
	if err := bus.CheckAudioName(name); err != nil {
		c.mu.Lock()
		ev := c.event(bus.EventPlaybackFailed, it, "")
		c.mu.Unlock()
		ev.Error = &bus.Error{Code: bus.CodeUnknownAudio, Message: err.Error(), Audio: name}
		return nil, []bus.Event{ev}
	}
	c.fromCache(it)
	return it, nil
}

// queueOwn queues the call's own audio at start. When the edge plays it,
// its first lead goes to the writer from here, the reader's goroutine,
// rather than after waking the pacer's.
func (c *controller) queueOwn(it *item) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.queue = append(c.queue, it)
	c.ss.srv.metrics.queued.Inc()
	next := c.advanceLocked()
	c.mu.Unlock()
	if next != nil && next.edgePlayed() {
		c.pump()
		return
	}
	c.dispatch(next)
}

// holdEvents keeps the events the pacer would publish until releaseEvents:
// a playback sent before the stream's start is announced is announced
// after it.
func (c *controller) holdEvents() {
	c.sendMu.Lock()
	c.holding = true
	c.sendMu.Unlock()
}

// releaseEvents publishes the events held since holdEvents, and stops
// holding them.
func (c *controller) releaseEvents() {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	evs := c.held
	c.holding, c.held = false, nil
	c.publish(evs)
}

// openStream subscribes a streamed playback's source to its audio subject
// and waits for the server to confirm the subscription.
func (c *controller) openStream(it *item) (*streamSource, *bus.Error) {
	cfg := &c.ss.srv.cfg
	src := newStreamSource(*it.stream, cfg.StreamIdleTimeout, c.wake)
	src.account(&c.ss.srv.metrics.streamHeld, cfg.StreamBufferBytes)
	sub, err := c.ss.srv.nc.Subscribe(bus.PlaybackAudio(it.id), src.onMsg)
	if err != nil {
		src.close()
		return nil, &bus.Error{Code: bus.CodeInternal, Message: fmt.Sprintf("subscribe %s: %v", bus.PlaybackAudio(it.id), err)}
	}
	// The producer's own limit (MaxStreamRaw) ends a runaway stream; NATS
	// should not drop chunks before.
	_ = sub.SetPendingLimits(-1, 2*MaxStreamRaw)
	src.mu.Lock()
	src.sub = sub
	src.mu.Unlock()
	if err := c.ss.srv.nc.FlushTimeout(cfg.RenderTimeout); err != nil {
		src.close()
		return nil, &bus.Error{Code: bus.CodeUnavailable, Message: fmt.Sprintf("subscribe %s: %v", bus.PlaybackAudio(it.id), err)}
	}
	// A subscription the server refuses is refused asynchronously, before
	// the flush's answer: the producer must not be told to publish where
	// nothing listens.
	if err := c.ss.srv.nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+bus.PlaybackAudio(it.id)+`"`) {
		src.close()
		c.ss.srv.metrics.errors.WithLabelValues("stream_subscribe_denied").Inc()
		return nil, &bus.Error{Code: bus.CodeInternal, Message: fmt.Sprintf("the edge may not subscribe to %s: grant it callcast.playback.*.audio (%v)", bus.PlaybackAudio(it.id), err)}
	}
	return src, nil
}

// onClear handles a clear published on .out by any producer: everything
// playing or queued stops.
// The caller holds sendMu, so that the clear goes out before anything else.
func (c *controller) onClear() {
	c.mu.Lock()
	marks := c.outMarksLocked()
	evs := c.interruptLocked("clear")
	c.mu.Unlock()
	c.publish(evs)
	c.ss.sendClear()
	c.sendMarks(marks)
}

// admit decides whether a frame of a worker's playback (header value hdr)
// goes to Twilio, and accounts for it.
func (c *controller) admit(hdr string, out *bus.OutMessage, msg *nats.Msg) bool {
	now := time.Now()
	reconnects := c.ss.srv.nc.Stats().Reconnects
	c.mu.Lock()
	it := c.sending
	if it == nil || bus.PlaybackHeader(it.id, it.attempt) != hdr {
		c.mu.Unlock()
		c.ss.srv.metrics.errors.WithLabelValues("stale_playback_frame").Inc()
		c.tellStop(msg.Reply, hdr)
		return false
	}
	it.lastActivity = now
	it.reply = msg.Reply
	if !it.flowing {
		it.flowing = true
		c.watchdog.Reset(c.silenceLimit(it))
	}
	if reconnects != it.reconnects {
		// The edge lost NATS since this attempt was dispatched, and with
		// it whatever the worker published meanwhile. Drop the rest of the
		// attempt and ask again from the last byte relayed, so that the
		// caller hears neither a hole nor anything twice.
		it.attempt++
		it.flowing = false
		attempt, sent := it.attempt, it.sent
		c.mu.Unlock()
		c.tellStop(msg.Reply, hdr)
		c.ss.srv.metrics.errors.WithLabelValues("nats_reconnect_resume").Inc()
		c.ss.log.Info("reconnected to NATS; resuming playback from the last byte relayed", "playback", it.id, "attempt", attempt, "offset_ms", bus.MsOf(sent))
		c.dispatch(it)
		return false
	}
	var evs []bus.Event
	var next *item
	var lost int64
	attempt := it.attempt
	switch out.Event {
	case "media":
		if it.durationMs == 0 {
			if d, err := strconv.ParseInt(msg.Header.Get(bus.HeaderDuration), 10, 64); err == nil && d > 0 {
				it.durationMs = d
			}
		}
		if !it.started {
			it.started, it.heardAt = true, now
			evs = append(evs, c.event(bus.EventPlaybackStarted, it, ""))
			if it.sent == 0 && it.stream == nil {
				it.fill = c.ss.srv.cache.claim(it.audio, it.durationMs)
			}
		}
		if f := it.fill; f != nil && (int64(len(f.buf)) != it.sent || !c.ss.srv.cache.add(f, out.Media.Payload)) {
			c.dropFillLocked(it)
		}
		it.sent += int64(twilio.PayloadLen(out.Media.Payload))
	case "mark":
		id, off, last, ok := bus.ParsePlaybackMark(out.Mark.Name)
		if ok && id == it.id && off > it.sent {
			// The bus lost frames of this attempt (NATS core delivers at
			// most once, e.g. across a server restart). Count from the
			// worker's offset, so that a re-dispatch resumes after what it
			// sent rather than play the frames since the hole again.
			lost, it.sent = off-it.sent, off
			c.dropFillLocked(it)
		}
		if ok && id == it.id && !last {
			if off == it.marked {
				// A worker seeking to resume says it is alive; Twilio
				// has this mark already.
				c.mu.Unlock()
				return false
			}
			it.marked = off
		}
		if ok && id == it.id && last {
			it.end = off
			if e := msg.Header.Get(bus.HeaderError); e != "" {
				it.failure = &bus.Error{Code: bus.CodeBadAudio, Message: e, Audio: it.audio}
			}
			if f := it.fill; f != nil && it.failure == nil && int64(len(f.buf)) == off {
				c.ss.srv.cache.commit(f, it.durationMs)
				it.fill = nil
			}
			c.dropFillLocked(it)
			c.draining = append(c.draining, it)
			c.sending = nil
			next = c.advanceLocked()
		}
	}
	c.mu.Unlock()
	if lost > 0 {
		c.ss.srv.metrics.errors.WithLabelValues("lost_audio").Inc()
		c.ss.log.Warn("audio of a playback lost on the bus; the caller hears a gap", "playback", it.id, "attempt", attempt, "lost_ms", bus.MsOf(lost))
	}
	c.publish(evs)
	c.dispatch(next)
	return true
}

// onEcho accounts for a mark Twilio echoed.
func (c *controller) onEcho(name string) {
	id, off, last, ok := bus.ParsePlaybackMark(name)
	if !ok {
		return
	}
	now := time.Now()
	c.mu.Lock()
	var evs []bus.Event
	for i, it := range c.draining {
		if it.id != id {
			continue
		}
		if off > it.heard {
			it.heard, it.heardAt = off, now
		}
		if last && off == it.end {
			c.draining = slices.Delete(c.draining, i, i+1)
			if it.failure != nil {
				ev := c.event(bus.EventPlaybackFailed, it, "")
				ev.Error = it.failure
				evs = append(evs, ev)
			} else {
				evs = append(evs, c.event(bus.EventPlaybackFinished, it, ""))
			}
		}
		break
	}
	if it := c.sending; it != nil && it.id == id && off > it.heard {
		it.heard, it.heardAt = off, now
	}
	for _, it := range c.queue { // a paused playback's audio before the pause
		if it.id == id && off > it.heard && off <= it.sent {
			it.heard, it.heardAt = off, now
		}
	}
	next := c.advanceLocked() // one held behind interruptible audio (bargein.go)
	edge := c.sending != nil && c.sending.edgePlayed()
	c.mu.Unlock()
	c.publish(evs)
	if next != nil && !next.edgePlayed() {
		c.dispatch(next)
	}
	if edge {
		// The echo makes room for what the edge plays: the reader sends it
		// on at once, rather than waking the pacer to (one goroutine
		// hand-off fewer, five times a second per call).
		c.pump()
	}
}

// advanceLocked makes the next queued playback the sending one, if none is.
func (c *controller) advanceLocked() *item {
	if c.sending != nil || len(c.queue) == 0 || c.closed || c.heldLocked(c.queue[0]) {
		return nil
	}
	it := c.queue[0]
	c.queue = slices.Delete(c.queue, 0, 1)
	c.ss.srv.metrics.queued.Dec()
	it.lastActivity = time.Now()
	c.sending = it
	if !it.edgePlayed() {
		c.watchdog.Reset(c.ss.srv.cfg.RenderTimeout)
	}
	return it
}

// aheadLocked lists the draining playbacks, whose audio plays before the
// sending one's.
func (c *controller) aheadLocked() []bus.Ahead {
	var a []bus.Ahead
	for _, it := range c.draining {
		a = append(a, bus.Ahead{PlaybackID: it.id, End: it.end, Heard: it.heard})
	}
	return a
}

// estimateHeard is what the caller has heard of it: the marks' count, moved
// on by the time since the last one for the playback at the head of
// Twilio's buffer, never past what was sent.
func (c *controller) estimateHeard(it *item, now time.Time) int64 {
	heard := it.heard
	head := len(c.draining) > 0 && c.draining[0] == it || len(c.draining) == 0 && c.sending == it
	if head && it.started && !it.heardAt.IsZero() {
		heard += bus.BytesOf(now.Sub(it.heardAt))
	}
	return min(heard, it.sent)
}

// interruptLocked stops every playback of the call and returns the events
// that say so.
func (c *controller) interruptLocked(reason string) []bus.Event {
	now := time.Now()
	var evs []bus.Event
	for _, it := range append(append([]*item(nil), c.draining...), c.sending) {
		if it == nil {
			continue
		}
		it.heard = c.estimateHeard(it, now)
		evs = append(evs, c.event(bus.EventPlaybackInterrupted, it, reason))
	}
	for _, it := range c.queue {
		evs = append(evs, c.event(bus.EventPlaybackInterrupted, it, reason))
	}
	for _, it := range append(append(append([]*item(nil), c.draining...), c.sending), c.queue...) {
		if it != nil && it.src != nil {
			it.src.close()
		}
	}
	c.ss.srv.metrics.queued.Sub(float64(len(c.queue)))
	c.queue, c.sending, c.draining, c.implicit = nil, nil, nil, nil
	return evs
}

// dispatch hands it to a worker in the background.
func (c *controller) dispatch(it *item) {
	if it == nil {
		return
	}
	if it.edgePlayed() {
		c.wake()
		return
	}
	reconnects := c.ss.srv.nc.Stats().Reconnects
	c.mu.Lock()
	it.reconnects = reconnects
	req := bus.RenderRequest{
		Type: bus.TypeRenderRequest, StreamSid: c.ss.sid, CallSid: c.ss.callSid, PlaybackID: it.id, Attempt: it.attempt,
		RequestID: it.reqID, Audio: it.audio, Offset: it.sent, Heard: min(it.heard, it.sent), Ahead: c.aheadLocked(), EdgeAlive: c.ss.srv.alive,
	}
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		if e := c.render(it, &req); e != nil {
			c.renderFailed(it, req.Attempt, e)
		}
	}()
}

// Retries of a render request: up to renderTries requests that no worker
// answered in time; while workers answer busy or unavailable, for up to
// renderBusyWait.
const (
	renderTries    = 3
	renderBusyWait = 3 * time.Second
)

// sendingLocked reports whether it is the sending playback, at attempt:
// nothing has moved it on since that attempt began.
func (c *controller) sendingLocked(it *item, attempt int) bool {
	return c.sending == it && it.attempt == attempt
}

// render asks the workers to take req, trying again while they are busy.
// A request that timed out may still have reached a worker, so a retry
// goes out as a new attempt: the edge relays only the latest attempt's
// frames, never two workers' at once.
func (c *controller) render(it *item, req *bus.RenderRequest) *bus.Error {
	var last *bus.Error
	begun := time.Now()
	for try := 0; ; try++ {
		switch {
		case try == 0:
		case last.Code == bus.CodeBusy || last.Code == bus.CodeUnavailable:
			// Capacity comes back as superseded attempts stop (within 100
			// ms), as workers back from an outage are heard of across the
			// cluster, and stores recover: ask again, less and less often,
			// for up to renderBusyWait.
			wait := min(150*time.Millisecond<<min(try-1, 3), time.Second)
			if time.Since(begun) >= renderBusyWait {
				return last
			}
			// Workers answering is no silence: the watchdog waits.
			c.mu.Lock()
			if !c.sendingLocked(it, req.Attempt) {
				c.mu.Unlock()
				return nil // moved on meanwhile
			}
			it.lastActivity = time.Now().Add(wait)
			c.mu.Unlock()
			select {
			case <-c.quit:
				return nil
			case <-time.After(wait):
			}
		case try >= renderTries:
			return last
		default: // no worker answered in time: a new attempt, in case one still does
			c.mu.Lock()
			if !c.sendingLocked(it, req.Attempt) {
				c.mu.Unlock()
				return nil // moved on meanwhile
			}
			it.attempt++
			it.flowing = false
			req.Attempt = it.attempt
			c.mu.Unlock()
		}
		if !c.awaitBus() {
			return nil // the call ended
		}
		deadline := time.Now().Add(c.ss.srv.cfg.RenderTimeout)
		req.Expires = deadline.UnixMilli()
		data, err := json.Marshal(req)
		if err != nil {
			return &bus.Error{Code: bus.CodeInternal, Message: err.Error()}
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		go func() { // give up as soon as the call ends
			select {
			case <-c.quit:
			case <-ctx.Done():
			}
			cancel()
		}()
		resp, err := c.ss.srv.nc.RequestWithContext(ctx, bus.SubjectRender, data)
		cancel()
		select {
		case <-c.quit:
			return nil
		default:
		}
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return &bus.Error{Code: bus.CodeNoWorkers, Message: "no worker is serving " + bus.SubjectRender, Audio: req.Audio}
		case err != nil:
			last = &bus.Error{Code: bus.CodeNoWorkers, Message: fmt.Sprintf("render request: %v", err), Audio: req.Audio}
			continue
		}
		reply, err := bus.DecodePlayReply(resp.Data)
		if err != nil {
			return &bus.Error{Code: bus.CodeInternal, Message: err.Error(), Audio: req.Audio}
		}
		if reply.Error == nil {
			c.mu.Lock()
			if it.durationMs == 0 {
				it.durationMs = reply.DurationMs
			}
			c.mu.Unlock()
			return nil
		}
		// A full worker, or one that cannot reach the audio store right
		// now: the next request may reach another worker.
		if reply.Error.Code != bus.CodeBusy && reply.Error.Code != bus.CodeUnavailable {
			return reply.Error
		}
		last = reply.Error
	}
}

// awaitBus waits while the edge is off NATS: a render request sent then
// would only sit in the client's buffer, and its timeout say nothing about
// the workers. It returns false if the call ends first.
func (c *controller) awaitBus() bool {
	for !c.ss.srv.nc.IsConnected() {
		select {
		case <-c.quit:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

// renderFailed ends it with playback.failed and moves the queue on.
func (c *controller) renderFailed(it *item, attempt int, e *bus.Error) {
	c.mu.Lock()
	if !c.sendingLocked(it, attempt) {
		c.mu.Unlock()
		return
	}
	c.sending = nil
	next := c.advanceLocked()
	ev := c.event(bus.EventPlaybackFailed, it, "")
	if e.Audio == "" {
		e.Audio = it.audio
	}
	ev.Error = e
	c.mu.Unlock()
	c.ss.log.Warn("playback failed", "playback", it.id, "audio", it.audio, "code", e.Code, "err", e.Message)
	c.publish([]bus.Event{ev})
	c.dispatch(next)
}

// silenceLimit is how long the sending playback's worker may go without a
// frame before it is taken for dead. Before its first frame the worker may
// be opening the audio: RenderTimeout. After it, a live worker publishes
// at least every chunk plus the mark grace (under a second), so the limit
// is half the lead (at least 750 ms): another worker then takes over while
// Twilio still plays what it holds, and the caller hears no gap.
func (c *controller) silenceLimit(it *item) time.Duration {
	cfg := &c.ss.srv.cfg
	if !it.flowing {
		return cfg.RenderTimeout
	}
	return min(cfg.RenderTimeout, max(cfg.Lead/2, 750*time.Millisecond))
}

// checkWorker re-dispatches the sending playback when its worker has gone
// silent for RenderTimeout, from the last byte relayed, so that nothing
// is played twice. The watchdog timer runs it; it re-arms itself while a
// playback is sending.
func (c *controller) checkWorker() {
	c.mu.Lock()
	it := c.sending
	if it == nil || c.closed || it.edgePlayed() {
		c.mu.Unlock()
		return
	}
	if !c.ss.srv.nc.IsConnected() {
		// The edge cannot hear any worker while it is off the bus: the
		// silence is NATS's, not the worker's. After the reconnect the
		// attempt resumes (see admit), or the watchdog moves it.
		it.lastActivity = time.Now()
		c.watchdog.Reset(c.silenceLimit(it))
		c.mu.Unlock()
		return
	}
	if quiet, limit := time.Since(it.lastActivity), c.silenceLimit(it); quiet < limit {
		c.watchdog.Reset(limit - quiet)
		c.mu.Unlock()
		return
	}
	if it.lost >= c.ss.srv.cfg.RenderAttempts-1 {
		c.mu.Unlock()
		c.renderFailed(it, it.attempt, &bus.Error{Code: bus.CodeNoWorkers, Message: "the worker stopped sending and no other could take over"})
		return
	}
	oldReply, oldHdr := it.reply, bus.PlaybackHeader(it.id, it.attempt)
	it.attempt++
	it.lost++
	it.lastActivity = time.Now()
	it.reply = ""
	it.flowing = false
	c.watchdog.Reset(c.ss.srv.cfg.RenderTimeout) // the next worker may die too
	attempt, sent := it.attempt, it.sent
	c.mu.Unlock()
	c.tellStop(oldReply, oldHdr) // in case it is only slow
	c.ss.srv.metrics.errors.WithLabelValues("worker_lost").Inc()
	c.ss.log.Warn("worker went silent; moving playback", "playback", it.id, "attempt", attempt, "offset_ms", bus.MsOf(sent))
	c.dispatch(it)
}

// event returns the event kind of it. An event that ends it gives up its
// cache fill, if it is still collecting one.
func (c *controller) event(kind string, it *item, reason string) bus.Event {
	if kind != bus.EventPlaybackStarted {
		c.dropFillLocked(it)
	}
	ev := bus.NewEvent(c.ss.sid, kind)
	ev.Playback = it.body(reason)
	return ev
}

// dropFillLocked gives up it's cache fill.
func (c *controller) dropFillLocked(it *item) {
	if it.fill != nil {
		c.ss.srv.cache.release(it.fill)
		it.fill = nil
	}
}

func (c *controller) publish(evs []bus.Event) {
	for _, ev := range evs {
		c.ss.publish(ev)
	}
}

func (c *controller) respond(msg *nats.Msg, reply bus.PlayReply) {
	data, err := json.Marshal(reply)
	if err == nil {
		err = msg.Respond(data)
	}
	if err != nil {
		c.ss.log.Warn("reply failed", "err", err)
	}
}
