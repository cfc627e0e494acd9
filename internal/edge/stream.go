package edge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
)

// Streamed playbacks. A producer publishes a playback's audio on
// bus.PlaybackAudio(id) as raw chunks numbered by bus.HeaderSeq; the edge
// puts them back in order, decodes them with package audio (the same
// decoders, downmix, resampler and μ-law encoder as files) and sends the
// μ-law to Twilio itself, paced by the marks it sees echoed (see pacer.go).

// Limits of a streamed playback.
const (
	// MaxStreamAhead is the decoded audio held ahead of playout per
	// playback: 10 minutes of μ-law. The decoder waits while it is full.
	MaxStreamAhead = 10 * 60 * audio.SampleRate
	// MaxStreamRaw is the producer's undecoded bytes held per playback.
	// Past both limits the playback fails with bus.CodeTooLarge.
	MaxStreamRaw = 64 << 20
	// reorderChunks is how many chunks after a missing one are held
	// before the missing one is given up for lost.
	reorderChunks = 64
	// reorderWait is how long a missing chunk is waited for.
	reorderWait = 100 * time.Millisecond
	// maxGap bounds the silence played for one run of missing chunks.
	maxGap = time.Second
	// DefaultStreamBufferBytes is Config.StreamBufferBytes by default:
	// what every streamed playback of an edge may hold ahead of playout,
	// together.
	DefaultStreamBufferBytes = 512 << 20
)

// errSourceClosed ends a streamed playback's decoder when the playback ends.
var errSourceClosed = errors.New("edge: streamed playback ended")

// chunkStats counts what a stream's chunks did; the controller adds them
// to the metrics.
type chunkStats struct {
	outOfOrder int // arrived ahead of a missing one
	missing    int // never arrived: played as silence
	late       int // arrived after being given up, or twice: dropped
	bad        int // no or a bad Callcast-Seq: dropped
}

// streamSource holds one streamed playback's audio: chunks in, μ-law out.
type streamSource struct {
	format bus.StreamFormat
	wake   func() // pokes the pacer: audio, the end or a failure is there
	idle   time.Duration

	mu      sync.Mutex
	cond    sync.Cond // the decoder waits on it for input or room
	next    uint64    // the next Callcast-Seq due
	held    map[uint64]heldChunk
	endSeq  uint64 // seq of the end message once seen; 0: not yet
	endSeen bool
	inEnded bool // every chunk up to the end was taken in
	gap     *time.Timer
	lastLen int // bytes of the last chunk taken: a missing chunk's likely size

	// Silence in the raw format, for missing chunks: silence is the byte,
	// align the bytes of a sample frame, perSec the bytes of a second; 0
	// while unknown (a wav header not seen yet, or mp3, where the decoder
	// conceals what is missing instead).
	silence byte
	align   int
	perSec  int
	head    []byte // a wav stream's first bytes, until its layout is known

	raw     byteQueue // undecoded input (pcm, wav, mp3)
	out     byteQueue // μ-law ready to send
	decoded bool      // out holds the rest of the audio: nothing more comes
	decErr  error     // why decoding ended early, if it did
	fail    *bus.Error
	closed  bool
	stats   chunkStats
	timer   *time.Timer // idle timeout
	sub     *nats.Subscription
	limit   int64 // bound on the edge's streamHeld; 0: none (see account)

	// Producer media on .out (outaudio.go).
	implicit bool
	in       int64     // bytes taken in
	lastIn   time.Time // when media last came
	marks    []outMark // the producer's marks waiting for their audio
	scratch  []byte
}

type heldChunk struct {
	data []byte
	end  bool
}

func newStreamSource(format bus.StreamFormat, idle time.Duration, wake func()) *streamSource {
	s := &streamSource{format: format, wake: wake, idle: idle, next: 1}
	s.cond.L = &s.mu
	switch format.Format {
	case bus.FormatMulaw:
		s.silence, s.align, s.perSec = 0xFF, 1, audio.SampleRate
	case bus.FormatPCMS16LE:
		s.align = 2 * format.Channels
		s.perSec = format.SampleRate * s.align
	}
	if idle > 0 {
		s.timer = time.AfterFunc(idle, s.stalled)
	}
	return s
}

// account counts what the source holds in held, and fails it with
// bus.CodeTooLarge rather than take held past limit (≤ 0: no bound). A
// source not accounted for holds memory of someone else's (the edge's
// audio cache).
func (s *streamSource) account(held *atomic.Int64, limit int64) {
	s.raw.held, s.out.held = held, held
	s.limit = max(limit, 0)
}

// decodes reports whether the source needs a decoder goroutine (run).
func (s *streamSource) decodes() bool { return s.format.Format != bus.FormatMulaw }

// onMsg takes one message of bus.PlaybackAudio.
func (s *streamSource) onMsg(msg *nats.Msg) {
	end := msg.Header.Get(bus.HeaderEnd) == "true"
	v := msg.Header.Get(bus.HeaderSeq)
	seq, err := parseSeq(v)
	if err != nil && !(end && v == "") { // an end may go without a number
		s.mu.Lock()
		s.stats.bad++
		s.mu.Unlock()
		return
	}
	s.take(seq, end, msg.Data)
}

// maxSeq bounds Callcast-Seq, far beyond any stream's length.
const maxSeq = 1 << 53

// parseSeq parses a Callcast-Seq value: a decimal number from 1 to maxSeq.
func parseSeq(v string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 || n > maxSeq {
		return 0, fmt.Errorf("edge: bad %s %.32q", bus.HeaderSeq, v)
	}
	return n, nil
}

// take files chunk seq (0: an end without a number of its own, which comes
// after every chunk seen) and passes on what is now in order.
func (s *streamSource) take(seq uint64, end bool, data []byte) {
	s.mu.Lock()
	if s.closed || s.inEnded || s.fail != nil {
		if s.inEnded {
			s.stats.late++
		}
		s.mu.Unlock()
		return
	}
	if s.timer != nil {
		s.timer.Reset(s.idle)
	}
	if seq == 0 {
		seq = s.next
		for k := range s.held {
			seq = max(seq, k+1)
		}
	}
	switch {
	case seq < s.next || s.isHeld(seq) || s.endSeen && seq > s.endSeq:
		s.stats.late++
		s.mu.Unlock()
		return
	case seq == s.next:
		s.accept(data, end, seq)
		s.next++
	default:
		if s.held == nil {
			s.held = make(map[uint64]heldChunk)
		}
		s.stats.outOfOrder++
		s.held[seq] = heldChunk{data: bytes.Clone(data), end: end}
		if end {
			s.endSeen, s.endSeq = true, seq
		}
	}
	s.drainHeld()
	if len(s.held) > reorderChunks {
		s.skipGap()
	}
	if len(s.held) > 0 && s.gap == nil {
		s.gap = time.AfterFunc(reorderWait, s.gapExpired)
	}
	s.mu.Unlock()
	s.wake()
}

func (s *streamSource) isHeld(seq uint64) bool {
	_, ok := s.held[seq]
	return ok
}

// accept takes the in-order chunk data.
func (s *streamSource) accept(data []byte, end bool, seq uint64) {
	if end {
		s.endSeen, s.endSeq = true, seq
	}
	if len(data) > 0 {
		s.lastLen = len(data)
		s.input(data)
	}
}

// drainHeld passes on the held chunks that are now in order, and notes the
// end once everything up to it is in.
func (s *streamSource) drainHeld() {
	for {
		c, ok := s.held[s.next]
		if !ok {
			break
		}
		delete(s.held, s.next)
		s.accept(c.data, c.end, s.next)
		s.next++
	}
	if len(s.held) == 0 && s.gap != nil {
		s.gap.Stop()
		s.gap = nil
	}
	if s.endSeen && s.next > s.endSeq && !s.inEnded {
		s.inEnded = true
		if s.timer != nil {
			s.timer.Stop()
		}
		if !s.decodes() {
			s.decoded = true
		}
		s.cond.Broadcast()
	}
}

// skipGap gives up the chunks missing before the first one held: they are
// played as silence of the length of the chunk before them.
func (s *streamSource) skipGap() {
	first := uint64(0)
	for k := range s.held {
		if first == 0 || k < first {
			first = k
		}
	}
	if first == 0 {
		if s.endSeen { // only the end was missing
			first = s.endSeq + 1
		} else {
			return
		}
	}
	missing := first - s.next
	s.stats.missing += int(min(missing, 1<<20))
	if s.align > 0 && s.perSec > 0 {
		n := int64(s.lastLen) * int64(min(missing, 1<<20))
		n = min(n, int64(s.perSec)*int64(maxGap/time.Millisecond)/1000)
		n -= n % int64(s.align)
		if n > 0 {
			s.input(bytes.Repeat([]byte{s.silence}, int(n)))
		}
	}
	s.next = first
	s.drainHeld()
}

// gapExpired runs reorderWait after a chunk went missing.
func (s *streamSource) gapExpired() {
	s.mu.Lock()
	s.gap = nil
	if !s.closed && len(s.held) > 0 {
		s.skipGap()
		if len(s.held) > 0 {
			s.gap = time.AfterFunc(reorderWait, s.gapExpired)
		}
	}
	s.mu.Unlock()
	s.wake()
}

// input appends in-order bytes of the producer's format.
func (s *streamSource) input(p []byte) {
	if s.limit > 0 && s.raw.held.Load()+int64(len(p)) > s.limit {
		s.failLocked(bus.CodeTooLarge, fmt.Sprintf("the edge holds %d MiB of streamed audio ahead of playout across its calls (STREAM_BUFFER_BYTES)", s.limit>>20))
		return
	}
	if s.format.Format == bus.FormatMulaw {
		if s.out.len()+len(p) > MaxStreamAhead {
			s.failLocked(bus.CodeTooLarge, fmt.Sprintf("more than %s of audio ahead of playout", time.Duration(MaxStreamAhead/audio.SampleRate)*time.Second))
			return
		}
		s.out.write(p)
		return
	}
	if s.raw.len()+len(p) > MaxStreamRaw {
		s.failLocked(bus.CodeTooLarge, fmt.Sprintf("more than %s of audio and %d MiB ahead of playout", time.Duration(MaxStreamAhead/audio.SampleRate)*time.Second, MaxStreamRaw>>20))
		return
	}
	if s.format.Format == bus.FormatWAV && s.align == 0 {
		s.head = append(s.head, p[:min(len(p), 4096-len(s.head))]...)
		s.learnWAV()
	}
	s.raw.write(p)
	s.cond.Broadcast()
}

// learnWAV reads a wav stream's layout from its first bytes, so that a
// missing chunk of its data can be played as silence.
func (s *streamSource) learnWAV() {
	silence, align, perSec, ok := wavLayout(s.head)
	if !ok {
		if len(s.head) >= 4096 {
			s.align = -1 // never: no silence for this stream
			s.head = nil
		}
		return
	}
	s.silence, s.align, s.perSec = silence, align, perSec
	s.head = nil
}

// wavLayout reads the fmt chunk of a RIFF WAVE header once its data chunk
// has begun: the byte of silence, the bytes of a sample frame and of a
// second.
func wavLayout(b []byte) (silence byte, align, perSec int, ok bool) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, 0, 0, false
	}
	le := binary.LittleEndian
	haveFmt := false
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(le.Uint32(b[off+4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if size < 16 || body+16 > len(b) {
				return 0, 0, 0, false
			}
			tag, rate, al := le.Uint16(b[body:]), le.Uint32(b[body+4:]), le.Uint16(b[body+12:])
			if tag == 0xFFFE && size >= 40 && body+26 <= len(b) {
				tag = le.Uint16(b[body+24:])
			}
			if al == 0 || rate == 0 {
				return 0, 0, 0, false
			}
			if tag == 7 {
				silence = 0xFF
			}
			align, perSec, haveFmt = int(al), int(rate)*int(al), true
		case "data":
			return silence, align, perSec, haveFmt
		}
		if size < 0 || size > 1<<20 {
			return 0, 0, 0, false
		}
		off = body + size + size&1
	}
	return 0, 0, 0, false
}

// stalled runs when the producer sent nothing for the idle timeout.
func (s *streamSource) stalled() {
	s.mu.Lock()
	if !s.inEnded && !s.closed {
		s.failLocked(bus.CodeStalled, fmt.Sprintf("no audio and no end for %s", s.idle))
	}
	s.mu.Unlock()
	s.wake()
}

func (s *streamSource) failLocked(code, msg string) {
	if s.fail == nil {
		s.fail = &bus.Error{Code: code, Message: msg}
	}
	s.cond.Broadcast()
}

// close ends the source: no more chunks are taken and the decoder returns.
func (s *streamSource) close() {
	s.mu.Lock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	if s.gap != nil {
		s.gap.Stop()
		s.gap = nil
	}
	sub := s.sub
	s.sub = nil
	s.raw.release()
	s.out.release()
	s.cond.Broadcast()
	s.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// Read is what the decoder reads: the producer's bytes in order, blocking
// until there are some, io.EOF after the end.
func (s *streamSource) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.raw.len() == 0 && !s.inEnded && !s.closed && s.fail == nil {
		s.cond.Wait()
	}
	switch {
	case s.closed || s.fail != nil:
		return 0, errSourceClosed
	case s.raw.len() == 0:
		return 0, io.EOF
	}
	return s.raw.read(p), nil
}

// run decodes the producer's bytes into μ-law until the end, a failure or
// close. A pcm_s16le stream is given a WAV header, so that it takes the
// very path of a WAV file: downmix, resampler, μ-law encoder.
func (s *streamSource) run() {
	var src io.Reader = s
	if s.format.Format == bus.FormatPCMS16LE {
		src = io.MultiReader(bytes.NewReader(audio.AppendWAVHeader(nil, s.format.SampleRate, s.format.Channels, -1)), s)
	}
	t, err := newTranscoder(src)
	if err != nil {
		s.decodeEnd(err)
		return
	}
	var frame [audio.FrameSize]byte
	for {
		n, err := t.Read(frame[:])
		if n > 0 {
			s.mu.Lock()
			for s.out.len() >= MaxStreamAhead && !s.closed && s.fail == nil {
				s.cond.Wait()
			}
			if s.closed || s.fail != nil {
				s.mu.Unlock()
				return
			}
			s.out.write(frame[:n])
			s.mu.Unlock()
			s.wake()
		}
		if err != nil {
			s.decodeEnd(err)
			return
		}
	}
}

// newTranscoder is audio.NewTranscoder with the MP3 decoder's panics (a
// history of index-out-of-range on bad input) made errors.
func newTranscoder(r io.Reader) (t *audio.Transcoder, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("%w: decoder panic: %v", audio.ErrBadInput, p)
		}
	}()
	return audio.NewTranscoder(r, audio.Options{})
}

// decodeEnd records how decoding ended.
func (s *streamSource) decodeEnd(err error) {
	s.mu.Lock()
	if !errors.Is(err, errSourceClosed) {
		s.decoded = true
		if err != io.EOF {
			s.decErr = err
		}
	}
	s.mu.Unlock()
	s.wake()
}

// byteQueue is a FIFO of bytes that reuses its buffer: memory follows what
// it holds at most, not what passed through it. With held set, what write
// adds is counted there until it is read, discarded or released.
type byteQueue struct {
	b       []byte
	r       int
	held    *atomic.Int64
	counted int // of the bytes held, those counted in held
}

func (q *byteQueue) len() int { return len(q.b) - q.r }

func (q *byteQueue) write(p []byte) {
	if q.r > 0 && (q.r >= len(q.b)/2 || cap(q.b)-len(q.b) < len(p)) {
		n := copy(q.b, q.b[q.r:])
		q.b, q.r = q.b[:n], 0
	}
	q.b = append(q.b, p...)
	if q.held != nil {
		q.held.Add(int64(len(p)))
		q.counted += len(p)
	}
}

func (q *byteQueue) read(p []byte) int {
	n := copy(p, q.b[q.r:])
	q.discard(n)
	return n
}

// peek returns the first n bytes held, valid until the next write.
func (q *byteQueue) peek(n int) []byte { return q.b[q.r : q.r+n] }

func (q *byteQueue) discard(n int) {
	q.r += n
	if q.r == len(q.b) {
		q.b, q.r = q.b[:0], 0
	}
	if c := min(n, q.counted); c > 0 {
		q.counted -= c
		q.held.Add(-int64(c))
	}
}

// release uncounts what the queue holds: its source has ended.
func (q *byteQueue) release() {
	if q.counted > 0 {
		q.held.Add(-int64(q.counted))
		q.counted = 0
	}
}
