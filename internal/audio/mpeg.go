package audio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MPEG audio frame headers (ISO/IEC 11172-3 and 13818-3, plus the MPEG-2.5
// extension) and the stream framing around them: ID3v2 tags in front,
// Xing/Info/VBRI and LAME tags in the first frame, junk and ID3v1/APE tags
// at the end.

const (
	mpeg1  = 1
	mpeg2  = 2
	mpeg25 = 25

	maxJunk     = 32 << 10 // bytes searched for the first frame after the tags
	maxFrameLen = 2881     // MPEG-1 Layer I/II/III at the highest bitrates, padded
	readerSize  = 16 << 10 // buffered input: room to peek at four frames
)

var bitrateTable = [2][3][16]int{
	{ // MPEG-1, Layers I, II, III (kb/s)
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
	},
	{ // MPEG-2 and 2.5
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
	},
}

var rateTable = [3]int{44100, 48000, 32000}

// mpegHeader is a decoded 4-byte frame header.
type mpegHeader struct {
	version  int // mpeg1, mpeg2, mpeg25
	layer    int // 1, 2, 3
	crc      bool
	bitrate  int // bits/s
	rate     int // Hz
	rateIdx  int
	padding  int
	mono     bool
	size     int // bytes, header included
	samples  int // samples per channel
	sideInfo int // Layer III side information bytes
}

// parseHeader decodes b[:4]; ok is false when it is not a usable frame
// header (bad sync, reserved values, free-format bitrate).
func parseHeader(b []byte) (h mpegHeader, ok bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1]&0xE0 != 0xE0 {
		return h, false
	}
	switch (b[1] >> 3) & 3 {
	case 0:
		h.version = mpeg25
	case 2:
		h.version = mpeg2
	case 3:
		h.version = mpeg1
	default:
		return h, false
	}
	layerBits := (b[1] >> 1) & 3
	if layerBits == 0 {
		return h, false
	}
	h.layer = 4 - int(layerBits)
	h.crc = b[1]&1 == 0
	bri := int(b[2] >> 4)
	h.rateIdx = int(b[2]>>2) & 3
	if bri == 0 || bri == 15 || h.rateIdx == 3 || b[3]&3 == 2 {
		return h, false
	}
	lsf := 0
	if h.version != mpeg1 {
		lsf = 1
	}
	h.bitrate = bitrateTable[lsf][h.layer-1][bri] * 1000
	h.rate = rateTable[h.rateIdx]
	switch h.version {
	case mpeg2:
		h.rate /= 2
	case mpeg25:
		h.rate /= 4
	}
	h.padding = int(b[2]>>1) & 1
	h.mono = b[3]>>6 == 3
	switch h.layer {
	case 1:
		h.size = (12*h.bitrate/h.rate + h.padding) * 4
		h.samples = 384
	case 2:
		h.size = 144*h.bitrate/h.rate + h.padding
		h.samples = 1152
	case 3:
		if lsf == 0 {
			h.size = 144*h.bitrate/h.rate + h.padding
			h.samples = 1152
		} else {
			h.size = 72*h.bitrate/h.rate + h.padding
			h.samples = 576
		}
	}
	switch {
	case lsf == 0 && h.mono:
		h.sideInfo = 17
	case lsf == 0:
		h.sideInfo = 32
	case h.mono:
		h.sideInfo = 9
	default:
		h.sideInfo = 17
	}
	return h, h.size > 4+h.sideInfo
}

// sameStream reports whether h may follow first in one stream: same
// version, layer and sample rate (the channel mode may change, as it does
// in streams that switch between mono and stereo).
func (h mpegHeader) sameStream(first mpegHeader) bool {
	return h.version == first.version && h.layer == first.layer &&
		h.rateIdx == first.rateIdx
}

func (h mpegHeader) String() string {
	v := map[int]string{mpeg1: "MPEG-1", mpeg2: "MPEG-2", mpeg25: "MPEG-2.5"}[h.version]
	l := [4]string{"", "I", "II", "III"}[h.layer]
	return fmt.Sprintf("%s Layer %s at %d Hz", v, l, h.rate)
}

// skipID3v2 discards any ID3v2 tags at the start of br, streaming through
// them (cover art can be megabytes), and returns how many bytes it
// skipped.
func skipID3v2(br *bufio.Reader) (int64, error) {
	var n int64
	for {
		b, err := br.Peek(10)
		if err != nil && !errors.Is(err, io.EOF) {
			return n, fmt.Errorf("%w: read: %w", ErrBadInput, err)
		}
		if len(b) < 10 || string(b[:3]) != "ID3" {
			return n, nil
		}
		if b[3] == 0xFF || b[4] == 0xFF || b[6]|b[7]|b[8]|b[9] >= 0x80 {
			return n, fmt.Errorf("%w: malformed ID3v2 tag header", ErrBadInput)
		}
		size := int(b[6])<<21 | int(b[7])<<14 | int(b[8])<<7 | int(b[9])
		size += 10
		if b[5]&0x10 != 0 { // footer present
			size += 10
		}
		if _, err := br.Discard(size); err != nil {
			if errors.Is(err, io.EOF) {
				return n, fmt.Errorf("%w: ID3v2 tag runs past the end of the input", ErrBadInput)
			}
			return n, fmt.Errorf("%w: read: %w", ErrBadInput, err)
		}
		n += int64(size)
	}
}

// confirmFrame reports whether a frame header at b[0:] is followed by
// more headers of the same stream: follow of them, or, when the input ends
// (atEOF) first, follow-1 and then the end of the input exactly.
func confirmFrame(b []byte, atEOF bool, follow int) (mpegHeader, bool) {
	h, ok := parseHeader(b)
	if !ok {
		return h, false
	}
	pos := h.size
	for i := range follow {
		if i >= follow-1 && (len(b) == pos && atEOF || isTag(b[min(pos, len(b)):])) {
			return h, true // the input ends on a frame boundary, or a tag follows
		}
		next, ok := parseHeader(b[min(pos, len(b)):])
		if !ok || !next.sameStream(h) {
			return h, false
		}
		pos += next.size
	}
	return h, true // the last may be cut short: the frame walker reports that
}

// isTag reports whether b starts with a tag that ends an MP3 stream: an
// ID3v1, APE or Lyrics3 tag (or an ID3v2 tag appended at the end).
func isTag(b []byte) bool {
	for _, t := range []string{"TAG", "APETAGEX", "LYRICSBEGIN", "ID3"} {
		if len(b) >= len(t) && string(b[:len(t)]) == t {
			return true
		}
	}
	return false
}

// findFirstFrame skips junk (at most maxJunk bytes) up to the first frame
// header that is confirmed by the ones after it, and returns that header
// without consuming it, and how many bytes it skipped. Right at the start
// one more header (or a tag, or the end of the input) is enough; after
// junk it takes two more, so that random bytes are not taken for audio.
func findFirstFrame(br *bufio.Reader) (mpegHeader, int64, error) {
	skipped := 0
	for skipped <= maxJunk {
		b, err := br.Peek(4*maxFrameLen + 4)
		if err != nil && !errors.Is(err, io.EOF) {
			return mpegHeader{}, int64(skipped), fmt.Errorf("%w: read mp3: %w", ErrBadInput, err)
		}
		atEOF := err != nil
		if len(b) < 4 {
			break
		}
		i := 0
		for ; i+4 <= len(b); i++ {
			if b[i] != 0xFF {
				continue
			}
			// Only trust a header with enough look-ahead to confirm it.
			if !atEOF && i+3*maxFrameLen+4 > len(b) {
				break
			}
			follow := 2
			if i == 0 && skipped == 0 {
				follow = 1
			}
			if h, ok := confirmFrame(b[i:], atEOF, follow); ok {
				br.Discard(i)
				return h, int64(skipped + i), nil
			}
		}
		if atEOF && i+4 > len(b) {
			break
		}
		br.Discard(i)
		skipped += i
	}
	return mpegHeader{}, int64(skipped), fmt.Errorf("%w: no MPEG audio frames found", ErrBadInput)
}

// vbrTag is what the first frame's Xing/Info/VBRI and LAME tags say.
type vbrTag struct {
	found   bool  // the first frame is a tag frame, not audio
	frames  int64 // audio frames in the stream, 0 if unknown
	lame    bool  // delay and padding are known
	delay   int   // encoder delay, samples
	padding int   // end padding, samples
}

// parseVBRTag inspects a whole first frame.
func parseVBRTag(frame []byte, h mpegHeader) vbrTag {
	var t vbrTag
	be := binary.BigEndian
	// The tag follows the side information. Encoders (LAME among them)
	// and readers (ffmpeg) place it there ignoring a CRC; accept both.
	off := 4 + h.sideInfo
	if h.crc && len(frame) >= off+6 && string(frame[off:off+4]) != "Xing" && string(frame[off:off+4]) != "Info" {
		off += 2
	}
	if h.layer == 3 && len(frame) >= off+8 {
		tag := string(frame[off : off+4])
		if tag == "Xing" || tag == "Info" {
			t.found = true
			flags := be.Uint32(frame[off+4:])
			p := off + 8
			if flags&1 != 0 && len(frame) >= p+4 {
				t.frames = int64(be.Uint32(frame[p:]))
				p += 4
			}
			if flags&2 != 0 {
				p += 4 // stream bytes
			}
			if flags&4 != 0 {
				p += 100 // seek table
			}
			if flags&8 != 0 {
				p += 4 // quality
			}
			// LAME tag: 9-byte encoder string, then at +21 the 12-bit
			// encoder delay and 12-bit padding.
			if len(frame) >= p+24 {
				enc := string(frame[p : p+4])
				if enc == "LAME" || enc == "Lavf" || enc == "Lavc" || enc == "GOGO" || enc == "L3.9" {
					v := uint32(frame[p+21])<<16 | uint32(frame[p+22])<<8 | uint32(frame[p+23])
					t.delay = int(v >> 12)
					t.padding = int(v & 0xFFF)
					t.lame = true
				}
			}
			return t
		}
	}
	// Fraunhofer VBRI, always 32 bytes after the header.
	if len(frame) >= 36+18 && string(frame[36:40]) == "VBRI" {
		t.found = true
		t.frames = int64(be.Uint32(frame[36+14:]))
	}
	return t
}

// frameReader yields the MPEG frames of a stream, header and body, and
// nothing else: it drops junk between frames and tags at the end. A frame
// of another stream (a new sample rate, when MP3 files are concatenated)
// is taken once the header after it confirms it; a confirmed stream of
// another layer ends the input with an error.
type frameReader struct {
	br        *bufio.Reader
	cur       mpegHeader // the stream's latest frame
	h         mpegHeader // the frame in buf
	buf       []byte     // the current frame
	pos       int64      // input offset of the next byte to read
	at        int64      // input offset of the frame in buf
	frames    int64      // frames loaded
	truncated bool       // the input ended inside a frame
	err       error
}

// next loads the next frame into buf.
func (f *frameReader) next() error {
	if f.err != nil {
		return f.err
	}
	for {
		b, err := f.br.Peek(4)
		if err != nil && !errors.Is(err, io.EOF) {
			f.err = fmt.Errorf("%w: read mp3: %w", ErrBadInput, err)
			return f.err
		}
		if len(b) < 4 {
			// Up to three bytes left: the start of a cut-off header, or
			// stray bytes.
			f.truncated = f.truncated || (len(b) > 0 && b[0] == 0xFF)
			f.err = io.EOF
			return f.err
		}
		if h, ok := parseHeader(b); ok && h.sameStream(f.cur) {
			return f.load(h)
		}
		if h, ok := f.confirmed(); ok {
			if h.layer != 3 {
				f.err = fmt.Errorf("%w: mp3: at byte %d: %s frames (only Layer III is decoded)", ErrBadInput, f.pos, h)
				return f.err
			}
			f.cur = h
			return f.load(h)
		}
		if !f.resync() {
			if f.err == nil {
				f.err = io.EOF
			}
			return f.err
		}
	}
}

// confirmed reports whether a frame header at the read position is
// followed by another of the same stream (or by the end of the input, or
// a tag).
func (f *frameReader) confirmed() (mpegHeader, bool) {
	b, err := f.br.Peek(2*maxFrameLen + 4)
	if err != nil && !errors.Is(err, io.EOF) {
		return mpegHeader{}, false
	}
	return confirmFrame(b, err != nil, 1)
}

// resync skips to the next frame header that is confirmed by the header
// after it. Junk at the end of the input (an ID3v1 or APE tag) finds
// none; 32 KB of it mid-stream is an error.
func (f *frameReader) resync() bool {
	for skipped := 0; ; {
		if skipped >= maxJunk {
			f.err = fmt.Errorf("%w: mp3: no MPEG audio frame in %d bytes from byte %d", ErrBadInput, skipped, f.pos-int64(skipped))
			return false
		}
		b, err := f.br.Peek(2*maxFrameLen + 4)
		if err != nil && !errors.Is(err, io.EOF) {
			f.err = fmt.Errorf("%w: read mp3: %w", ErrBadInput, err)
			return false
		}
		if len(b) < 8 {
			return false
		}
		i := 1
		for ; i+4 <= len(b) && (err != nil || i+maxFrameLen+4 <= len(b)); i++ {
			if b[i] != 0xFF {
				continue
			}
			h, ok := parseHeader(b[i:])
			if !ok || i+h.size+4 > len(b) {
				continue
			}
			if n, ok := parseHeader(b[i+h.size:]); ok && n.sameStream(h) {
				f.br.Discard(i)
				f.pos += int64(i)
				return true
			}
		}
		if err != nil {
			return false
		}
		f.br.Discard(i)
		f.pos += int64(i)
		skipped += i
	}
}

func (f *frameReader) load(h mpegHeader) error {
	if cap(f.buf) < maxFrameLen {
		f.buf = make([]byte, maxFrameLen)
	}
	f.buf = f.buf[:h.size]
	n, err := io.ReadFull(f.br, f.buf)
	f.at = f.pos
	f.pos += int64(n)
	if err != nil {
		f.buf = f.buf[:0]
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			f.truncated = n > 0
			f.err = io.EOF
			return f.err
		}
		f.err = fmt.Errorf("%w: read mp3: %w", ErrBadInput, err)
		return f.err
	}
	f.h = h
	f.cur = h
	f.frames++
	return nil
}
