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

// mp3Reader decodes MP3 with the patched go-mp3 and delivers mono samples,
// with the Xing/Info/VBRI frame dropped and the encoder delay and padding
// trimmed.
type mp3Reader struct {
	frames *frameReader
	dec    *mp3.Decoder // nil until the first read
	mono   bool
	tag    vbrTag

	skip  int64  // samples still to drop at the start
	left  int64  // samples still to deliver; -1 when unknown
	raw   []byte // decoder output, s16le stereo
	err   error  // sticky
	flush bool   // delivering silence up to the recorded length

	spf      int   // samples per frame
	silence  int64 // samples of silence to deliver in place of a bad frame
	failures int   // bad frames, fewer than goodFrames apart
	lastBad  int64 // frame count at the last bad frame
}

// maxBadFrames is how many undecodable frames, each fewer than goodFrames
// after the last, are replaced by silence before the stream is given up as
// corrupt. (After a bad frame the decoder restarts without its bit
// reservoir, so the next frame or two decode to silence too, bad or not.)
const (
	maxBadFrames = 3
	goodFrames   = 8
)

func parseMP3(br *bufio.Reader) (*mp3Reader, Info, error) {
	if _, err := skipID3v2(br); err != nil {
		return nil, Info{}, err
	}
	h, err := findFirstFrame(br)
	if err != nil {
		return nil, Info{}, err
	}
	if h.layer != 3 {
		return nil, Info{}, fmt.Errorf("%w: %s (only Layer III is supported); convert with: ffmpeg -i in.mp2 out.mp3", ErrUnsupported, h)
	}
	fr := &frameReader{br: br, first: h}
	if err := fr.next(); err != nil {
		return nil, Info{}, fmt.Errorf("%w: mp3: first frame: %w", ErrBadInput, err)
	}
	m := &mp3Reader{frames: fr, mono: h.mono, left: -1, spf: h.samples}
	info := Info{Format: "mp3", SampleRate: h.rate, Channels: 2}
	if h.mono {
		info.Channels = 1
	}
	m.tag = parseVBRTag(fr.buf, h)
	if m.tag.found {
		// The tag frame decodes to silence: never hand it to the decoder.
		fr.off = len(fr.buf)
		fr.frames = 0
	}
	if m.tag.lame {
		m.skip = int64(m.tag.delay) + decoderDelay
	} else {
		// Nothing records the encoder delay: assume LAME's, by far the
		// most common encoder (its tag is left out when the first frame
		// is too small to hold it).
		m.skip = lameDelay + decoderDelay
	}
	if m.tag.frames > 0 {
		total := m.tag.frames * int64(h.samples)
		if m.tag.lame {
			total -= int64(m.tag.delay + m.tag.padding)
		} else {
			total -= m.skip // the end padding is unknown and stays
		}
		if total > 0 {
			m.left = total
			info.Duration = time.Duration(total * int64(time.Second) / int64(h.rate))
		}
	}
	return m, info, nil
}

// readMono implements monoReader.
func (m *mp3Reader) readMono(dst []float32) (n int, err error) {
	if m.err != nil {
		return 0, m.err
	}
	defer func() {
		if err != nil && err != io.EOF {
			m.err = err
		}
	}()
	if m.flush {
		k := int(min(int64(len(dst)), m.left))
		clear(dst[:k])
		m.left -= int64(k)
		if m.left == 0 {
			return k, io.EOF
		}
		return k, nil
	}
	if m.left == 0 {
		return 0, m.end(io.EOF)
	}
	if len(dst) == 0 {
		return 0, nil
	}
	if m.silence > 0 {
		// In place of a frame that would not decode.
		d := min(m.skip, m.silence)
		m.skip -= d
		m.silence -= d
		k := min(int64(len(dst)), m.silence)
		if m.left >= 0 {
			k = min(k, m.left)
			m.left -= k
		}
		clear(dst[:k])
		m.silence -= k
		return int(k), nil
	}
	if m.dec == nil {
		dec, err := m.newDecoder()
		if err != nil {
			if m.conceal(err) {
				return 0, nil
			}
			return 0, m.end(err)
		}
		m.dec = dec
	}
	want := len(dst)
	if m.left > 0 && int64(want) > m.left {
		want = int(m.left)
	}
	if cap(m.raw) < want*4 {
		m.raw = make([]byte, want*4)
	}
	for {
		raw := m.raw[:want*4]
		k, err := m.decode(raw)
		k &^= 3 // go-mp3 delivers whole 4-byte stereo samples
		samples := int64(k / 4)
		if m.skip > 0 {
			d := min(m.skip, samples)
			m.skip -= d
			raw = raw[d*4:]
			samples -= d
		}
		if samples > 0 || err != nil {
			if m.mono { // go-mp3 duplicates a mono channel
				for i := range int(samples) {
					f := raw[4*i : 4*i+2 : 4*i+2]
					dst[i] = float32(int16(uint16(f[0]) | uint16(f[1])<<8))
				}
			} else {
				for i := range int(samples) {
					f := raw[4*i : 4*i+4 : 4*i+4]
					l := int16(uint16(f[0]) | uint16(f[1])<<8)
					r := int16(uint16(f[2]) | uint16(f[3])<<8)
					dst[i] = 0.5 * (float32(l) + float32(r))
				}
			}
			if m.left > 0 {
				m.left -= samples
			}
			if err != nil {
				if m.conceal(err) {
					return int(samples), nil
				}
				return int(samples), m.end(err)
			}
			return int(samples), nil
		}
	}
}

// conceal reports whether err, a frame that would not decode (or a decoder
// panic), is to be replaced by a frame of silence, so a damaged file keeps
// its length and plays on; the decoder restarts at the next frame.
func (m *mp3Reader) conceal(err error) bool {
	if errors.Is(err, io.EOF) || m.failures >= maxBadFrames && m.frames.frames-m.lastBad < goodFrames {
		return false
	}
	if m.frames.frames-m.lastBad >= goodFrames {
		m.failures = 0
	}
	m.failures++
	m.lastBad = m.frames.frames
	m.frames.off = len(m.frames.buf) // the rest of the bad frame
	m.dec = nil
	m.silence = int64(m.spf)
	return true
}

// end turns the decoder's final error into the pipeline's.
func (m *mp3Reader) end(err error) error {
	if !errors.Is(err, io.EOF) || m.left == 0 {
		return err
	}
	if m.frames.truncated {
		return fmt.Errorf("%w: mp3: input ends inside frame %d", ErrTruncated, m.frames.frames)
	}
	if m.left > 0 && m.frames.frames < m.tag.frames {
		return fmt.Errorf("%w: mp3: %d of %d frames present", ErrTruncated, m.frames.frames, m.tag.frames)
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

func (m *mp3Reader) newDecoder() (dec *mp3.Decoder, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decode mp3: decoder panic: %v", ErrBadInput, p)
		}
	}()
	dec, err = mp3.NewDecoder(m.frames)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: decode mp3: %w", ErrBadInput, err)
	}
	return dec, nil
}

// decode reads from go-mp3 with panics turned into errors.
func (m *mp3Reader) decode(p []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("%w: decode mp3: decoder panic: %v", ErrBadInput, r)
		}
	}()
	n, err = io.ReadFull(m.dec, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: decode mp3: %w", ErrBadInput, err)
	}
	return n, err
}
