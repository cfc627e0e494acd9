package edge

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	contrib "github.com/gofiber/contrib/websocket"
	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/twilio"
)

var (
	errShutdown     = errors.New("edge: shutting down")
	errSlowPeer     = errors.New("edge: slow peer")
	errStartTimeout = errors.New("edge: no start received in time")
	errDuplicate    = errors.New("edge: stream already held by another socket")
)

// session is one media stream socket. The handler's goroutine reads; one
// writer goroutine, joined before the handler returns, owns every write.
type session struct {
	conn   *contrib.Conn
	sid    string       // set once by the reader on start, read by the relay after subscribing
	caller *callerAudio // set on start
	srv    *Server
	log    *slog.Logger

	send chan *[]byte  // encoded messages for the writer (from bufPool)
	done chan struct{} // closed when the session ends

	// What caller points to, from start, in the session's own
	// allocation: the detector in it is at a fixed offset from caller,
	// which the reader prefetches without a load.
	callerMem callerAudio

	endOnce sync.Once
	endErr  error // why it ended, set once before done is closed

	// Set once by the reader on start, read by the relay after subscribing.
	callSid   string
	events    string // bus.StreamEvents(sid)
	startedAt time.Time
	sub       *nats.Subscription // StreamOut
	playSub   *nats.Subscription // StreamPlay
	ctl       *controller
	gotAudio  atomic.Bool
	lag       *lagMeter
	call      *bus.Call // what callcast.calls lists, from start; guarded by srv.mu (calls.go)
	dropped   int       // messages the StreamOut subscription dropped so far (relay only)
	rbuf      []byte    // the reader's, for messages other than caller media
}

// maxKeptBuf is the most a reader's reused buffer keeps between messages.
const maxKeptBuf = 4096

// readMessage appends the rest of a WebSocket message from r to b, growing
// b only when the message outgrows it, and returns the result. The socket's
// read limit bounds it.
func readMessage(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// mediaPrefix starts every media message Twilio sends.
const mediaPrefix = `{"event":"media",`

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (s *Server) handleSocket(c *contrib.Conn) {
	ss := &session{
		srv:  s,
		conn: c,
		log:  s.log.With("remote", c.IP()),
		send: make(chan *[]byte, s.cfg.SendQueue),
		done: make(chan struct{}),
	}
	ss.lag = newLagMeter(s.cfg.Lead+time.Second, s.cfg.SlowPeerAfter, ss.slowPeer)
	if !s.track(ss) {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "draining"), time.Now().Add(time.Second))
		return
	}
	defer s.untrack(ss)
	ss.run()
}

func (ss *session) run() {
	cfg := &ss.srv.cfg
	ss.conn.SetReadLimit(cfg.ReadLimit)

	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		ss.writeLoop()
	}()

	reason, err := ss.readLoop()
	ss.end(err)
	writer.Wait()
	ss.finish(reason)
}

// readLoop reads until stop, close or error and returns the stop reason.
func (ss *session) readLoop() (string, error) {
	cfg := &ss.srv.cfg
	m := ss.srv.metrics
	deadline := cfg.StartTimeout
	var (
		armed time.Time // when the read deadline was last set
		head  [len(mediaPrefix)]byte
		// The socket and, once started, the caller audio, kept here: a
		// caller frame then reads neither the session nor the wrapper
		// around the socket, each a line that has left the core's caches
		// in the 20 ms since the call's last frame.
		ws     = ss.conn.Conn
		caller *callerAudio
	)
	for {
		// Re-arm the deadline every second (or quarter deadline), not for
		// every one of the 50 messages a second: a silent peer is still
		// noticed within the deadline, if up to that much sooner.
		if now := time.Now(); armed.IsZero() || now.Sub(armed) >= min(time.Second, deadline/4) {
			_ = ws.SetReadDeadline(now.Add(deadline))
			armed = now
			// An abort may have kicked the deadline just before it was
			// set again: look for it after setting it. Between re-arms
			// its kick stands, and the read below returns at once.
			select {
			case <-ss.done:
				return ss.readError(nil)
			default:
			}
		}
		mt, r, err := ws.NextReader()
		if err != nil {
			return ss.readError(err)
		}
		caller.prefetch() // most messages are the caller's audio
		n, err := io.ReadFull(r, head[:])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = nil // a message shorter than head
		}
		if err != nil {
			return ss.readError(err)
		}
		// Caller audio, 50 messages a second: once the stream has started,
		// what is plainly a media message goes to the caller's audio,
		// which, while nobody listens and no VAD runs, drops it once read,
		// without allocating.
		if caller != nil && mt == websocket.TextMessage && n == len(head) && string(head[:]) == mediaPrefix {
			if err = caller.read(head[:], r); err != nil {
				return ss.readError(err)
			}
			continue
		}
		// Anything else (start, marks, DTMF, stop) is read into a buffer
		// the session reuses: nothing below keeps a slice of it.
		ss.rbuf = append(ss.rbuf[:0], head[:n]...)
		if ss.rbuf, err = readMessage(ss.rbuf, r); err != nil {
			return ss.readError(err)
		}
		data := ss.rbuf
		if cap(ss.rbuf) > maxKeptBuf {
			ss.rbuf = nil // an outsized message: do not hold its memory for the call
		}
		if mt != websocket.TextMessage {
			m.errors.WithLabelValues("binary_frame").Inc()
			ss.log.Warn("ignoring non-text websocket message", "type", mt, "bytes", len(data))
			continue
		}
		msg, err := twilio.ParseMessage(data)
		if err != nil {
			m.errors.WithLabelValues("bad_message").Inc()
			ss.log.Warn("ignoring invalid message", "err", err, "bytes", len(data))
			continue
		}
		if msg.Event != twilio.EventConnected && msg.Event != twilio.EventStart {
			if ss.sid == "" {
				m.errors.WithLabelValues("before_start").Inc()
				ss.log.Warn("ignoring message before start", "event", msg.Event)
				continue
			}
			if msg.StreamSid != ss.sid {
				m.errors.WithLabelValues("wrong_stream").Inc()
				ss.log.Warn("ignoring message for another stream", "event", msg.Event, "msg_stream_sid", msg.StreamSid)
				continue
			}
		}
		switch msg.Event {
		case twilio.EventConnected:
			ss.log.Debug("twilio connected", "protocol", msg.Protocol, "version", msg.Version)
		case twilio.EventStart:
			if ss.sid != "" {
				m.errors.WithLabelValues("second_start").Inc()
				ss.log.Warn("ignoring second start", "msg_stream_sid", msg.StreamSid)
				continue
			}
			if err := ss.start(msg); err != nil {
				return bus.StopReasonError, err
			}
			caller = ss.caller
			deadline = cfg.ReadTimeout
			armed = time.Time{}
		case twilio.EventMedia:
			// Caller audio in a shape the fast path above did not take.
			if !ss.caller.skip() {
				s := getCallerScratch()
				ss.caller.take(data, s)
				putCallerScratch(s)
			}
		case twilio.EventDTMF:
			ev := bus.NewEvent(ss.sid, bus.EventDTMF)
			ev.DTMF = &bus.DTMF{Digit: msg.DTMF.Digit}
			ss.publish(ev)
		case twilio.EventMark:
			ss.publishMark(msg.Mark.Name)
			ss.ctl.onEcho(msg.Mark.Name)
			if ss.lag.echoed(time.Now()) {
				ss.slowPeer()
			}
		case twilio.EventStop:
			return bus.StopReasonTwilio, nil
		}
	}
}

func (ss *session) readError(err error) (string, error) {
	select {
	case <-ss.done: // ended by the writer, a relay or shutdown
		switch {
		case errors.Is(ss.endErr, errShutdown):
			return bus.StopReasonShutdown, ss.endErr
		case errors.Is(ss.endErr, errSlowPeer):
			return bus.StopReasonSlowPeer, ss.endErr
		}
		return bus.StopReasonError, ss.endErr
	default:
	}
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
		return bus.StopReasonClosed, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if ss.sid == "" {
			ss.srv.metrics.errors.WithLabelValues("start_timeout").Inc()
			return bus.StopReasonError, errStartTimeout
		}
		ss.srv.metrics.errors.WithLabelValues("read_timeout").Inc()
		return bus.StopReasonError, fmt.Errorf("edge: no message for %s: %w", ss.srv.cfg.ReadTimeout, err)
	}
	if errors.Is(err, websocket.ErrReadLimit) {
		ss.srv.metrics.errors.WithLabelValues("read_limit").Inc()
		return bus.StopReasonError, fmt.Errorf("edge: message over %d bytes: %w", ss.srv.cfg.ReadLimit, err)
	}
	// Any other close or a broken connection: the peer is gone.
	return bus.StopReasonClosed, nil
}

// start subscribes to the stream's out subject, then announces the stream.
// The call's own audio, when the edge queues it, is queued before the
// announcement when the edge plays it from its cache, else after.
func (ss *session) start(msg *twilio.Message) error {
	st := msg.Start
	sid := msg.StreamSid
	if !ss.srv.claim(ss, sid) {
		ss.srv.metrics.errors.WithLabelValues("duplicate_stream").Inc()
		return errDuplicate
	}
	ss.sid, ss.callSid, ss.startedAt = sid, st.CallSid, time.Now()
	ss.events = bus.StreamEvents(sid)
	ss.log = ss.log.With("stream_sid", sid, "call_sid", st.CallSid)
	ss.ctl = newController(ss)
	own, byEdge := ss.ownAudio(st.CustomParameters)
	var (
		it     *item
		failed []bus.Event
	)
	if own != "" {
		it, failed = ss.ctl.ownItem(own)
	}
	if it != nil && it.edgePlayed() {
		// From the edge's cache: its first lead goes to the writer before
		// anything else is done; its events wait for the start to be
		// announced.
		ss.ctl.holdEvents()
		ss.ctl.queueOwn(it)
	}
	sub, err := ss.srv.nc.Subscribe(bus.StreamOut(sid), ss.relay)
	if err != nil {
		return fmt.Errorf("edge: subscribe %s: %w", bus.StreamOut(sid), err)
	}
	// Hold audio in NATS while the socket catches up rather than drop it,
	// but no more than a largest message and a few leads' worth: a peer
	// that cannot keep up is closed (see lagMeter), not buffered for.
	_ = sub.SetPendingLimits(-1, pendingLimit(ss.srv.cfg.Lead))
	ss.sub = sub
	if ss.playSub, err = ss.srv.nc.ChanSubscribe(bus.StreamPlay(sid), ss.srv.playRequests()); err != nil {
		return fmt.Errorf("edge: subscribe %s: %w", bus.StreamPlay(sid), err)
	}
	if err := ss.startCaller(st); err != nil {
		return err
	}
	started := bus.StreamStarted{
		Type:             bus.TypeStreamStarted,
		StreamSid:        sid,
		CallSid:          st.CallSid,
		AccountSid:       st.AccountSid,
		CustomParameters: st.CustomParameters,
		MediaFormat:      st.MediaFormat,
		Edge:             ss.srv.cfg.ID,
		Time:             ss.startedAt.UTC(),
		AudioByEdge:      byEdge,
	}
	data, err := json.Marshal(started)
	if err != nil {
		return fmt.Errorf("edge: encode start: %w", err)
	}
	if err := ss.srv.nc.Publish(bus.SubjectStreamStarted, data); err != nil {
		return fmt.Errorf("edge: publish start: %w", err)
	}
	// After the start is published: its playback.* events follow it.
	ss.ctl.releaseEvents()
	ss.ctl.publish(failed)
	if it != nil && !it.edgePlayed() {
		ss.ctl.queueOwn(it) // to a worker, now that its frames reach the edge
	}
	ss.srv.addCall(ss, callOf(sid, st.CallSid, st.AccountSid, st.CustomParameters, ss.startedAt))
	ss.srv.metrics.streams.Inc()
	ss.log.Info("stream started", "audio", st.CustomParameters["audio"])
	return nil
}

// ownAudio is the audio the edge queues for the call at start, if any, and
// whether the edge (rather than a worker) takes care of it.
func (ss *session) ownAudio(params map[string]string) (name string, byEdge bool) {
	def := ss.srv.cfg.DefaultAudio
	if def == "" {
		return "", false // a worker queues it (Config.DefaultAudio)
	}
	name = params["audio"]
	if name == "" {
		name = def
	}
	if name == NoAudio {
		return "", true
	}
	return name, true
}

// relay turns one bus message into Twilio's outbound JSON and queues it for
// the writer. It runs on the subscription's goroutine, one message at a time,
// so the stream's order is kept.
func (ss *session) relay(msg *nats.Msg) {
	defer func() {
		if r := recover(); r != nil {
			ss.srv.metrics.errors.WithLabelValues("panic").Inc()
			ss.log.Error("panic relaying bus message", "panic", r)
			ss.abort(fmt.Errorf("edge: relay panic: %v", r))
		}
	}()
	m := ss.srv.metrics
	if msg.Header.Get(bus.HeaderPing) != "" {
		return // a worker checking that the stream is still here
	}
	// The stream's bus buffer is sized to the lead (pendingLimit): a burst
	// past it, or one message larger than it, is dropped by the client.
	// The call goes on: a playback's worker frames carry their offsets, so
	// a hole is accounted for (see controller.admit), and a lost last mark
	// is recovered by the silent-worker watchdog.
	if n, _ := msg.Sub.Dropped(); n > ss.dropped {
		m.errors.WithLabelValues("bus_dropped").Add(float64(n - ss.dropped))
		ss.log.Warn("the stream's bus buffer overflowed; messages dropped", "dropped", n-ss.dropped, "limit_bytes", pendingLimit(ss.srv.cfg.Lead))
		ss.dropped = n
	}
	out, err := bus.DecodeOut(msg.Data)
	if err != nil {
		m.errors.WithLabelValues("bad_out_message").Inc()
		ss.log.Warn("dropping invalid message from the bus", "err", err)
		return
	}
	// Whatever is decided about this message goes to the socket before the
	// pacer or a clear can send anything else.
	ss.ctl.sendMu.Lock()
	defer ss.ctl.sendMu.Unlock()
	if hdr := msg.Header.Get(bus.HeaderPlayback); hdr != "" {
		if !ss.ctl.admit(hdr, out, msg) {
			return // a frame of a playback that was stopped or moved
		}
	} else {
		switch out.Event {
		case twilio.EventClear:
			ss.ctl.onClear()
			return
		case twilio.EventMedia:
			// A producer's own audio: a playback on the timeline (outaudio.go).
			ss.ctl.onOutMedia(out.Media.Payload)
			return
		case twilio.EventMark:
			if ss.ctl.onOutMark(out.Mark.Name) {
				return // it goes out after the producer's audio before it
			}
		}
	}
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	switch out.Event {
	case twilio.EventMedia:
		b = twilio.AppendMediaBase64(b, ss.sid, out.Media.Payload)
		m.relayedBytes.Add(float64(twilio.PayloadLen(out.Media.Payload)))
		if !ss.gotAudio.Swap(true) {
			m.firstAudio.Observe(time.Since(ss.startedAt).Seconds())
		}
	case twilio.EventMark:
		b = twilio.AppendMark(b, ss.sid, out.Mark.Name)
	case twilio.EventClear:
		b = twilio.AppendClear(b, ss.sid)
		ss.publish(bus.NewEvent(ss.sid, bus.EventClear))
	}
	*bp = b
	if ss.enqueue(bp) {
		m.relayed.WithLabelValues(out.Event).Inc()
	}
}

// enqueue hands an encoded message to the writer, waiting up to SendTimeout
// for room. A peer that stays that far behind is closed: gaps in the middle
// of speech are worse than a clean end.
func (ss *session) enqueue(bp *[]byte) bool {
	ss.srv.metrics.sendQueue.Observe(float64(len(ss.send)))
	if ss.lag.sent(*bp, time.Now()) {
		bufPool.Put(bp)
		ss.slowPeer()
		return false
	}
	select {
	case ss.send <- bp:
		return true
	case <-ss.done:
		bufPool.Put(bp)
		return false
	default:
	}
	t := time.NewTimer(ss.srv.cfg.SendTimeout)
	defer t.Stop()
	select {
	case ss.send <- bp:
		return true
	case <-ss.done:
	case <-t.C:
		ss.srv.metrics.errors.WithLabelValues("send_queue_full").Inc()
		ss.abort(fmt.Errorf("%w: send queue full for %s", errSlowPeer, ss.srv.cfg.SendTimeout))
	}
	bufPool.Put(bp)
	return false
}

func (ss *session) writeLoop() {
	for {
		select {
		case <-ss.done:
			return
		case bp := <-ss.send:
			_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.srv.cfg.WriteTimeout))
			select { // after the deadline is set, so that abort's kick is not overwritten
			case <-ss.done:
				return
			default:
			}
			err := ss.conn.WriteMessage(websocket.TextMessage, *bp)
			*bp = (*bp)[:0]
			bufPool.Put(bp) // the same pointer: no allocation per message
			if err != nil {
				ss.srv.metrics.errors.WithLabelValues("write").Inc()
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					// Not one message taken in WriteTimeout: the peer stopped reading.
					err = fmt.Errorf("%w: %w", errSlowPeer, err)
				}
				ss.abort(fmt.Errorf("edge: write: %w", err))
				return
			}
		}
	}
}

// end marks the session over (once) and stops relays and the writer.
func (ss *session) end(err error) bool {
	first := false
	ss.endOnce.Do(func() {
		ss.endErr = err
		close(ss.done)
		first = true
	})
	return first
}

// abort ends the session from another goroutine: it expires the socket's
// deadlines so that a blocked read or write returns at once. (Closing the
// socket would not do: fasthttp's hijacked connection ignores Close until
// the handler returns.)
func (ss *session) abort(err error) {
	if ss.end(err) {
		nc := ss.conn.NetConn()
		now := time.Now()
		_ = nc.SetWriteDeadline(now)
		_ = nc.SetReadDeadline(now)
	}
}

// slowPeer closes a peer that fell too far behind real time.
func (ss *session) slowPeer() {
	ss.srv.metrics.errors.WithLabelValues("slow_peer").Inc()
	ss.abort(fmt.Errorf("%w: %d ms of audio sent and not played for %s", errSlowPeer, ss.lag.behind()/(twilio.SampleRate/1000), ss.srv.cfg.SlowPeerAfter))
}

// pendingLimit sizes a stream's bus buffer: the largest message a
// callcast process accepts, and four leads of 200 ms media messages.
func pendingLimit(lead time.Duration) int {
	perSecond := 5 * (base64.StdEncoding.EncodedLen(twilio.SampleRate/5) + 128)
	return bus.MaxMessageSize + 4*int(lead/time.Millisecond)*perSecond/1000
}

// sendClear queues a clear for Twilio and tells the bus.
// The caller holds the controller's sendMu.
func (ss *session) sendClear() {
	bp := bufPool.Get().(*[]byte)
	*bp = twilio.AppendClear((*bp)[:0], ss.sid)
	if ss.enqueue(bp) {
		ss.srv.metrics.relayed.WithLabelValues(twilio.EventClear).Inc()
	}
	ss.publish(bus.NewEvent(ss.sid, bus.EventClear))
}

// finish runs after the writer has stopped: unsubscribe, end the call's
// playbacks, announce the end, close the socket.
func (ss *session) finish(reason string) {
	ss.lag.stop()
	for _, sub := range []*nats.Subscription{ss.playSub, ss.sub} {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
	}
	ss.caller.close()
	if ss.ctl != nil {
		ss.ctl.close(reason)
	}
	err := ss.endErr
	if ss.sid != "" {
		ss.srv.metrics.streams.Dec()
		ev := bus.NewEvent(ss.sid, bus.EventStop)
		ev.Stop = &bus.Stop{Reason: reason, CallSid: ss.callSid}
		ss.publish(ev)
		if err != nil {
			ss.log.Warn("stream ended", "reason", reason, "err", err, "duration", time.Since(ss.startedAt).Round(time.Millisecond))
		} else {
			ss.log.Info("stream ended", "reason", reason, "duration", time.Since(ss.startedAt).Round(time.Millisecond))
		}
	} else if err != nil {
		ss.log.Warn("socket closed before start", "err", err)
	}
	if reason != bus.StopReasonClosed {
		_ = ss.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	}
	_ = ss.conn.Close()
}

// publishMark publishes the mark event of an echo, five a second per
// call, without encoding/json.
func (ss *session) publishMark(name string) {
	bp := bufPool.Get().(*[]byte)
	*bp = bus.AppendMarkEvent((*bp)[:0], ss.sid, time.Now().UTC(), name)
	err := ss.srv.nc.Publish(ss.events, *bp) // copied into the client's buffer
	*bp = (*bp)[:0]
	bufPool.Put(bp)
	if err != nil {
		ss.srv.metrics.errors.WithLabelValues("publish").Inc()
		ss.log.Warn("publish event failed", "event", bus.EventMark, "err", err)
		return
	}
	ss.srv.metrics.eventMark.Inc()
}

func (ss *session) publish(ev bus.Event) {
	data, err := json.Marshal(ev)
	if err == nil {
		err = ss.srv.nc.Publish(ss.events, data)
	}
	if err != nil {
		ss.srv.metrics.errors.WithLabelValues("publish").Inc()
		ss.log.Warn("publish event failed", "event", ev.Event, "err", err)
		return
	}
	ss.srv.metrics.events.WithLabelValues(ev.Event).Inc()
}
