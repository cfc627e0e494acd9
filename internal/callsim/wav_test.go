package callsim

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestWriteWAV(t *testing.T) {
	for _, n := range []int{0, 1, 160, 8001} {
		ulaw := tone(n)
		var b bytes.Buffer
		if err := WriteWAV(&b, ulaw); err != nil {
			t.Fatal(err)
		}
		w := b.Bytes()
		le := binary.LittleEndian
		pad := n % 2
		if len(w) != 58+n+pad {
			t.Fatalf("n=%d: file is %d bytes, want %d", n, len(w), 58+n+pad)
		}
		check := func(name string, got, want any) {
			if got != want {
				t.Errorf("n=%d: %s = %v, want %v", n, name, got, want)
			}
		}
		check("RIFF", string(w[0:4]), "RIFF")
		check("RIFF size", le.Uint32(w[4:]), uint32(len(w)-8))
		check("WAVE", string(w[8:12]), "WAVE")
		check("fmt id", string(w[12:16]), "fmt ")
		check("fmt size", le.Uint32(w[16:]), uint32(18))
		check("format", le.Uint16(w[20:]), uint16(7))
		check("channels", le.Uint16(w[22:]), uint16(1))
		check("sample rate", le.Uint32(w[24:]), uint32(8000))
		check("byte rate", le.Uint32(w[28:]), uint32(8000))
		check("block align", le.Uint16(w[32:]), uint16(1))
		check("bits", le.Uint16(w[34:]), uint16(8))
		check("cbSize", le.Uint16(w[36:]), uint16(0))
		check("fact id", string(w[38:42]), "fact")
		check("fact size", le.Uint32(w[42:]), uint32(4))
		check("fact samples", le.Uint32(w[46:]), uint32(n))
		check("data id", string(w[50:54]), "data")
		check("data size", le.Uint32(w[54:]), uint32(n))
		if !bytes.Equal(w[58:58+n], ulaw) {
			t.Errorf("n=%d: data differs", n)
		}
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestWriteWAVErrors(t *testing.T) {
	for i := range 3 {
		if err := WriteWAV(&failWriter{n: i}, tone(3)); err == nil {
			t.Errorf("write %d failing: no error", i+1)
		}
	}
}
