package audio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/callcast/callcast/internal/audio/internal/mp3"
)

// decoderDelay is the delay of the MPEG Layer III synthesis filter bank
// (528 samples, plus one), which LAME's recorded encoder delay leaves out.
const decoderDelay = 529

// lameDelay is LAME's encoder delay, assumed when a file does not record
// one.
const lameDelay = 576

// mp3Reader decodes MP3 frame by frame and delivers mono samples, with
// Xing/Info/VBRI frames dropped and each segment's encoder delay and
// padding trimmed. A segment is the audio behind one tag frame: a
// concatenation of tagged MP3 files has several. When the sample rate
// changes it ends what it delivers at that rate with a rateChange error,
// and goes on at the new rate on the next read.
type mp3Reader struct {
	frames *frameReader
	dec    mp3.Decoder
	rate   int  // sample rate of what is being delivered
	held   bool // frames.buf holds a frame not yet decoded

	tag      vbrTag
	segment  int64 // audio frames of the current segment decoded
	skip     int64 // samples still to drop at the start of the segment
	left     int64 // samples still to deliver in the segment; -1 when unknown
	pcm      [1152]float32
	pend     []float32 // decoded, not delivered yet
	err      error     // sticky
	flush    bool      // delivering silence up to the recorded length
	failures int       // bad frames, fewer than goodFrames apart
	lastBad  int64     // frame count at the last bad frame
}

// rateChange ends the samples at one rate: the next samples are at rate.
type rateChange struct{ rate int }

func (e *rateChange) Error() string {
	return fmt.Sprintf("audio: sample rate changes to %d Hz", e.rate)
}

// maxBadFrames is how many undecodable frames, each fewer than goodFrames
// after the last, are replaced by silence before the stream is given up as
// corrupt.
const (
	maxBadFrames = 3
	goodFrames   = 8
)

func parseMP3(br *bufio.Reader) (*mp3Reader, Info, error) {
	tags, err := skipID3v2(br)
	if err != nil {
		return nil, Info{}, err
	}
	h, junk, err := findFirstFrame(br)
	if err != nil {
		return nil, Info{}, err
	}
	if h.layer != 3 {
		return nil, Info{}, fmt.Errorf("%w: %s (only Layer III is supported); convert with: ffmpeg -i in.mp2 out.mp3", ErrUnsupported, h)
	}
	fr := &frameReader{br: br, cur: h, pos: tags + junk}
	if err := fr.next(); err != nil {
		return nil, Info{}, fmt.Errorf("%w: mp3: first frame: %w", ErrBadInput, err)
	}
	m := &mp3Reader{frames: fr, rate: h.rate, held: true, left: -1}
	info := Info{Format: "mp3", SampleRate: h.rate, Channels: 2}
	if h.mono {
		info.Channels = 1
	}
	tag := parseVBRTag(fr.buf, h)
	if tag.found {
		m.held = false // the tag frame is not audio
	}
	m.startSegment(tag, h)
	if m.left >= 0 {
		info.Duration = time.Duration(m.left * int64(time.Second) / int64(h.rate))
	}
	return m, info, nil
}

// startSegment sets up the trimming of a segment that starts with tag (or
// with no tag at all).
func (m *mp3Reader) startSegment(tag vbrTag, h mpegHeader) {
	m.tag = tag
	m.segment = 0
	m.left = -1
	if tag.lame {
		m.skip = int64(tag.delay) + decoderDelay
	} else {
		// Nothing records the encoder delay: assume LAME's, by far the
		// most common encoder (its tag is left out when the first frame
		// is too small to hold it).
		m.skip = lameDelay + decoderDelay
	}
	if tag.frames > 0 {
		total := tag.frames * int64(h.samples)
		if tag.lame {
			total -= int64(tag.delay + tag.padding)
		} else {
			total -= m.skip // the end padding is unknown and stays
		}
		if total > 0 {
			m.left = total
		}
	}
}

// readMono implements monoReader.
func (m *mp3Reader) readMono(dst []float32) (n int, err error) {
	if m.err != nil {
		return 0, m.err
	}
	defer func() {
		if err != nil && err != io.EOF {
			if _, ok := err.(*rateChange); !ok {
				m.err = err
			}
		}
	}()
	for n < len(dst) {
		if m.flush {
			k := int(min(int64(len(dst)-n), m.left))
			clear(dst[n : n+k])
			n += k
			m.left -= int64(k)
			if m.left == 0 {
				m.flush = false
			}
			continue
		}
		if len(m.pend) > 0 {
			k := min(len(m.pend), len(dst)-n)
			if m.left >= 0 {
				k = int(min(int64(k), m.left))
				m.left -= int64(k)
			}
			copy(dst[n:], m.pend[:k])
			n += k
			m.pend = m.pend[k:]
			if m.left == 0 {
				// The segment's recorded length is delivered: the rest of
				// the frame is padding. Frames that follow without a tag
				// of their own play on, their length unknown.
				m.pend = nil
				m.left = -1
				m.skip = 0
				m.tag = vbrTag{}
			}
			continue
		}
		if !m.held {
			if err := m.frames.next(); err != nil {
				if end := m.end(err); end != nil || !m.flush {
					return n, end
				}
				continue
			}
		}
		m.held = false
		h := m.frames.h
		if h.rate != m.rate {
			if n > 0 {
				m.held = true
				return n, nil
			}
			m.rate = h.rate
			m.dec.Reset()
			m.held = true
			return 0, &rateChange{rate: h.rate}
		}
		if tag := parseVBRTag(m.frames.buf, h); tag.found {
			// Another file's tag frame: a new segment, decoded afresh.
			m.dec.Reset()
			m.startSegment(tag, h)
			continue
		}
		m.segment++
		if b, _ := m.frames.br.Peek(6); len(b) == 6 {
			if n, ok := parseHeader(b); ok && n.sameStream(h) {
				m.dec.NextMainDataBegin(mp3.MainDataBegin(b))
			}
		}
		k, err := m.decode(m.frames.buf)
		if err != nil {
			if !m.conceal() {
				return n, fmt.Errorf("%w: mp3: frame %d at byte %d: %w (%d bad frames close together)", ErrBadInput, m.frames.frames, m.frames.at, err, m.failures+1)
			}
			k = h.samples
			m.concealFrame(m.frames.buf, k)
		}
		m.pend = m.pcm[:k]
		if m.skip > 0 {
			d := min(m.skip, int64(k))
			m.skip -= d
			m.pend = m.pend[d:]
		}
	}
	return n, nil
}

// decode decodes the frame with panics turned into errors.
func (m *mp3Reader) decode(frame []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("decoder panic: %v", r)
		}
	}()
	h, err := m.dec.DecodeFrameMono(frame, m.pcm[:])
	return h.Samples, err
}

// concealFrame fills m.pcm[:k] in place of a frame that would not
// decode: silence, entered and left without a click, and the bit
// reservoir dropped so that nothing of the bad frame leaks into the frames
// after it (see mp3.Decoder.ConcealMono). After a decoder panic the
// decoder starts afresh.
func (m *mp3Reader) concealFrame(frame []byte, k int) {
	defer func() {
		if recover() != nil {
			m.dec.Reset()
			clear(m.pcm[:k])
		}
	}()
	h, ok := mp3.ParseHeader(frame)
	if !ok || h.Samples != k {
		m.dec.Reset()
		clear(m.pcm[:k])
		return
	}
	m.dec.ConcealMono(h, m.pcm[:k])
}

// conceal reports whether a frame that would not decode (or a decoder
// panic) is to be replaced by a frame of silence, so a damaged file keeps
// its length and plays on.
func (m *mp3Reader) conceal() bool {
	f := m.frames.frames
	if m.failures >= maxBadFrames && f-m.lastBad < goodFrames {
		return false
	}
	if f-m.lastBad >= goodFrames {
		m.failures = 0
	}
	m.failures++
	m.lastBad = f
	return true
}

// end turns the frame reader's final error into the pipeline's: nil when
// the rest of the recorded length is to be filled with silence.
func (m *mp3Reader) end(err error) error {
	if !errors.Is(err, io.EOF) || m.left == 0 {
		return err
	}
	if m.frames.truncated {
		return fmt.Errorf("%w: mp3: input ends inside frame %d at byte %d", ErrTruncated, m.frames.frames+1, m.frames.pos)
	}
	if m.left > 0 && m.segment < m.tag.frames {
		return fmt.Errorf("%w: mp3: %d of %d frames present", ErrTruncated, m.segment, m.tag.frames)
	}
	if m.left > 0 && m.left <= decoderDelay {
		// Every frame is here, but the encoder padded less than the
		// decoder delay: the last samples never come out of the filter
		// bank. Fill the recorded length with silence.
		m.flush = true
		return nil
	}
	return io.EOF
}
