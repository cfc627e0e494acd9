// Package callsim plays Twilio's side of a bidirectional Media Stream
// (<Connect><Stream>), as described in the protocol reference
// twilio-media-streams.md: it dials the server's WebSocket, sends connected
// and start, streams the caller's audio as media messages every 20 ms, and
// plays the audio the server sends back in real time, echoing marks and
// honouring clear exactly as Twilio does. Every server message is checked as
// strictly as Twilio checks it (twilio.ParseOutbound, text frames only, this
// stream's streamSid); violations are recorded, not fatal.
//
// Audio in both directions is G.711 μ-law, 8000 Hz, mono, one byte per
// sample: 160 bytes = 20 ms, BytesPerSecond = 8000.
//
// End-to-end tests, load tests and people who want to hear the product
// without a phone use it; cmd/callsim is its command line.
package callsim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/callcast/callcast/internal/twilio"
)

// Errors. Protocol violations recorded by a Call wrap ErrBinaryFrame,
// ErrWrongStream, ErrBufferFull or one of the twilio package's errors (all of
// which wrap twilio.ErrProtocol).
var (
	// ErrClosed is returned when the call has ended (hung up, closed, or
	// the server closed the socket) before an operation could complete.
	ErrClosed = errors.New("callsim: call closed")
	// ErrBadDigit is returned by SendDTMF for a key a phone does not have.
	ErrBadDigit = errors.New("callsim: invalid DTMF digit")
	// ErrBinaryFrame records a binary WebSocket frame (Twilio error 31950).
	ErrBinaryFrame = fmt.Errorf("callsim: binary frame: %w", twilio.ErrProtocol)
	// ErrWrongStream records a message naming another stream's streamSid
	// (Twilio error 31951).
	ErrWrongStream = fmt.Errorf("callsim: streamSid of another stream: %w", twilio.ErrProtocol)
	// ErrBufferFull records audio refused because more than MaxBuffered
	// was queued (Twilio warning 31931).
	ErrBufferFull = fmt.Errorf("callsim: more than %v of audio buffered: %w", MaxBuffered, twilio.ErrProtocol)
)

// Tuning. Exported values are part of the simulated behaviour.
const (
	// FrameBytes is the size of one caller media payload: 20 ms of μ-law.
	FrameBytes = 160
	// FrameInterval is the pace of caller media messages.
	FrameInterval = 20 * time.Millisecond
	// MaxMessageSize bounds one server message. Twilio documents no limit;
	// this is far above any sane one (16 MiB ≈ 26 minutes of base64 audio).
	MaxMessageSize = 16 << 20

	handshakeTimeout    = 10 * time.Second
	writeTimeout        = 10 * time.Second
	closeWait           = 2 * time.Second // for the server's close frame after ours
	queueLen            = 64              // writer queue: 1.28 s of caller audio
	playoutTick         = 20 * time.Millisecond
	playoutTickCounting = time.Second
	maxErrs             = 100 // violations kept; all are counted
)

// Config describes one simulated call. Only URL is required.
type Config struct {
	// URL is the server's WebSocket URL, ws:// or wss://.
	URL string
	// Header holds extra request headers for the upgrade, such as
	// X-Twilio-Signature. Nil: none.
	Header http.Header
	// TLSConfig is used for wss:// URLs. Nil: the system roots.
	TLSConfig *tls.Config

	// StreamSid, CallSid and AccountSid identify the stream in start and
	// stop. Empty: random Twilio-style SIDs ("MZ", "CA", "AC" + 32 hex).
	StreamSid, CallSid, AccountSid string
	// Parameters are sent as start.customParameters, as Twilio does with
	// the TwiML <Parameter>s. Nil: an empty object.
	Parameters map[string]string

	// CallerAudio is the caller's μ-law 8 kHz mono audio, read 160 bytes
	// every 20 ms; once it is exhausted (or nil) the caller sends μ-law
	// silence (0xFF) until hang-up. It must not block for long; a file or
	// a bytes.Reader is right.
	CallerAudio io.Reader
	// Speed multiplies the playout clock (8000 bytes/s): 20 plays a
	// second of received audio in 50 ms, for fast tests. Zero: 1, real
	// time. Caller audio is always paced in real time.
	Speed float64
	// CountOnly keeps counters and the playout model but not the audio and
	// messages themselves: Messages, Received and Played return nothing.
	// Load tests set it, so that the load generator's memory and CPU do not
	// grow with the audio it receives.
	CountOnly bool
	// Logger receives violations and lifecycle events. Nil: discard.
	Logger *slog.Logger
}

// Stats are the counters of a call. Durations of audio are stream time
// (8000 bytes = 1 s), whatever the Speed.
type Stats struct {
	Media   int // media messages received
	Bytes   int // μ-law bytes received in them
	Marks   int // mark messages received
	Clears  int // clear messages received
	Echoed  int // mark echoes sent
	Played  int // μ-law bytes played out to the caller
	Cleared int // μ-law bytes dropped unplayed by clear

	// Discarded counts μ-law bytes refused over MaxBuffered.
	Discarded int
	// FirstMedia is the time from sending start to receiving the first
	// media message; 0 if none arrived.
	FirstMedia time.Duration
	// MaxBuffered is the most unplayed audio ever queued.
	MaxBuffered time.Duration
	// Underruns counts gaps the caller heard: the buffer ran dry while
	// playing and more audio arrived later. Gaps before the first audio,
	// after the last, after a clear, or shorter than one sample do not
	// count. UnderrunTime is their total length.
	Underruns    int
	UnderrunTime time.Duration

	CallerMedia   int // caller media messages sent
	CallerDropped int // caller frames dropped because the socket was backed up

	Errors       int  // protocol violations seen (see Call.Errs)
	ServerClosed bool // the server closed the socket before any hang-up
}

// Call is one simulated call. Its methods are safe for concurrent use.
type Call struct {
	cfg  Config
	conn *websocket.Conn
	log  *slog.Logger
	sid  string
	call string
	acct string
	t0   time.Time // when start was sent

	armed time.Time // when the write deadline was last set; Dial's and the writer's

	out        chan outMsg   // to the writer
	writerDone chan struct{} // closed when the writer returns
	stopProd   chan struct{} // closed by Hangup: stop caller audio and playout
	prod       sync.WaitGroup
	quit       chan struct{} // closed by the reader on its way out: stop all
	wg         sync.WaitGroup
	done       chan struct{} // closed when the socket is gone and all goroutines returned
	poke       chan struct{} // wakes the playout loop

	sendMu sync.Mutex // orders API sends before stop
	hungUp bool       // guarded by sendMu

	mu       sync.Mutex // guards everything below
	changed  chan struct{}
	waiters  int  // goroutines waiting on changed
	local    bool // we hung up or closed
	endErr   error
	msgs     []twilio.Outbound
	received []byte
	echoed   []string
	clearsAt []time.Duration // when each clear arrived, since start
	errs     []error
	frames   int
	lastRecv time.Time
	p        *playout
	st       Stats
}

type outKind uint8

const (
	outMedia outKind = iota
	outMark
	outDTMF
	outStop
	outClose
)

// outMsg is a message for the writer, which assigns sequence numbers in
// the order it writes.
type outMsg struct {
	kind      outKind
	payload   []byte // outMedia
	chunk     int    // outMedia
	timestamp int64  // outMedia, ms since start
	text      string // outMark name, outDTMF digit
}

// Dial connects to cfg.URL as Twilio would, sends connected and start, and
// starts streaming caller audio. ctx bounds the dial and the handshake only;
// the call lasts until Hangup or Close, or until the server closes it.
func Dial(ctx context.Context, cfg Config) (*Call, error) {
	if cfg.URL == "" {
		return nil, errors.New("callsim: no URL")
	}
	if cfg.Speed < 0 {
		return nil, fmt.Errorf("callsim: negative speed %v", cfg.Speed)
	}
	if cfg.Speed == 0 {
		cfg.Speed = 1
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Call{
		cfg:        cfg,
		sid:        orRandomSid(cfg.StreamSid, "MZ"),
		call:       orRandomSid(cfg.CallSid, "CA"),
		acct:       orRandomSid(cfg.AccountSid, "AC"),
		out:        make(chan outMsg, queueLen),
		writerDone: make(chan struct{}),
		stopProd:   make(chan struct{}),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		poke:       make(chan struct{}, 1),
		changed:    make(chan struct{}),
		p:          newPlayout(cfg.Speed, !cfg.CountOnly),
	}
	if err := twilio.CheckStreamSid(c.sid); err != nil {
		return nil, fmt.Errorf("callsim: stream SID: %w", err)
	}
	c.log = log.With("stream_sid", c.sid, "call_sid", c.call)

	d := websocket.Dialer{TLSClientConfig: cfg.TLSConfig, HandshakeTimeout: handshakeTimeout}
	conn, resp, err := d.DialContext(ctx, cfg.URL, cfg.Header)
	if err != nil {
		if resp != nil {
			// Twilio reports this as error 31920.
			return nil, fmt.Errorf("callsim: dial %s: HTTP %d: %w", cfg.URL, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("callsim: dial %s: %w", cfg.URL, err)
	}
	conn.SetReadLimit(MaxMessageSize)
	c.conn = conn

	params := cfg.Parameters
	if params == nil {
		params = map[string]string{}
	}
	connected := twilio.Message{Event: twilio.EventConnected, Protocol: "Call", Version: "1.0.0"}
	start := twilio.Message{
		Event:          twilio.EventStart,
		SequenceNumber: "1",
		StreamSid:      c.sid,
		Start: &twilio.Start{
			StreamSid:        c.sid,
			AccountSid:       c.acct,
			CallSid:          c.call,
			Tracks:           []string{"inbound"},
			CustomParameters: params,
			MediaFormat:      twilio.MediaFormat{Encoding: twilio.Encoding, SampleRate: twilio.SampleRate, Channels: twilio.Channels},
		},
	}
	for _, m := range []twilio.Message{connected, start} {
		if err := c.writeJSON(m); err != nil {
			conn.Close()
			return nil, fmt.Errorf("callsim: send %s: %w", m.Event, err)
		}
	}
	c.t0 = time.Now()
	c.log.Debug("call started", "url", cfg.URL)

	c.wg.Add(1)
	go c.writer(1)
	c.prod.Add(1)
	go c.playoutLoop()
	go c.reader()
	return c, nil
}

// orRandomSid returns sid, or a random Twilio-style SID with prefix.
func orRandomSid(sid, prefix string) string {
	if sid != "" {
		return sid
	}
	return NewSid(prefix)
}

// NewSid returns a random Twilio-style SID: prefix ("MZ" for a stream, "CA"
// for a call, "AC" for an account) and 32 hex digits.
func NewSid(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	return prefix + hex.EncodeToString(b[:])
}

// StreamSid returns the stream's SID, as sent in start.
func (c *Call) StreamSid() string { return c.sid }

// CallSid returns the call's SID, as sent in start.
func (c *Call) CallSid() string { return c.call }

// AccountSid returns the account SID, as sent in start.
func (c *Call) AccountSid() string { return c.acct }

// Done is closed when the socket is gone and every goroutine of the call has
// returned, whoever ended it.
func (c *Call) Done() <-chan struct{} { return c.done }

// Err returns why the socket ended: nil while it is open, after Hangup or
// Close, and after a normal close by the server; otherwise the error that
// broke it (such as the server dropping the connection without a close
// frame, Twilio's 31903).
func (c *Call) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// SendDTMF sends a dtmf message for digit, one of 0-9, * and #. It returns
// ErrClosed once the call is hung up or gone.
func (c *Call) SendDTMF(digit string) error {
	if len(digit) != 1 || !('0' <= digit[0] && digit[0] <= '9' || digit[0] == '*' || digit[0] == '#') {
		return fmt.Errorf("%w: %q", ErrBadDigit, digit)
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if c.hungUp {
		return ErrClosed
	}
	select {
	case c.out <- outMsg{kind: outDTMF, text: digit}:
		return nil
	case <-c.writerDone:
		return ErrClosed
	}
}

// Hangup ends the call as Twilio does when the caller hangs up: it stops the
// caller audio and the playout, sends stop, closes the WebSocket (waiting
// briefly for the server's close frame) and waits for every goroutine of the
// call. If the server already closed the socket it only waits. ctx bounds the
// wait; when it expires the socket is closed at once. It returns nil once the
// call is over, or the error that kept stop from being sent.
func (c *Call) Hangup(ctx context.Context) error {
	if !c.markLocal() {
		return c.waitDone(ctx)
	}
	close(c.stopProd)
	c.prod.Wait()

	stop := c.enqueue(ctx, outMsg{kind: outStop}) && c.enqueue(ctx, outMsg{kind: outClose})
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	case <-ctx.Done():
	}
	c.conn.Close()
	<-c.done
	if ctx.Err() != nil && !stop {
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// Close drops the call without sending stop, as a failed network would, and
// waits for every goroutine of the call.
func (c *Call) Close() error {
	c.markLocal()
	c.conn.Close()
	<-c.done
	return nil
}

// markLocal records that this side is ending the call, so no more API sends
// are taken. It reports false if the call was already ending or gone.
func (c *Call) markLocal() bool {
	c.sendMu.Lock()
	first := !c.hungUp
	c.hungUp = true
	c.sendMu.Unlock()
	if !first {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		return false
	default:
	}
	c.local = true
	return true
}

func (c *Call) waitDone(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue hands m to the writer. It reports false if the writer is gone or
// ctx ended first.
func (c *Call) enqueue(ctx context.Context, m outMsg) bool {
	select {
	case c.out <- m: // even if ctx is already done
		return true
	default:
	}
	select {
	case c.out <- m:
		return true
	case <-c.writerDone:
	case <-ctx.Done():
	}
	return false
}

// produce is enqueue for the playout goroutine, which stops when Hangup
// starts.
func (c *Call) produce(m outMsg) bool {
	select {
	case c.out <- m:
		return true
	case <-c.writerDone:
	case <-c.stopProd:
	case <-c.quit:
	}
	return false
}

// writeJSON writes m as one text frame. Only Dial (before the writer starts)
// and the writer call it.
func (c *Call) writeJSON(m any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.write(b)
}

// write writes b as one text frame, within writeTimeout. The deadline is
// set again once a second, not for each of the 50 messages a second.
func (c *Call) write(b []byte) error {
	if now := time.Now(); now.Sub(c.armed) >= time.Second {
		if err := c.conn.SetWriteDeadline(now.Add(writeTimeout)); err != nil {
			return err
		}
		c.armed = now
	}
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// writer is the one goroutine that writes to the socket after Dial. seq is
// the last sequence number used (start's). It also paces the caller's audio:
// a media message every FrameInterval until Hangup starts. A frame whose
// time passed while a write was blocked is dropped and counted, as Twilio
// discards inbound audio a congested server cannot take (31930).
func (c *Call) writer(seq int) {
	defer c.wg.Done()
	defer close(c.writerDone)
	ticker := time.NewTicker(FrameInterval)
	defer ticker.Stop()
	ticks := ticker.C
	var (
		src   = c.cfg.CallerAudio
		frame = make([]byte, FrameBytes)
		chunk int    // the last caller frame's number
		buf   []byte // the media message being written, reused
	)
	for {
		var m outMsg
		select {
		case m = <-c.out:
		case now := <-ticks:
			select {
			case <-c.stopProd:
				ticks = nil
				continue
			default:
			}
			due := int((now.Sub(c.t0) + FrameInterval/2) / FrameInterval)
			for due > chunk+1 { // missed while a write blocked
				chunk++
				src = readCaller(src, frame, c.log)
				c.mu.Lock()
				c.st.CallerDropped++
				c.mu.Unlock()
			}
			chunk++
			src = readCaller(src, frame, c.log)
			// The stream time of the frame's first sample, as Twilio
			// stamps it: chunk n holds the caller's audio from
			// (n-1) × 20 ms, whenever it leaves.
			m = outMsg{kind: outMedia, payload: frame, chunk: chunk, timestamp: int64(chunk-1) * FrameInterval.Milliseconds()}
		case <-c.quit:
			return
		}
		if m.kind == outClose {
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			err := c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeTimeout))
			// ErrCloseSent: the server closed first and the reader
			// has answered its close frame already.
			if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
				c.fail(fmt.Errorf("callsim: send close: %w", err))
			}
			return
		}
		seq++
		var (
			event string
			msg   []byte
		)
		switch m.kind {
		case outMedia:
			event = twilio.EventMedia
			buf = appendCallerMedia(buf[:0], seq, c.sid, m.chunk, m.timestamp, m.payload)
			msg = buf
		default:
			w := twilio.Message{SequenceNumber: strconv.Itoa(seq), StreamSid: c.sid}
			switch m.kind {
			case outMark:
				w.Event = twilio.EventMark
				w.Mark = &twilio.Mark{Name: m.text}
			case outDTMF:
				w.Event = twilio.EventDTMF
				w.DTMF = &twilio.DTMF{Track: "inbound_track", Digit: m.text}
			case outStop:
				w.Event = twilio.EventStop
				w.Stop = &twilio.Stop{AccountSid: c.acct, CallSid: c.call}
			}
			event = w.Event
			var err error
			if msg, err = json.Marshal(w); err != nil {
				c.fail(fmt.Errorf("callsim: encode %s: %w", event, err))
				return
			}
		}
		// Count before writing, so that whatever the server has read
		// is already in Stats and Marks.
		c.mu.Lock()
		switch m.kind {
		case outMedia:
			c.st.CallerMedia++
		case outMark:
			c.st.Echoed++
			c.echoed = append(c.echoed, m.text)
			c.broadcast()
		}
		c.mu.Unlock()
		if err := c.write(msg); err != nil {
			c.fail(fmt.Errorf("callsim: send %s: %w", event, err))
			return
		}
	}
}

// readCaller fills frame with the caller's next 20 ms from src, or with
// μ-law silence (0xFF) past its end. It returns nil once src is exhausted.
func readCaller(src io.Reader, frame []byte, log *slog.Logger) io.Reader {
	n := 0
	if src != nil {
		var err error
		n, err = io.ReadFull(src, frame)
		if err != nil {
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				log.Warn("caller audio", "err", err)
			}
			src = nil
		}
	}
	for i := n; i < len(frame); i++ {
		frame[i] = 0xFF
	}
	return src
}

// appendCallerMedia appends the media message Twilio sends with the
// caller's audio, byte for byte what encoding/json makes of the
// twilio.Message, without its cost: fifty of these a second per call.
func appendCallerMedia(dst []byte, seq int, sid string, chunk int, timestamp int64, ulaw []byte) []byte {
	dst = append(dst, `{"event":"media","sequenceNumber":"`...)
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, `","streamSid":"`...)
	dst = append(dst, sid...) // checked: letters, digits, '-' and '_'
	dst = append(dst, `","media":{"track":"inbound","chunk":"`...)
	dst = strconv.AppendInt(dst, int64(chunk), 10)
	dst = append(dst, `","timestamp":"`...)
	dst = strconv.AppendInt(dst, timestamp, 10)
	dst = append(dst, `","payload":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, ulaw)
	return append(dst, `"}}`...)
}

// fail records a write failure as the end of the call and closes the socket,
// which ends the reader.
func (c *Call) fail(err error) {
	c.mu.Lock()
	if c.endErr == nil && !c.local {
		c.endErr = err
	}
	c.mu.Unlock()
	c.log.Warn("write failed", "err", err)
	c.conn.Close()
}

// playoutLimit is the longest the playout clock sleeps while audio is
// buffered. It wakes when the next mark falls due or the buffer runs dry
// whatever the limit, and accounts for the audio played in between when it
// does; the limit only makes Played grow smoothly. A call that keeps no
// audio (CountOnly, load runs) needs no such wake-ups: 50 a second per
// call, as many as its caller's frames, would be half the load generator's
// timers.
func (c *Call) playoutLimit() time.Duration {
	if c.cfg.CountOnly {
		return playoutTickCounting
	}
	return playoutTick
}

// playoutLoop runs the playout clock and is the only sender of mark echoes,
// so they leave in the order they fall due.
func (c *Call) playoutLoop() {
	defer c.prod.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		before := c.p.nPlayed
		c.p.advance(time.Now())
		echoes := c.p.takeEchoes()
		wait := c.p.nextWake(c.playoutLimit())
		if c.p.nPlayed != before {
			c.broadcast()
		}
		c.mu.Unlock()
		for _, name := range echoes {
			if !c.produce(outMsg{kind: outMark, text: name}) {
				return
			}
		}
		timer.Stop()
		var tick <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-tick:
		case <-c.poke:
		case <-c.stopProd:
			return
		case <-c.quit:
			return
		}
	}
}

// reader reads every server message until the socket ends, then stops and
// waits for the other goroutines and closes done.
func (c *Call) reader() {
	defer close(c.done)
	var buf bytes.Buffer // reused: handle keeps nothing of data
	for {
		typ, r, err := c.conn.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			c.ended(err)
			break
		}
		c.handle(typ, buf.Bytes(), time.Now())
	}
	c.conn.Close()
	close(c.quit)
	c.prod.Wait()
	c.wg.Wait()
	c.mu.Lock()
	c.broadcast()
	c.mu.Unlock()
	c.log.Debug("call ended")
}

// ended records why the socket ended.
func (c *Call) ended(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local {
		return
	}
	c.st.ServerClosed = true
	if c.endErr != nil {
		return
	}
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
		c.log.Info("server closed the stream")
		return
	}
	c.endErr = fmt.Errorf("callsim: read: %w", err)
	c.log.Warn("stream broken", "err", err)
}

// handle checks and applies one server message received at now. Parsing
// happens before taking the lock, so a large message does not hold up the
// writer.
func (c *Call) handle(typ int, data []byte, now time.Time) {
	var (
		o     *twilio.Outbound
		err   error
		audio []byte // nil when counting only
		n     int    // bytes of audio
	)
	if typ != websocket.TextMessage {
		err = ErrBinaryFrame
	} else if o, err = twilio.ParseOutbound(data); err == nil {
		if o.StreamSid != c.sid {
			err = fmt.Errorf("%w: %q", ErrWrongStream, o.StreamSid)
		} else if o.Event == twilio.EventMedia {
			// ParseOutbound checked the payload: padded standard base64.
			if c.cfg.CountOnly {
				n = twilio.PayloadLen(o.Media.Payload)
			} else {
				audio, _ = base64.StdEncoding.DecodeString(o.Media.Payload)
				n = len(audio)
			}
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames++
	c.lastRecv = now
	defer c.broadcast()
	if err != nil {
		c.violation(err, data)
		return
	}
	if !c.cfg.CountOnly {
		c.msgs = append(c.msgs, *o)
	}
	switch o.Event {
	case twilio.EventMedia:
		if c.st.Media == 0 {
			c.st.FirstMedia = now.Sub(c.t0)
		}
		c.st.Media++
		c.st.Bytes += n
		c.received = append(c.received, audio...)
		if !c.p.push(now, n, audio) && c.p.discarded == n {
			c.violation(ErrBufferFull, nil) // once per stream, as Twilio warns
		}
	case twilio.EventMark:
		c.st.Marks++
		c.p.mark(now, o.Mark.Name)
	case twilio.EventClear:
		c.st.Clears++
		c.clearsAt = append(c.clearsAt, now.Sub(c.t0))
		c.p.clear(now)
	}
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// violation records a protocol violation by the server. Called with mu held.
func (c *Call) violation(err error, data []byte) {
	c.st.Errors++
	err = fmt.Errorf("callsim: message %d: %w", c.frames, err)
	if len(c.errs) < maxErrs {
		c.errs = append(c.errs, err)
	}
	c.log.Warn("protocol violation", "err", err, "message", truncate(data, 200))
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// broadcast wakes every waiter. Called with mu held.
func (c *Call) broadcast() {
	if c.waiters == 0 {
		return // nobody holds changed: save a channel per message
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// wait blocks until cond, called with mu held, is true. It returns ErrClosed
// if the call ends first.
func (c *Call) wait(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		if cond() {
			c.mu.Unlock()
			return nil
		}
		ch := c.watchLocked()
		c.mu.Unlock()
		err := c.await(ctx, ch, nil)
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// WaitMark waits until a mark named name has been echoed to the server
// (handed to the socket; the server may not have read it yet).
func (c *Call) WaitMark(ctx context.Context, name string) error {
	return c.wait(ctx, func() bool {
		for _, m := range c.echoed {
			if m == name {
				return true
			}
		}
		return false
	})
}

// WaitPlayed waits until at least n bytes of received audio have been
// played out.
func (c *Call) WaitPlayed(ctx context.Context, n int) error {
	return c.wait(ctx, func() bool { return c.p.nPlayed >= n })
}

// WaitIdle waits until audio has been played, nothing is left to play, no
// mark is pending, and no message has arrived for quiet: the server seems
// done with the call. It returns ErrClosed if the socket ends first.
func (c *Call) WaitIdle(ctx context.Context, quiet time.Duration) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		// Every mark received is echoed once, whether played or cleared.
		ready := c.p.nPlayed > 0 && c.p.buffered == 0 && c.st.Echoed == c.st.Marks
		var left time.Duration
		if ready {
			since := c.lastRecv
			if c.p.dryAt.After(since) {
				since = c.p.dryAt
			}
			left = quiet - time.Since(since)
		}
		if ready && left <= 0 {
			c.mu.Unlock()
			return nil
		}
		ch := c.watchLocked()
		c.mu.Unlock()
		var tick <-chan time.Time
		if ready {
			if timer == nil {
				timer = time.NewTimer(left)
			} else {
				timer.Reset(left)
			}
			tick = timer.C
		}
		if err := c.await(ctx, ch, tick); err != nil {
			return err
		}
	}
}

// watchLocked returns the channel closed at the call's next change and
// counts the caller as a waiter, so that the change is broadcast. Called
// with mu held; pass the channel to await.
func (c *Call) watchLocked() <-chan struct{} {
	c.waiters++
	return c.changed
}

// await waits on ch from watchLocked, or tick, until one fires, the call
// ends (ErrClosed) or ctx is done, and stops counting the caller as a
// waiter.
func (c *Call) await(ctx context.Context, ch <-chan struct{}, tick <-chan time.Time) error {
	var err error
	select {
	case <-ch:
	case <-tick:
	case <-c.done:
		err = ErrClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.mu.Lock()
	c.waiters--
	c.mu.Unlock()
	return err
}

// Marks returns the names of the marks echoed to the server, in order. An
// echo is listed just before it is written to the socket.
func (c *Call) Marks() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.echoed...)
}

// Played returns the μ-law audio played out to the caller so far (nothing
// with Config.CountOnly).
func (c *Call) Played() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.p.played...)
}

// Received returns all μ-law audio received so far, played or not (nothing
// with Config.CountOnly).
func (c *Call) Received() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.received...)
}

// Messages returns every valid server message received, in order (none
// with Config.CountOnly).
func (c *Call) Messages() []twilio.Outbound {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]twilio.Outbound(nil), c.msgs...)
}

// Errs returns the protocol violations seen (the first 100; Stats.Errors
// counts all). Each wraps twilio.ErrProtocol.
func (c *Call) Errs() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

// ClearTimes returns when each clear arrived, as time since start was
// sent (stream time: the caller's frame n leaves n × 20 ms after start).
func (c *Call) ClearTimes() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.clearsAt...)
}

// Stats returns the call's counters so far.
func (c *Call) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.st
	s.Played = c.p.nPlayed
	s.Cleared = c.p.cleared
	s.Discarded = c.p.discarded
	s.MaxBuffered = bytesDuration(c.p.maxBuffered)
	s.Underruns = c.p.underruns
	s.UnderrunTime = c.p.gap
	return s
}
