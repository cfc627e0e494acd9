package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// fixture returns the contents of testdata/name.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// transcodeAll runs the whole pipeline over data and returns the μ-law
// output and the error that ended it (nil for io.EOF).
func transcodeAll(tb testing.TB, data []byte) ([]byte, Info, error) {
	tb.Helper()
	t, err := NewTranscoder(bytes.NewReader(data), Options{})
	if err != nil {
		return nil, Info{}, err
	}
	out, err := io.ReadAll(t)
	return out, t.Info(), err
}

// ulawToFloat decodes μ-law bytes to linear samples.
func ulawToFloat(b []byte) []float64 {
	out := make([]float64, len(b))
	for i, c := range b {
		out[i] = float64(DecodeMulaw(c))
	}
	return out
}

// makeWAV builds a 16-bit PCM WAV from interleaved samples.
func makeWAV(rate, channels int, samples []int16) []byte {
	b := AppendWAVHeader(make([]byte, 0, 44+2*len(samples)), rate, channels, 2*len(samples))
	for _, v := range samples {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// sineWAV is n samples of a sine of amplitude amp at freq Hz, mono.
func sineSamples(rate int, freq, amp float64, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))))
	}
	return s
}

// sliceReader is a monoReader over samples, delivering at most chunk
// samples per call (all it can when chunk is 0).
type sliceReader struct {
	s     []float32
	chunk int
}

func (r *sliceReader) readMono(dst []float32) (int, error) {
	if len(r.s) == 0 {
		return 0, io.EOF
	}
	if r.chunk > 0 && len(dst) > r.chunk {
		dst = dst[:r.chunk]
	}
	n := copy(dst, r.s)
	r.s = r.s[n:]
	return n, nil
}

// resampleAll runs the resampler over x and returns its output, reading
// it block samples at a time.
func resampleAll(tb testing.TB, x []float32, rate, chunk, block int) []float32 {
	tb.Helper()
	r := newResampler(&sliceReader{s: x, chunk: chunk}, rate)
	var out []float32
	buf := make([]float32, block)
	for {
		n, err := r.read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func toFloat32(s []int16) []float32 {
	out := make([]float32, len(s))
	for i, v := range s {
		out[i] = float32(v)
	}
	return out
}

func f32to64(s []float32) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = float64(v)
	}
	return out
}

func rms(x []float64) float64 {
	var e float64
	for _, v := range x {
		e += v * v
	}
	return math.Sqrt(e / float64(len(x)))
}

func dB(ratio float64) float64 { return 20 * math.Log10(ratio) }

// snr is 10·log10(Σref² / Σ(got-ref)²) over the common length.
func snr(got, ref []float64) float64 {
	n := min(len(got), len(ref))
	var s, e float64
	for i := range n {
		s += ref[i] * ref[i]
		d := got[i] - ref[i]
		e += d * d
	}
	return 10 * math.Log10(s/e)
}

// refResample is the quality reference: a float64 Kaiser-windowed sinc
// (β = 12, about 120 dB of stopband) passing up to 3800 Hz and stopping from
// 4000 Hz, fs/25 input samples long (1764 taps at 44.1 kHz), tabulated 1024
// times per input sample and linearly interpolated (error near 1e-8).
func refResample(x []float64, rate int) []float64 {
	const (
		beta = 12.0
		band = 3900.0
		over = 1024
	)
	fs := float64(rate)
	fc := min(band, fs/2-100)  // below 8000 Hz the source's band is the limit
	half := math.Ceil(fs / 50) // window half-width, input samples
	i0b := besselI0(beta)
	tab := make([]float64, int(half)*over+2)
	for i := range tab {
		d := float64(i) / over
		arg := 2 * fc * d / fs
		v := 2 * fc / fs
		if arg != 0 {
			v *= math.Sin(math.Pi*arg) / (math.Pi * arg)
		}
		if r := d / half; r < 1 {
			tab[i] = v * besselI0(beta*math.Sqrt(1-r*r)) / i0b
		}
	}
	kernel := func(d float64) float64 {
		p := math.Abs(d) * over
		i := int(p)
		f := p - float64(i)
		return tab[i]*(1-f) + tab[i+1]*f
	}
	n := (len(x)*SampleRate + rate - 1) / rate
	out := make([]float64, n)
	for k := range out {
		t := float64(k) * fs / SampleRate
		lo := max(0, int(math.Ceil(t-half)))
		hi := min(len(x)-1, int(math.Floor(t+half)))
		var acc float64
		for j := lo; j <= hi; j++ {
			acc += x[j] * kernel(t-float64(j))
		}
		out[k] = acc
	}
	return out
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
