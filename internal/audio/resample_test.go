package audio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// streamWAVHeader is the header the edge puts in front of a streamed
// pcm_s16le playback: sizes unknown (all ones).
func streamWAVHeader(rate, ch int) []byte {
	b := make([]byte, 44)
	le := binary.LittleEndian
	copy(b, "RIFF")
	le.PutUint32(b[4:], 0xFFFFFFFF)
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], 1)
	le.PutUint16(b[22:], uint16(ch))
	le.PutUint32(b[24:], uint32(rate))
	le.PutUint32(b[28:], uint32(rate*2*ch))
	le.PutUint16(b[32:], uint16(2*ch))
	le.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	le.PutUint32(b[40:], 0xFFFFFFFF)
	return b
}

// TestStreamedPCMChunks: PCM streams at the rates producers send, pushed
// in chunks of any size (down to one byte, splitting samples) and read in
// any sizes, give the same bytes as the whole stream transcoded at once.
func TestStreamedPCMChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, rate := range []int{16000, 22050, 24000, 44100, 48000} {
		for _, ch := range []int{1, 2} {
			t.Run(fmt.Sprintf("%d Hz %d ch", rate, ch), func(t *testing.T) {
				// 0.3 s of two tones and noise, channels different.
				pcm := make([]int16, ch*rate*3/10)
				for i := range pcm {
					ti := float64(i/ch) / float64(rate)
					v := 9000*math.Sin(2*math.Pi*440*ti) + 4000*math.Sin(2*math.Pi*3700*ti+float64(i%ch)) + 2000*rng.NormFloat64()
					pcm[i] = int16(max(-32768, min(32767, math.Round(v))))
				}
				data := streamWAVHeader(rate, ch)
				for _, v := range pcm {
					data = binary.LittleEndian.AppendUint16(data, uint16(v))
				}
				want, err := readAllSizes(NewTranscoder(bytes.NewReader(data), Options{}))(nil)
				if err != nil {
					t.Fatal(err)
				}
				if n := len(pcm) / ch * SampleRate / rate; len(want) < n {
					t.Fatalf("%d samples out, want %d", len(want), n)
				}
				for _, mode := range []string{"one byte", "random small", "random"} {
					var r io.Reader = bytes.NewReader(data)
					switch mode {
					case "one byte":
						r = iotest.OneByteReader(r)
					case "random small":
						r = &chunkReader{r: r, rng: rng, max: 37}
					case "random":
						r = &chunkReader{r: r, rng: rng, max: 5000}
					}
					got, err := readAllSizes(NewTranscoder(r, Options{}))(rng)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s: output differs from one piece (%d vs %d bytes)", mode, len(got), len(want))
					}
				}
			})
		}
	}
}

// readAllSizes reads a transcoder to its end in reads of random sizes
// (all at once without rng).
func readAllSizes(tr *Transcoder, err error) func(rng *rand.Rand) ([]byte, error) {
	return func(rng *rand.Rand) ([]byte, error) {
		if err != nil {
			return nil, err
		}
		var got []byte
		buf := make([]byte, 1000)
		for {
			p := buf
			if rng != nil {
				p = buf[:1+rng.IntN(len(buf))]
			}
			n, err := tr.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				return got, nil
			}
			if err != nil {
				return got, err
			}
		}
	}
}

// chunkReader returns 1 to max bytes a read.
type chunkReader struct {
	r   io.Reader
	rng *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), 1+c.rng.IntN(c.max))])
}

// segmentReader is a monoReader whose rate changes: it delivers segs in
// turn, ending each but the last with a *rateChange for the next one's
// rate, with its last samples when they fit in one read. It delivers at
// most chunk samples a read (all it can when chunk is 0).
type segmentReader struct {
	segs  [][]float32
	rates []int
	chunk int
}

func (s *segmentReader) readMono(dst []float32) (int, error) {
	if s.chunk > 0 && len(dst) > s.chunk {
		dst = dst[:s.chunk]
	}
	n := copy(dst, s.segs[0])
	s.segs[0] = s.segs[0][n:]
	if len(s.segs[0]) > 0 {
		return n, nil
	}
	if len(s.segs) == 1 {
		if n > 0 {
			return n, nil
		}
		return 0, io.EOF
	}
	s.segs, s.rates = s.segs[1:], s.rates[1:]
	return n, &rateChange{rate: s.rates[0]}
}

// TestResamplerRateChange resamples one 440 Hz sine delivered at six rates in turn
// (segment lengths chosen so that most seams fall between output samples):
// the output has the length of the whole, every sample is where the sine
// is at its time (no dip at the seams: within 6 % of the amplitude there,
// and 60 dB down away from them), and it is the same for any chunking.
func TestResamplerRateChange(t *testing.T) {
	const (
		amp  = 10000.0
		freq = 440.0
	)
	type seg struct {
		rate, n int
	}
	segs := []seg{{44100, 17641}, {48000, 14401}, {22050, 5513}, {8000, 801}, {16000, 3203}, {11025, 2205}, {24000, 6000}}
	source := func(chunk int) *segmentReader {
		r := &segmentReader{chunk: chunk}
		t0 := 0.0
		for _, s := range segs {
			x := make([]float32, s.n)
			for i := range x {
				x[i] = float32(amp * math.Sin(2*math.Pi*freq*(t0+float64(i)/float64(s.rate))))
			}
			t0 += float64(s.n) / float64(s.rate)
			r.segs = append(r.segs, x)
			r.rates = append(r.rates, s.rate)
		}
		return r
	}
	total := 0.0
	var seams []float64
	for _, s := range segs {
		total += float64(s.n) * SampleRate / float64(s.rate)
		seams = append(seams, total)
	}
	read := func(chunk, block int) []float32 {
		r := newResampler(source(chunk), segs[0].rate)
		var out []float32
		buf := make([]float32, block)
		for {
			n, err := r.read(buf)
			out = append(out, buf[:n]...)
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	y := read(0, 4096)
	if want := int(math.Ceil(total - 1e-6)); len(y) != want {
		t.Fatalf("%d samples out, want %d", len(y), want)
	}
	// The error against the sine, near the seams and away from them (the
	// stream's own start and end, faded by the filter, left out).
	var nearSeam, away float64
	for i := 80; i < len(y)-80; i++ {
		e := math.Abs(float64(y[i]) - amp*math.Sin(2*math.Pi*freq*float64(i)/SampleRate))
		near := false
		for _, s := range seams[:len(seams)-1] {
			near = near || math.Abs(float64(i)-s) < 40 // 5 ms
		}
		if near {
			nearSeam = max(nearSeam, e)
		} else {
			away = max(away, e)
		}
	}
	t.Logf("%d samples; largest error %.1f dB of the amplitude at the seams, %.1f dB away from them", len(y), dB(nearSeam/amp), dB(away/amp))
	if nearSeam > amp*0.06 || away > amp/1000 {
		t.Errorf("largest error %.1f dB at the seams (want ≤ -24.4 dB), %.1f dB elsewhere (want ≤ -60 dB)", dB(nearSeam/amp), dB(away/amp))
	}
	for _, c := range []struct{ chunk, block int }{{1, 1}, {7, 13}, {441, 80}, {1000, 1}, {3, 4096}} {
		got := read(c.chunk, c.block)
		if len(got) != len(y) {
			t.Fatalf("chunks %v: %d samples, want %d", c, len(got), len(y))
		}
		for i := range got {
			if got[i] != y[i] {
				t.Fatalf("chunks %v: sample %d = %v, want %v", c, i, got[i], y[i])
			}
		}
	}
}

// TestResamplerReset: a resampler reset onto a new stream gives what a new
// one gives, at the same or another rate, with or without a change of
// rate in the first stream.
func TestResamplerReset(t *testing.T) {
	x := toFloat32(sineSamples(44100, 1000, 12000, 10000))
	y := toFloat32(sineSamples(22050, 700, 12000, 5000))
	for _, rate := range []int{44100, 22050, 8000} {
		r := newResampler(&segmentReader{segs: [][]float32{x[:5000], y}, rates: []int{44100, 22050}}, 44100)
		buf := make([]float32, 100)
		for {
			if _, err := r.read(buf); err != nil {
				break
			}
		}
		in := toFloat32(sineSamples(rate, 300, 9000, 3000))
		r.reset(&sliceReader{s: in}, rate)
		var got []float32
		for {
			n, err := r.read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		want := resampleAll(t, in, rate, 0, 100)
		if len(got) != len(want) {
			t.Fatalf("%d Hz: %d samples after reset, want %d", rate, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%d Hz: sample %d = %v after reset, want %v", rate, i, got[i], want[i])
			}
		}
	}
}

// TestResampleAllocs: producing a frame allocates nothing, at any common
// rate.
func TestResampleAllocs(t *testing.T) {
	for _, rate := range sourceRates {
		src := &sliceReader{s: make([]float32, rate*10)}
		r := newResampler(src, rate)
		buf := make([]float32, FrameSize)
		r.read(buf) // warm up
		if a := testing.AllocsPerRun(200, func() { r.read(buf) }); a != 0 {
			t.Errorf("%d Hz: %v allocations per frame, want 0", rate, a)
		}
	}
}
