package audio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// WAV (RIFF WAVE): chunks are a 4-byte id, a little-endian 32-bit size and
// the payload, padded to an even length. fmt describes the samples and
// data holds them; everything else (fact, LIST, cue, …) is skipped.

const (
	wavePCM        = 0x0001
	waveMulaw      = 0x0007
	waveExtensible = 0xFFFE
	maxWavChannels = 8
	maxFmtChunk    = 1 << 10
)

// wavFormat is what the fmt chunk says.
type wavFormat struct {
	tag      int // wavePCM or waveMulaw (extensible resolved)
	channels int
	rate     int
	align    int // bytes per sample frame (all channels)
	bits     int
}

// wavReader delivers the samples of a WAV data chunk.
type wavReader struct {
	r       *bufio.Reader
	f       wavFormat
	left    int64 // bytes of data still due; -1 when the size is unknown
	raw     []byte
	partial int // bytes of an incomplete sample frame held at raw[:partial]
}

func parseWAV(br *bufio.Reader) (*wavReader, Info, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, Info{}, headerErr(err, "short RIFF header")
	}
	var (
		f      wavFormat
		haveF  bool
		chunkH [8]byte
	)
	for {
		if _, err := io.ReadFull(br, chunkH[:]); err != nil {
			if !haveF {
				return nil, Info{}, headerErr(err, "no fmt chunk")
			}
			return nil, Info{}, headerErr(err, "no data chunk")
		}
		id := string(chunkH[:4])
		size := int64(binary.LittleEndian.Uint32(chunkH[4:]))
		switch id {
		case "fmt ":
			if size < 16 || size > maxFmtChunk {
				return nil, Info{}, fmt.Errorf("%w: wav: fmt chunk of %d bytes", ErrBadInput, size)
			}
			var b [maxFmtChunk]byte
			if _, err := io.ReadFull(br, b[:size+size&1]); err != nil {
				return nil, Info{}, headerErr(err, "short fmt chunk")
			}
			var err error
			if f, err = parseFmt(b[:size]); err != nil {
				return nil, Info{}, err
			}
			haveF = true
		case "data":
			if !haveF {
				return nil, Info{}, fmt.Errorf("%w: wav: data before fmt", ErrBadInput)
			}
			w := &wavReader{r: br, f: f, left: size}
			// Streaming writers leave the size 0 or all ones: read to the end.
			if size == 0 || size == 0xFFFFFFFF {
				w.left = -1
			}
			info := Info{Format: "wav-pcm16", SampleRate: f.rate, Channels: f.channels}
			if f.tag == waveMulaw {
				info.Format = "wav-mulaw"
			}
			if w.left >= 0 {
				frames := w.left / int64(f.align)
				info.Duration = time.Duration(frames * int64(time.Second) / int64(f.rate))
			}
			return w, info, nil
		default:
			if _, err := br.Discard(int(size + size&1)); err != nil {
				return nil, Info{}, headerErr(err, "no data chunk")
			}
		}
	}
}

// headerErr is the error for a WAV header that could not be read: the
// input ended (what is missing is named), or the reader failed (wrapped).
func headerErr(err error, missing string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: wav: %s", ErrBadInput, missing)
	}
	return fmt.Errorf("%w: wav: %w", ErrBadInput, err)
}

func parseFmt(b []byte) (wavFormat, error) {
	le := binary.LittleEndian
	f := wavFormat{
		tag:      int(le.Uint16(b[0:])),
		channels: int(le.Uint16(b[2:])),
		rate:     int(le.Uint32(b[4:])),
		align:    int(le.Uint16(b[12:])),
		bits:     int(le.Uint16(b[14:])),
	}
	if f.tag == waveExtensible {
		if len(b) < 40 {
			return f, fmt.Errorf("%w: wav: short WAVE_FORMAT_EXTENSIBLE fmt chunk", ErrBadInput)
		}
		// The sub-format GUID starts with the classic format tag.
		f.tag = int(le.Uint16(b[24:]))
	}
	if f.channels < 1 || f.channels > maxWavChannels {
		return f, fmt.Errorf("%w: wav: %d channels", ErrBadInput, f.channels)
	}
	if f.rate < 1000 || f.rate > 192000 {
		return f, fmt.Errorf("%w: WAV at %d Hz; convert with: ffmpeg -i in.wav -ar 48000 out.wav", ErrUnsupported, f.rate)
	}
	if r := polyphaseRate(f.rate); r > 48000 {
		// An odd rate this high would need a filter thousands of taps long.
		return f, fmt.Errorf("%w: WAV at %d Hz; convert with: ffmpeg -i in.wav -ar 48000 out.wav", ErrUnsupported, f.rate)
	}
	switch {
	case f.tag == wavePCM && f.bits == 16:
		if f.align != 2*f.channels {
			return f, fmt.Errorf("%w: wav: block align %d for %d channels", ErrBadInput, f.align, f.channels)
		}
	case f.tag == waveMulaw && f.bits == 8:
		if f.align != f.channels {
			return f, fmt.Errorf("%w: wav: block align %d for %d channels", ErrBadInput, f.align, f.channels)
		}
	case f.tag == wavePCM:
		return f, fmt.Errorf("%w: WAV %d-bit PCM; convert with: ffmpeg -i in.wav -c:a pcm_s16le out.wav", ErrUnsupported, f.bits)
	default:
		return f, fmt.Errorf("%w: WAV format 0x%04x (%s); convert with: ffmpeg -i in.wav -c:a pcm_s16le out.wav", ErrUnsupported, f.tag, wavFormatName(f.tag))
	}
	return f, nil
}

func wavFormatName(tag int) string {
	switch tag {
	case 0x0002:
		return "ADPCM"
	case 0x0003:
		return "IEEE float"
	case 0x0006:
		return "A-law"
	case 0x0011:
		return "IMA ADPCM"
	case 0x0031:
		return "GSM 6.10"
	case 0x0055:
		return "MP3"
	}
	return "unknown"
}

// readBytes reads whole sample frames of the data chunk into p.
func (w *wavReader) readBytes(p []byte) (int, error) {
	if w.left == 0 {
		return 0, io.EOF
	}
	if w.left > 0 && int64(len(p)) > w.left {
		p = p[:w.left]
	}
	n, err := io.ReadAtLeast(w.r, p, 1)
	if w.left > 0 {
		w.left -= int64(n)
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if w.left > 0 {
				return n, fmt.Errorf("%w: wav: data chunk ends %d bytes early", ErrTruncated, w.left)
			}
			return n, io.EOF
		}
		return n, fmt.Errorf("%w: wav: %w", ErrBadInput, err)
	}
	return n, nil
}

// readMono implements monoReader: it averages the channels of each sample
// frame.
func (w *wavReader) readMono(dst []float32) (_ int, err error) {
	align := w.f.align
	want := len(dst) * align
	if cap(w.raw) < want {
		// Keep the incomplete sample frame held from the last call.
		w.raw = append(make([]byte, 0, want), w.raw[:w.partial]...)
	}
	raw := w.raw[:want]
	n, err := w.readBytes(raw[w.partial:])
	n += w.partial
	frames := n / align
	// Keep an incomplete sample frame for the next call, once these are
	// converted (a fragment at the end of the data is dropped).
	defer func() {
		w.partial = 0
		if err == nil {
			w.partial = copy(raw, raw[frames*align:n])
		}
	}()
	ch := w.f.channels
	scale := 1 / float32(ch)
	if w.f.tag == waveMulaw {
		for i := range frames {
			var s int32
			for c := range ch {
				s += int32(mulawDecTable[raw[i*align+c]])
			}
			dst[i] = float32(s) * scale
		}
	} else if ch == 1 {
		b, d := raw[:2*frames], dst[:frames]
		for i := range d {
			s := b[2*i : 2*i+2 : 2*i+2]
			d[i] = float32(int16(uint16(s[0]) | uint16(s[1])<<8))
		}
	} else if ch == 2 {
		for i := range frames {
			f := raw[4*i : 4*i+4 : 4*i+4]
			l := int16(uint16(f[0]) | uint16(f[1])<<8)
			r := int16(uint16(f[2]) | uint16(f[3])<<8)
			dst[i] = 0.5 * (float32(l) + float32(r))
		}
	} else {
		for i := range frames {
			var s int32
			f := raw[i*align : i*align+align]
			for c := range ch {
				s += int32(int16(binary.LittleEndian.Uint16(f[2*c:])))
			}
			dst[i] = float32(s) * scale
		}
	}
	return frames, err
}

// AppendWAVHeader appends to dst the 44-byte header of a WAV file of
// 16-bit little-endian PCM at rate Hz with channels interleaved channels
// and dataLen bytes of samples. A negative dataLen writes the sizes as
// unknown (0xFFFFFFFF), as for a stream read to its end.
func AppendWAVHeader(dst []byte, rate, channels, dataLen int) []byte {
	le := binary.LittleEndian
	riff, data := uint32(0xFFFFFFFF), uint32(0xFFFFFFFF)
	if dataLen >= 0 {
		riff, data = uint32(36+dataLen), uint32(dataLen)
	}
	dst = append(dst, "RIFF"...)
	dst = le.AppendUint32(dst, riff)
	dst = append(dst, "WAVEfmt "...)
	dst = le.AppendUint32(dst, 16)
	dst = le.AppendUint16(dst, wavePCM)
	dst = le.AppendUint16(dst, uint16(channels))
	dst = le.AppendUint32(dst, uint32(rate))
	dst = le.AppendUint32(dst, uint32(rate*2*channels))
	dst = le.AppendUint16(dst, uint16(2*channels))
	dst = le.AppendUint16(dst, 16)
	dst = append(dst, "data"...)
	return le.AppendUint32(dst, data)
}
