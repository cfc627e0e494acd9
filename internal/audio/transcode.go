package audio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// blockSize is the number of output samples processed at a time.
const blockSize = 1024

// A Transcoder reads an audio file and delivers it as G.711 μ-law, 8000 Hz,
// mono: one byte a sample, FrameSize bytes per 20 ms.
type Transcoder struct {
	info Info
	pass *wavReader // 8000 Hz mono μ-law WAV, passed through
	src  monoReader // mono samples at the source rate
	rs   *resampler // follows the source through changes of rate; passes SampleRate through
	buf  []float32
	err  error
}

// NewTranscoder sniffs the content (not the file name) of r and returns a
// reader of μ-law 8 kHz mono bytes. It reads only the headers and the first
// MP3 frame before returning. Errors wrap ErrBadInput or ErrUnsupported.
func NewTranscoder(r io.Reader, opts Options) (*Transcoder, error) {
	br := bufio.NewReaderSize(r, readerSize)
	head, err := br.Peek(12)
	if len(head) == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: empty input", ErrBadInput)
		}
		return nil, fmt.Errorf("%w: read: %w", ErrBadInput, err)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: read: %w", ErrBadInput, err)
	}
	if err := sniffUnsupported(head); err != nil {
		return nil, err
	}
	t := &Transcoder{}
	if len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE" {
		w, info, err := parseWAV(br)
		if err != nil {
			return nil, err
		}
		t.info = info
		if w.f.tag == waveMulaw && w.f.rate == SampleRate && w.f.channels == 1 {
			t.pass = w
			return t, nil
		}
		t.src = w
	} else {
		m, info, err := parseMP3(br)
		if err != nil {
			return nil, err
		}
		t.info = info
		t.src = m
	}
	t.buf = make([]float32, blockSize)
	t.rs = newResampler(t.src, t.info.SampleRate)
	return t, nil
}

// sniffUnsupported names well-known formats that are not played here.
func sniffUnsupported(b []byte) error {
	const how = "convert with: ffmpeg -i IN -ar 8000 -ac 1 -c:a pcm_mulaw out.wav"
	name := ""
	switch {
	case bytes.HasPrefix(b, []byte("OggS")):
		name = "Ogg (Vorbis/Opus)"
	case bytes.HasPrefix(b, []byte("fLaC")):
		name = "FLAC"
	case len(b) >= 8 && string(b[4:8]) == "ftyp":
		name = "MP4/M4A"
	case bytes.HasPrefix(b, []byte("FORM")):
		name = "AIFF"
	case bytes.HasPrefix(b, []byte(".snd")):
		name = "Sun AU"
	case bytes.HasPrefix(b, []byte("#!AMR")):
		name = "AMR"
	case bytes.HasPrefix(b, []byte("RIFF")) && len(b) >= 12 && string(b[8:12]) != "WAVE":
		name = "RIFF " + string(b[8:12])
	case bytes.HasPrefix(b, []byte("RF64")):
		name = "RF64 WAV"
	case len(b) >= 2 && b[0] == 0xFF && b[1]&0xF6 == 0xF0:
		name = "AAC (ADTS)"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s; %s", ErrUnsupported, name, how)
}

// Info describes the source.
func (t *Transcoder) Info() Info { return t.info }

// Read fills p with μ-law bytes. At the end it returns io.EOF, or, after
// all decodable audio of a damaged input, an error wrapping ErrTruncated
// or ErrBadInput.
func (t *Transcoder) Read(p []byte) (int, error) {
	if t.pass != nil {
		return t.pass.readBytes(p)
	}
	n := 0
	for n < len(p) && t.err == nil {
		block := t.buf[:min(len(p)-n, len(t.buf))]
		var k int
		k, t.err = t.rs.read(block)
		encodeBlock(p[n:n+k], block[:k])
		n += k
	}
	if n > 0 {
		return n, nil
	}
	return 0, t.err
}

// encodeBlock rounds, clamps and μ-law encodes src into dst.
func encodeBlock(dst []byte, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		// Plain comparisons: min and max order NaNs and zeros, and cost.
		if v < -32768 {
			v = -32768
		}
		if v > 32767 {
			v = 32767
		}
		s := int32(v+32768.5) - 32768
		dst[i] = mulawEncTable[uint16(s)>>2]
	}
}
