package audio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

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
				data := AppendWAVHeader(nil, rate, ch, -1)
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

// rateSine is a 440 Hz sine of amplitude 10000 delivered as segments at
// the given rates and lengths, one after the other on one timeline, and
// the times (in output samples) where the segments end.
func rateSine(segs [][2]int, chunk int) (*segmentReader, []float64) {
	r := &segmentReader{chunk: chunk}
	t0 := 0.0
	var ends []float64
	for _, s := range segs {
		rate, n := s[0], s[1]
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(10000 * math.Sin(2*math.Pi*440*(t0+float64(i)/float64(rate))))
		}
		t0 += float64(n) / float64(rate)
		ends = append(ends, t0*SampleRate)
		r.segs = append(r.segs, x)
		r.rates = append(r.rates, rate)
	}
	return r, ends
}

// readResampler reads r to its end, block samples at a time.
func readResampler(t *testing.T, r *resampler, block int) []float32 {
	t.Helper()
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

// seamErrors is the largest difference, relative to the amplitude, between
// y and the 440 Hz sine of rateSine within 5 ms of each seam, and
// elsewhere (the stream's own start and end, faded by the filter, left
// out).
func seamErrors(y []float32, ends []float64) (seams []float64, away float64) {
	seams = make([]float64, len(ends)-1)
	for i := 80; i < len(y)-80; i++ {
		e := math.Abs(float64(y[i])-10000*math.Sin(2*math.Pi*440*float64(i)/SampleRate)) / 10000
		near := false
		for k, s := range ends[:len(ends)-1] {
			if math.Abs(float64(i)-s) < 40 {
				seams[k] = max(seams[k], e)
				near = true
			}
		}
		if !near {
			away = max(away, e)
		}
	}
	return seams, away
}

// TestResamplerRateChange resamples one 440 Hz sine delivered at every MP3
// rate in turn (segment lengths chosen so that most seams fall between
// output samples, one segment shorter than the filters): the output has
// the length of the whole, every sample is where the sine is at its time,
// and it is the same for any chunking. Between the MPEG-1 rates
// (concatenated files at 32, 44.1 and 48 kHz) the seams are within -40 dB
// of the sine; with the low rates, whose filters see few samples across
// the seam, within -15 dB (a restart of the filters with silence on both
// sides of the seam, what the pipeline did before, is a dip to -6 dB).
func TestResamplerRateChange(t *testing.T) {
	segs := [][2]int{{44100, 17641}, {48000, 14401}, {32000, 9601}, {44100, 11025}, {22050, 5513}, {8000, 801},
		{16000, 3203}, {16000, 50}, {11025, 2205}, {24000, 6001}, {12000, 3000}, {48000, 12000}}
	src, ends := rateSine(segs, 0)
	y := readResampler(t, newResampler(src, segs[0][0]), 4096)
	if want := int(math.Ceil(ends[len(ends)-1] - 1e-6)); len(y) != want {
		t.Fatalf("%d samples out, want %d", len(y), want)
	}
	seams, away := seamErrors(y, ends)
	for k, e := range seams {
		from, to := segs[k][0], segs[k+1][0]
		limit := -15.0
		if from >= 32000 && to >= 32000 {
			limit = -40
		}
		t.Logf("%5d → %5d Hz at %8.2f: largest error %6.1f dB", from, to, ends[k], dB(e))
		if dB(e) > limit {
			t.Errorf("%d → %d Hz: error %.1f dB at the seam, want ≤ %.0f dB", from, to, dB(e), limit)
		}
	}
	t.Logf("away from the seams: largest error %.1f dB", dB(away))
	if dB(away) > -60 {
		t.Errorf("error %.1f dB away from the seams, want ≤ -60 dB", dB(away))
	}
	for _, c := range []struct{ chunk, block int }{{1, 1}, {7, 13}, {441, 80}, {1000, 1}, {3, 4096}} {
		src, _ := rateSine(segs, c.chunk)
		got := readResampler(t, newResampler(src, segs[0][0]), c.block)
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

// TestResamplerSameRateSeams: a "change" to the same rate changes nothing
// (within float32 rounding), wherever the seams fall: the stages on each
// side of a seam add up to the stages over the whole. (The last 100
// samples are left out: where the stream ends mid-sine, the half-band
// stages' aliasing of the cut depends on their grid, which the segments
// set.)
func TestResamplerSameRateSeams(t *testing.T) {
	for _, rate := range []int{44100, 22050, 16000, 11025, 12000, 48000} {
		whole, _ := rateSine([][2]int{{rate, rate}}, 0)
		want := readResampler(t, newResampler(whole, rate), 4096)
		split, _ := rateSine([][2]int{{rate, rate/3 + 1}, {rate, 37}, {rate, rate/3 + 5}, {rate, rate - 2*(rate/3) - 43}}, 0)
		got := readResampler(t, newResampler(split, rate), 4096)
		if len(got) != len(want) {
			t.Fatalf("%d Hz: %d samples, want %d", rate, len(got), len(want))
		}
		var e float64
		for i := range got[:len(got)-100] {
			e = max(e, math.Abs(float64(got[i]-want[i])))
		}
		t.Logf("%d Hz: largest difference %.1f dB of the amplitude", rate, dB(e/10000))
		if dB(e/10000) > -95 {
			t.Errorf("%d Hz: split at the same rate differs by %.1f dB", rate, dB(e/10000))
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

// TestResamplerRandomSegments: random runs of rates (any MP3 rate, odd
// rates too), segment lengths from zero samples up, random chunking: the
// output always has the stream's length, and chunking never changes it.
func TestResamplerRandomSegments(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	rates := []int{8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 44056, 7350}
	for trial := range 40 {
		var segs [][2]int
		for range 1 + rng.IntN(6) {
			rate := rates[rng.IntN(len(rates))]
			n := []int{0, 1, 3, 50, 300, 2000, 7001}[rng.IntN(7)]
			segs = append(segs, [2]int{rate, n})
		}
		src, ends := rateSine(segs, 0)
		want := readResampler(t, newResampler(src, segs[0][0]), 4096)
		if n := int(math.Ceil(ends[len(ends)-1] - 1e-6)); len(want) != n {
			t.Fatalf("trial %d %v: %d samples, want %d", trial, segs, len(want), n)
		}
		chunk, block := 1+rng.IntN(300), 1+rng.IntN(300)
		src, _ = rateSine(segs, chunk)
		got := readResampler(t, newResampler(src, segs[0][0]), block)
		if len(got) != len(want) {
			t.Fatalf("trial %d %v, chunks %d/%d: %d samples, want %d", trial, segs, chunk, block, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("trial %d %v, chunks %d/%d: sample %d = %v, want %v", trial, segs, chunk, block, i, got[i], want[i])
			}
		}
		for i, v := range want {
			if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 20000 {
				t.Fatalf("trial %d %v: sample %d = %v", trial, segs, i, v)
			}
		}
	}
}

// TestResamplerBadRate: a change to a rate the package does not resample
// ends the stream with ErrUnsupported after the samples before it (but
// for the last ones, within the filters' reach of the seam).
func TestResamplerBadRate(t *testing.T) {
	for _, rate := range []int{0, 999, 96001} {
		src := &segmentReader{segs: [][]float32{make([]float32, 4410), make([]float32, 100)}, rates: []int{44100, rate}}
		r := newResampler(src, 44100)
		buf := make([]float32, 4096)
		var n int
		var err error
		for err == nil {
			var k int
			k, err = r.read(buf)
			n += k
		}
		if !errors.Is(err, ErrUnsupported) || n < 650 || n > 800 {
			t.Errorf("%d Hz: %d samples, %v; want 650 to 800, then ErrUnsupported", rate, n, err)
		}
	}
}

// TestOddRatesNotCached: the half-band and polyphase tables of a rate that
// does not come down to a common one are not kept for the life of the
// process, so inputs at ever new odd rates cannot grow memory.
func TestOddRatesNotCached(t *testing.T) {
	count := func() (n int) {
		for _, m := range []*sync.Map{&halfbands, &banks} {
			m.Range(func(any, any) bool { n++; return true })
		}
		return n
	}
	for _, rate := range []int{44100, 96000} { // common: cached once
		newResampler(&sliceReader{}, rate)
	}
	before := count()
	for _, rate := range []int{30002, 44056, 96002, 191998} {
		newResampler(&sliceReader{}, rate)
	}
	if after := count(); after != before {
		t.Errorf("%d tables kept for odd rates", after-before)
	}
}

// TestWAVPartialFrameKept: a sample split between two reads of the
// source survives a read that asks for more samples than any before.
func TestWAVPartialFrameKept(t *testing.T) {
	pcm := []int16{-1293, 2113, -14275, 6390, 1, -2}
	data := AppendWAVHeader(nil, 8000, 1, -1)
	for _, v := range pcm {
		data = binary.LittleEndian.AppendUint16(data, uint16(v))
	}
	br := bufio.NewReader(iotest.OneByteReader(bytes.NewReader(data)))
	w, _, err := parseWAV(br)
	if err != nil {
		t.Fatal(err)
	}
	var got []float32
	for size := 1; ; size *= 2 {
		dst := make([]float32, size)
		n, err := w.readMono(dst)
		got = append(got, dst[:n]...)
		if err != nil {
			break
		}
	}
	if want := toFloat32(pcm); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// feedReader is a stream's source as the edge has it: the bytes pushed so
// far, a Read that waits for more, and a signal each time a Read finds
// nothing to return (the reader has done all it can with what came).
type feedReader struct {
	mu      sync.Mutex
	cond    sync.Cond
	buf     []byte
	end     bool
	starved chan struct{}
}

func newFeedReader() *feedReader {
	f := &feedReader{starved: make(chan struct{}, 1)}
	f.cond.L = &f.mu
	return f
}

func (f *feedReader) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.buf) == 0 && !f.end {
		select {
		case f.starved <- struct{}{}:
		default:
		}
		f.cond.Wait()
	}
	if len(f.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

// push adds b (and the end with end) and waits until the reader has used
// all it can of it.
func (f *feedReader) push(b []byte, end bool) {
	select {
	case <-f.starved:
	default:
	}
	f.mu.Lock()
	f.buf = append(f.buf, b...)
	f.end = end
	f.cond.Broadcast()
	f.mu.Unlock()
	if !end {
		<-f.starved
	}
}

// lookahead is how far the resampler's filters reach ahead of an output
// sample into the input at rate, in input samples: the half-band stages'
// taps and half the polyphase filter.
func lookahead(rate int) int {
	tail, step := 0, 1
	for st := rate; st != polyphaseRate(rate); st /= 2 {
		tail += (2*len(halfbandTaps(st)) - 1) * (rate / st)
		step *= 2
	}
	return tail + bankFor(polyphaseRate(rate)).taps/2*step
}

// TestStreamFramesEarly: a PCM stream arriving in chunks gives every 20 ms
// frame as soon as the input it depends on is in: 20 ms of output and the
// filters' look-ahead, not a block of input more. With 20 ms chunks at
// 24 kHz the first frame follows the second chunk (40 ms in, the filters
// reaching 12.5 ms ahead); with 40 ms chunks it follows the first.
func TestStreamFramesEarly(t *testing.T) {
	for _, rate := range []int{16000, 22050, 24000, 44100, 48000} {
		for _, ms := range []int{20, 40} {
			t.Run(fmt.Sprintf("%d Hz %d ms", rate, ms), func(t *testing.T) {
				pcm := toFloat32(sineSamples(rate, 440, 8000, rate))
				f := newFeedReader()
				var frames atomic.Int64
				done := make(chan error, 1)
				go func() {
					tr, err := NewTranscoder(f, Options{})
					if err != nil {
						done <- err
						return
					}
					var frame [FrameSize]byte
					for {
						n, err := io.ReadFull(tr, frame[:])
						if n == FrameSize {
							frames.Add(1)
						}
						if err != nil {
							done <- nil
							return
						}
					}
				}()
				f.push(AppendWAVHeader(nil, rate, 1, -1), false)
				chunk := rate * ms / 1000
				reach := lookahead(rate)
				for in := 0; in+chunk <= len(pcm); in += chunk {
					var b []byte
					for _, v := range pcm[in : in+chunk] {
						b = binary.LittleEndian.AppendUint16(b, uint16(int16(v)))
					}
					f.push(b, false)
					// Outputs whose input is in: output i needs input up to
					// i·rate/8000 + reach.
					have := in + chunk
					ready := max(0, (have-reach)*SampleRate/rate)
					if got, want := frames.Load(), int64(ready/FrameSize); got < want {
						t.Fatalf("after %d ms of input: %d frames out, want %d (%d of %d samples ready)", have*1000/rate, got, want, ready, FrameSize*want)
					}
					if in == 0 && ms == 40 && frames.Load() == 0 {
						t.Fatalf("no frame after the first %d ms chunk", ms)
					}
				}
				f.push(nil, true)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}
