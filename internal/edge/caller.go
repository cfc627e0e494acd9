package edge

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/prefetch"
	"github.com/callcast/callcast/internal/twilio"
	"github.com/callcast/callcast/internal/vad"
)

// Caller audio settings (Config.CallerAudio).
const (
	// CallerAudioListen publishes a call's audio on bus.StreamIn while
	// someone holds a lease on it (bus.StreamListen), or when its start
	// carries the custom parameter callerAudio=on. The default.
	CallerAudioListen = "listen"
	// CallerAudioOn publishes every call's audio.
	CallerAudioOn = "on"
	// CallerAudioOff never publishes caller audio.
	CallerAudioOff = "off"
)

// Defaults and bounds of the caller audio settings.
const (
	DefaultCallerAudioBatch = 20 * time.Millisecond
	MaxCallerAudioBatch     = 200 * time.Millisecond
	DefaultListenLease      = 10 * time.Second
	MaxListenLease          = 60 * time.Second
	minListenLease          = time.Second

	// ParamCallerAudio is the custom parameter of a start that asks for the
	// call's audio to be published whatever the leases (value "on").
	ParamCallerAudio = "callerAudio"
)

// frameBytes is one Twilio caller frame: 20 ms of μ-law.
const frameBytes = 160

// callerMetrics count caller audio and speech.
type callerMetrics struct {
	messages prometheus.Counter
	bytes    prometheus.Counter
	dropped  *prometheus.CounterVec // by reason
	leases   prometheus.Counter
	speech   *prometheus.CounterVec // by event
	bargeIns prometheus.Counter
}

func newCallerMetrics() *callerMetrics {
	return &callerMetrics{
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_caller_audio_messages_total", Help: "Caller audio messages published on callcast.stream.<sid>.in.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_caller_audio_bytes_total", Help: "Caller μ-law bytes published on callcast.stream.<sid>.in.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callcast_edge_caller_audio_dropped_total", Help: "Caller audio frames not published, by reason: publish (the bus refused it), bad_frame (undecodable payload).",
		}, []string{"reason"}),
		leases: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_listen_leases_total", Help: "Leases on caller audio granted or renewed.",
		}),
		speech: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "callcast_edge_speech_events_total", Help: "Speech events detected in callers' audio, by event.",
		}, []string{"event"}),
		bargeIns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_barge_ins_total", Help: "Barge-ins: the caller spoke over an interruptible playback, which was stopped.",
		}),
	}
}

func (m *callerMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.messages, m.bytes, m.dropped, m.leases, m.speech, m.bargeIns}
}

// checkCallerConfig checks and defaults the caller audio settings of c.
func (c *Config) checkCallerConfig() error {
	switch c.CallerAudio {
	case "":
		c.CallerAudio = CallerAudioListen
	case CallerAudioListen, CallerAudioOn, CallerAudioOff:
	default:
		return fmt.Errorf("edge: CALLER_AUDIO %q: want on, off or listen", c.CallerAudio)
	}
	switch c.VAD {
	case "":
		c.VAD = "on"
	case "on", "off":
	default:
		return fmt.Errorf("edge: VAD %q: want on or off", c.VAD)
	}
	if c.CallerAudioBatch == 0 {
		c.CallerAudioBatch = DefaultCallerAudioBatch
	}
	if c.CallerAudioBatch < DefaultCallerAudioBatch || c.CallerAudioBatch > MaxCallerAudioBatch {
		return fmt.Errorf("edge: CALLER_AUDIO_BATCH %v: want 20ms to 200ms", c.CallerAudioBatch)
	}
	if c.ListenLease == 0 {
		c.ListenLease = DefaultListenLease
	}
	if c.ListenLease < minListenLease || c.ListenLease > MaxListenLease {
		return fmt.Errorf("edge: listen lease %v: want 1s to 1m", c.ListenLease)
	}
	return nil
}

// callerAudio is what the edge does with one call's audio: publish it on
// bus.StreamIn while it should, and look for speech in it. The session's
// reader owns it; only the lease is touched by other goroutines.
//
// What every caller frame reads comes first, in one cache line: with
// hundreds of calls, a call's state has left the core's caches by the time
// its next frame comes, and each line it touches is a trip to memory
// (BenchmarkCallerMediaCalls).
type callerAudio struct {
	vad      *vad.Detector // &det, nil: VAD=off
	until    atomic.Int64  // lease end, Unix ns; 0: none
	always   bool          // CALLER_AUDIO=on, or the call asked with callerAudio=on
	leasable bool          // leases may be granted (not CALLER_AUDIO=off)
	// The call's stream SID, here rather than behind a pointer to one
	// more line; sidLen 0: it is longer than sid, see ss.sid.
	sidLen uint8
	sid    [inlineSid]byte

	// The detector, in the same block of memory: its per-frame fields
	// follow the line above.
	det vad.Detector

	ss      *session
	max     int // batch size, bytes
	subject string
	listen  *nats.Subscription

	// The reader's, reused from message to message.
	batch  []byte
	first  twilio.InboundMedia // Chunk and Timestamp of the batch's first frame
	last   int64               // chunk of the batch's last frame
	readAt time.Time           // when the message was read (callerReadHook only)
	out    nats.Msg
	// The values of out's Callcast-Seq and Callcast-Timestamp headers.
	seqHdr, tsHdr []string
}

// inlineSid is how long a stream SID callerAudio keeps in its first cache
// line: what is left of it. Twilio's have 34 characters.
const inlineSid = 45

// setSid keeps the call's stream SID for ours.
func (c *callerAudio) setSid(sid string) {
	c.sidLen = 0
	if len(sid) > 0 && len(sid) <= inlineSid {
		c.sidLen = uint8(copy(c.sid[:], sid))
	}
}

// ours reports whether a media message's stream SID is the call's.
func (c *callerAudio) ours(sid []byte) bool {
	if c.sidLen == 0 {
		return string(sid) == c.ss.sid
	}
	return string(sid) == string(c.sid[:c.sidLen])
}

// callerScratch holds one caller media message while it is handled: the
// message and its decoded audio. Sessions share them through a pool: the
// one a reader gets is the one its core used last, still in its caches,
// where a call's own buffers would have been pushed out by the hundreds
// of calls read since its last frame.
type callerScratch struct{ msg, ulaw []byte }

var callerScratchPool = sync.Pool{New: func() any {
	// A 20 ms frame's message is about 370 bytes, its audio 160.
	return &callerScratch{msg: make([]byte, 0, 512), ulaw: make([]byte, 256)}
}}

func getCallerScratch() *callerScratch { return callerScratchPool.Get().(*callerScratch) }

func putCallerScratch(s *callerScratch) {
	if cap(s.msg) > maxKeptBuf || cap(s.ulaw) > maxKeptBuf {
		return // an outsized message: do not keep its memory
	}
	callerScratchPool.Put(s)
}

// prefetch asks the processor to start loading what the call's next frame
// reads of c and its detector: the reader calls it as soon as a message
// has begun, so that those loads overlap reading and decoding it.
func (c *callerAudio) prefetch() {
	if c == nil {
		return
	}
	prefetch.Range(unsafe.Pointer(c), unsafe.Offsetof(c.det))
	c.det.Prefetch()
}

// startCaller sets up the call's caller audio and subscribes to its listen
// subject; the session calls it on start, before announcing the stream.
func (ss *session) startCaller(st *twilio.Start) error {
	cfg := &ss.srv.cfg
	c := &ss.callerMem
	*c = callerAudio{
		ss:       ss,
		subject:  bus.StreamIn(ss.sid),
		always:   cfg.CallerAudio == CallerAudioOn || cfg.CallerAudio == CallerAudioListen && st.CustomParameters[ParamCallerAudio] == "on",
		leasable: cfg.CallerAudio != CallerAudioOff,
		max:      int(cfg.CallerAudioBatch/time.Millisecond) * 8,
	}
	if cfg.VAD == "on" {
		c.det.Init(vad.Config{})
		c.vad = &c.det
	}
	c.setSid(ss.sid)
	var err error
	if c.listen, err = ss.srv.nc.ChanSubscribe(bus.StreamListen(ss.sid), ss.srv.playRequests()); err != nil {
		return fmt.Errorf("edge: subscribe %s: %w", bus.StreamListen(ss.sid), err)
	}
	ss.caller = c
	return nil
}

// skip reports whether the call's audio is of no use now: no VAD, nobody
// listening. It costs an atomic load while no lease was ever taken.
func (c *callerAudio) skip() bool {
	if c == nil {
		return true
	}
	if c.vad != nil || c.always {
		return false
	}
	return !c.leased()
}

// leased reports whether a lease runs; once it has run out, it flushes
// what is batched.
func (c *callerAudio) leased() bool {
	u := c.until.Load()
	if u == 0 {
		return false
	}
	if time.Now().UnixNano() < u {
		return true
	}
	c.until.CompareAndSwap(u, 0) // unless renewed meanwhile
	c.flush()
	return false
}

// callerReadHook, when set (by tests, before any session starts), sees
// every caller frame read by a session's media fast path, decoded, with the
// time its message had been read from the socket. It may rewrite the frame.
var callerReadHook func(ulaw []byte, readAt time.Time)

// read takes one media message whose first bytes, head, were read already.
//
// It reads the message before it looks at c, whose lines the reader asked
// for (prefetch) as the message began: they come in meanwhile.
func (c *callerAudio) read(head []byte, r io.Reader) error {
	s := getCallerScratch()
	defer putCallerScratch(s)
	var err error
	if s.msg, err = readMessage(append(s.msg[:0], head...), r); err != nil {
		return err
	}
	if c.skip() {
		return nil
	}
	if callerReadHook != nil {
		c.readAt = time.Now()
	}
	c.take(s.msg, s)
	return nil
}

// take handles one media message from Twilio, data, decoding its audio
// into s.
func (c *callerAudio) take(data []byte, s *callerScratch) {
	in, ok := twilio.CutMedia(data)
	if !ok {
		msg, err := twilio.ParseMessage(data)
		if err == nil {
			in, err = twilio.MediaOf(msg)
		}
		if err != nil {
			c.ss.srv.metrics.errors.WithLabelValues("bad_message").Inc()
			c.ss.log.Warn("ignoring invalid message", "err", err, "bytes", len(data))
			return
		}
	}
	if !c.ours(in.StreamSid) {
		c.ss.srv.metrics.errors.WithLabelValues("wrong_stream").Inc()
		c.ss.log.Warn("ignoring message for another stream", "event", twilio.EventMedia, "msg_stream_sid", string(in.StreamSid))
		return
	}
	if n := base64.StdEncoding.DecodedLen(len(in.Payload)); len(s.ulaw) < n {
		s.ulaw = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode(s.ulaw, in.Payload)
	if err != nil || n == 0 || len(in.Payload)%4 != 0 {
		c.ss.srv.metrics.caller.dropped.WithLabelValues("bad_frame").Inc()
		return
	}
	ulaw := s.ulaw[:n]
	if callerReadHook != nil && !c.readAt.IsZero() {
		callerReadHook(ulaw, c.readAt)
		c.readAt = time.Time{}
	}
	if c.always || c.leased() {
		c.add(in.Chunk, in.Timestamp, ulaw)
	}
	if c.vad != nil {
		c.detect(ulaw, in.Timestamp)
	}
}

// add batches one frame for bus.StreamIn. A message holds consecutive
// frames only: a frame that does not follow the last one (lost, repeated or
// out of order) starts a new message, and so does a frame of an unusual
// size, which travels alone, so that Seq + len/160 is the next message's
// Seq unless frames were lost or reordered.
func (c *callerAudio) add(chunk, ts int64, ulaw []byte) {
	odd := len(ulaw) != frameBytes
	if len(c.batch) > 0 && (chunk != c.last+1 || odd) {
		c.flush()
	}
	if len(c.batch) == 0 {
		c.first.Chunk, c.first.Timestamp = chunk, ts
	}
	c.batch = append(c.batch, ulaw...)
	c.last = chunk
	if len(c.batch) >= c.max || odd {
		c.flush()
	}
}

// flush publishes the batch.
func (c *callerAudio) flush() {
	if len(c.batch) == 0 {
		return
	}
	m := c.ss.srv.metrics.caller
	if c.out.Header == nil { // on first use: most calls never publish
		c.seqHdr, c.tsHdr = []string{""}, []string{""}
		c.out = nats.Msg{Subject: c.subject, Header: nats.Header{bus.HeaderSeq: c.seqHdr, bus.HeaderTimestamp: c.tsHdr}}
	}
	c.seqHdr[0] = strconv.FormatInt(c.first.Chunk, 10) // the header's own values: no map lookups
	c.tsHdr[0] = strconv.FormatInt(c.first.Timestamp, 10)
	c.out.Data = c.batch
	if err := c.ss.srv.nc.PublishMsg(&c.out); err != nil { // copies the data
		m.dropped.WithLabelValues("publish").Add(float64((len(c.batch) + frameBytes - 1) / frameBytes))
	} else {
		m.messages.Inc()
		m.bytes.Add(float64(len(c.batch)))
	}
	c.batch = c.batch[:0]
}

// close flushes what is batched and stops taking leases. The session calls
// it once its reader has returned.
func (c *callerAudio) close() {
	if c == nil {
		return
	}
	if c.listen != nil {
		_ = c.listen.Unsubscribe()
	}
	if c.always || c.until.Load() != 0 {
		c.flush()
	}
}

// serveListen grants or renews a lease on a call's caller audio.
func (s *Server) serveListen(msg *nats.Msg) {
	sid := strings.TrimSuffix(strings.TrimPrefix(msg.Subject, "callcast.stream."), ".listen")
	reply := bus.ListenReply{Type: bus.TypeListenReply}
	var req bus.ListenRequest
	s.mu.Lock()
	ss := s.streams[sid]
	s.mu.Unlock()
	switch {
	case len(bytes.TrimSpace(msg.Data)) > 0 && json.Unmarshal(msg.Data, &req) != nil || req.LeaseMs < 0:
		reply.Error = &bus.Error{Code: bus.CodeBadRequest, Message: "want {\"leaseMs\":…} or an empty body"}
	case ss == nil || ss.caller == nil:
		reply.Error = &bus.Error{Code: bus.CodeUnknownStream, Message: "the stream has ended"}
	case !ss.caller.leasable:
		reply.Error = &bus.Error{Code: bus.CodeUnavailable, Message: "caller audio is off on this edge (CALLER_AUDIO=off)"}
	default:
		lease := s.cfg.ListenLease
		if req.LeaseMs > 0 {
			lease = min(max(time.Duration(req.LeaseMs)*time.Millisecond, minListenLease), MaxListenLease)
		}
		until := time.Now().Add(lease).UnixNano()
		for {
			old := ss.caller.until.Load()
			if old >= until || ss.caller.until.CompareAndSwap(old, until) {
				break
			}
		}
		s.metrics.caller.leases.Inc()
		reply.LeaseMs = lease.Milliseconds()
		reply.Subject = bus.StreamIn(sid)
	}
	data, _ := json.Marshal(reply)
	if err := msg.Respond(data); err != nil {
		s.log.Warn("listen reply failed", "stream_sid", sid, "err", err)
	}
}
