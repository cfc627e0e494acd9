package callsim

import (
	"encoding/binary"
	"io"
)

// WAV header layout written by WriteWAV: RIFF, an 18-byte fmt chunk
// (format 7 = G.711 μ-law, 1 channel, 8000 Hz, 8 bits), a fact chunk with
// the sample count, then the data chunk.
const wavHeaderLen = 12 + 8 + 18 + 8 + 4 + 8

// WriteWAV writes ulaw (G.711 μ-law, 8000 Hz, mono) as a WAV file that audio
// players open: format 7 with the fact chunk the format requires, and a pad
// byte after odd-length data as RIFF requires.
func WriteWAV(w io.Writer, ulaw []byte) error {
	n := len(ulaw)
	pad := n % 2
	h := make([]byte, 0, wavHeaderLen)
	le := binary.LittleEndian
	h = append(h, "RIFF"...)
	h = le.AppendUint32(h, uint32(wavHeaderLen-8+n+pad))
	h = append(h, "WAVE"...)
	h = append(h, "fmt "...)
	h = le.AppendUint32(h, 18)
	h = le.AppendUint16(h, 7) // WAVE_FORMAT_MULAW
	h = le.AppendUint16(h, 1) // channels
	h = le.AppendUint32(h, BytesPerSecond)
	h = le.AppendUint32(h, BytesPerSecond) // byte rate
	h = le.AppendUint16(h, 1)              // block align
	h = le.AppendUint16(h, 8)              // bits per sample
	h = le.AppendUint16(h, 0)              // extension size
	h = append(h, "fact"...)
	h = le.AppendUint32(h, 4)
	h = le.AppendUint32(h, uint32(n)) // samples
	h = append(h, "data"...)
	h = le.AppendUint32(h, uint32(n))
	if _, err := w.Write(h); err != nil {
		return err
	}
	if _, err := w.Write(ulaw); err != nil {
		return err
	}
	if pad == 1 {
		_, err := w.Write([]byte{0})
		return err
	}
	return nil
}
