package audio

import (
	"io"
	"math"
	"sync"
)

// The resampler converts mono float32 samples from any source rate to
// SampleRate with Kaiser-windowed sinc low-pass filters, in up to three
// stages:
//
//  1. While the rate is at least 22050 Hz, a half-band filter halves it
//     (44.1 kHz → 22.05 → 11.025 kHz; 48 → 24 → 12 kHz; 32 → 16 kHz). A
//     half-band filter only has to keep 0–4 kHz clean of what folds back
//     (the top 4 kHz below the Nyquist frequency), so its transition band
//     is wide and it needs few taps, half of them zero.
//  2. A polyphase filter takes the rest of the way. For an output/input
//     ratio L/M in lowest terms, output sample n sits at input time n·M/L:
//     the integer part selects the input window and the fractional part
//     one of L precomputed filter phases, so only output samples are ever
//     computed (8000 × taps multiply-adds a second). This is the filter
//     with the sharp edge: flat to passEdge, stopAtten dB down at
//     stopEdge.
//
// Every filter is symmetric and centred, so output sample n is the signal
// at time n/8000 s exactly, with no delay. All state (input history and
// phase) lives in the stages, so a stream resampled in chunks of any size
// gives the same samples as in one piece.

// Filter specification, for a source faster than SampleRate. Below it the
// band edges scale with the source's own Nyquist frequency.
const (
	passEdge      = 3750.0 // Hz; gain within 0.01 dB of unity up to here
	stopEdge      = 4000.0 // Hz; at least stopAtten dB down from here on
	stopAtten     = 65.0   // dB, polyphase stage
	halfbandAtten = 75.0   // dB, half-band stages (what they leave folds into the passband)
	minHalfband   = 22050  // lowest rate a half-band stage halves
	maxPhases     = 256    // table phases for odd rates; between them, outputs are interpolated
	inputChunk    = 1024   // input samples a stage buffers beyond its filter's length
	minRead       = 256    // fewest samples a stage asks of its source at once
)

// monoReader is a source of mono samples in int16 units as float32.
// readMono fills dst and returns how many samples it wrote; at the end it
// returns io.EOF, or another error after the last decodable sample.
type monoReader interface {
	readMono(dst []float32) (int, error)
}

// filterBank is one rate's polyphase table: phases × taps coefficients,
// each phase stored time-reversed so that an output is a plain dot product
// with a contiguous window of input samples.
type filterBank struct {
	l, m   int // output/input ratio l/m in lowest terms
	phases int // rows in coef: l, or maxPhases when l is larger
	taps   int
	coef   []float32
}

var banks sync.Map // int source rate → *filterBank, for the common rates

// commonRate reports whether rate's tables are worth keeping for the life
// of the process. Other rates get tables of their own per stream, so odd
// inputs cannot grow the cache without bound.
func commonRate(rate int) bool {
	switch rate {
	case 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000:
		return true
	}
	return false
}

func bankFor(rate int) *filterBank {
	if !commonRate(rate) {
		return designBank(rate)
	}
	if b, ok := banks.Load(rate); ok {
		return b.(*filterBank)
	}
	b, _ := banks.LoadOrStore(rate, designBank(rate))
	return b.(*filterBank)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// kaiser returns Kaiser's β and the filter length, in taps at rate, for a
// transition band of width dw (Hz) and atten dB of stopband (Oppenheim &
// Schafer, eq. 7.62 and 7.63).
func kaiser(atten, dw float64, rate int) (beta float64, taps int) {
	beta = 0.1102 * (atten - 8.7)
	w := 2 * math.Pi * dw / float64(rate)
	return beta, int(math.Ceil((atten - 8) / (2.285 * w)))
}

// windowedSinc is the Kaiser-windowed sinc with cutoff fc (a fraction of
// the sampling rate) at offset x samples from the centre of a window half
// samples wide on each side.
func windowedSinc(x, fc, beta, half, i0b float64) float64 {
	s := 2 * fc
	if t := 2 * fc * x; t != 0 {
		s *= math.Sin(math.Pi*t) / (math.Pi * t)
	}
	r := x / half
	if r >= 1 || r <= -1 {
		return 0
	}
	return s * besselI0(beta*math.Sqrt(1-r*r)) / i0b
}

// designBank computes the polyphase table for converting rate to
// SampleRate.
func designBank(rate int) *filterBank {
	g := gcd(SampleRate, rate)
	b := &filterBank{l: SampleRate / g, m: rate / g}
	b.phases = b.l
	if !commonRate(rate) {
		// The common rates' tables are shared; an odd rate's is the
		// stream's own, so keep it small.
		b.phases = min(b.l, maxPhases)
	}

	pass, stop := passEdge, stopEdge
	if nyq := float64(min(rate, SampleRate)) / 2; stop > nyq {
		stop = nyq
		pass = nyq * passEdge / stopEdge
	}
	beta, taps := kaiser(stopAtten, stop-pass, rate)
	taps += taps & 1 // even, so the centre falls on a sample with phase 0
	b.taps = taps

	// Prototype at phases × rate, centred at n = taps·phases/2: row ph
	// holds its samples ph, ph+phases, … reversed.
	p := b.phases
	n := taps * p
	centre := float64(n) / 2
	fc := (pass + stop) / 2 / (float64(rate) * float64(p))
	i0b := besselI0(beta)
	b.coef = make([]float32, n)
	row := make([]float64, taps)
	for ph := range p {
		// Normalise each phase to unity gain at DC, so a constant input
		// gives a constant output whatever the phase.
		var sum float64
		for k := range row {
			row[k] = windowedSinc(float64(ph+k*p)-centre, fc, beta, centre+1, i0b)
			sum += row[k]
		}
		out := b.coef[ph*taps : (ph+1)*taps]
		for k, v := range row {
			out[taps-1-k] = float32(v / sum)
		}
	}
	return b
}

// besselI0 is the zeroth-order modified Bessel function of the first kind.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 500; k++ {
		term *= (x / 2) / float64(k)
		sum += term * term
		if term*term < sum*1e-17 {
			break
		}
	}
	return sum
}

// halfbandTaps returns the odd-offset coefficients c[k] = h[2k+1] of a
// half-band low-pass filter for halving rate: h[0] = 1/2, h at other even
// offsets is 0, and h is symmetric. It keeps 0–stopEdge and removes what
// would fold onto it, the band from rate/2-stopEdge up; the shortest
// Kaiser-windowed design reaching halfbandAtten there wins.
func halfbandTaps(rate int) []float32 {
	if v, ok := halfbands.Load(rate); ok {
		return v.([]float32)
	}
	beta := 0.1102 * (halfbandAtten + 3 - 8.7)
	i0b := besselI0(beta)
	var c []float32
	for k := 2; ; k++ {
		half := float64(2 * k)
		h := make([]float64, k)
		sum := 0.5
		for i := range h {
			h[i] = windowedSinc(float64(2*i+1), 0.25, beta, half, i0b)
			sum += 2 * h[i]
		}
		// Scale the outer taps so the DC gain is exactly one.
		scale := 0.5 / (sum - 0.5)
		c = make([]float32, k)
		for i := range c {
			c[i] = float32(h[i] * scale)
		}
		if halfbandStop(c, rate) <= -halfbandAtten || k >= 64 {
			break
		}
	}
	v, _ := halfbands.LoadOrStore(rate, c)
	return v.([]float32)
}

// halfbandStop is the highest gain, dB, of the half-band filter c at rate
// over the band that folds onto 0–stopEdge.
func halfbandStop(c []float32, rate int) float64 {
	worst := math.Inf(-1)
	fs := float64(rate)
	for f := fs/2 - stopEdge; f <= fs/2; f += 5 {
		w := 2 * math.Pi * f / fs
		g := 0.5
		for i, ci := range c {
			g += 2 * float64(ci) * math.Cos(w*float64(2*i+1))
		}
		worst = max(worst, 20*math.Log10(math.Abs(g)+1e-300))
	}
	return worst
}

var halfbands sync.Map // int rate → []float32

// halfband is a stage that halves the sample rate, in polyphase form.
// Output m is the filter centred on input 2m:
//
//	y[m] = x[2m]/2 + Σ c[i]·(x[2m-2i-1] + x[2m+2i+1]),  i = 0 … k-1
//
// so the input is split into its even samples (one per output) and its odd
// samples, and each output is one contiguous dot product over 2k odd
// samples with the mirrored coefficients.
type halfband struct {
	src  monoReader
	cc   []float32 // c[k-1] … c[0], c[0] … c[k-1]
	even []float32 // even[t] is x[2(m+t)], m the next output
	odd  []float32 // odd[t] is x[2(m+t-k)+1]
	in   []float32 // scratch for reading the source
	n    int64     // input samples received
	out  int64     // output samples produced
	end  int64     // outputs due once src has ended; -1 before
	err  error     // src's final error
	done bool
}

func newHalfband(src monoReader, rate int) *halfband {
	c := halfbandTaps(rate)
	k := len(c)
	h := &halfband{src: src, end: -1}
	h.cc = make([]float32, 2*k)
	for i, v := range c {
		h.cc[k-1-i], h.cc[k+i] = v, v
	}
	h.even = make([]float32, 0, inputChunk)
	// k odd samples of history (zeros) before input 0.
	h.odd = make([]float32, k, inputChunk+2*k)
	h.in = make([]float32, 2*inputChunk)
	return h
}

func (h *halfband) readMono(dst []float32) (int, error) {
	k2 := len(h.cc)
	n := 0
	for n < len(dst) {
		if h.end >= 0 && h.out >= h.end {
			break
		}
		// Read what the outputs asked for need, and no more, so that the
		// first output comes after decoding as little as possible.
		h.fill(len(dst) - n)
		run := min(len(dst)-n, len(h.even), len(h.odd)-k2+1)
		if h.end >= 0 {
			run = min(run, int(h.end-h.out))
		}
		for t := range run {
			dst[n+t] = 0.5*h.even[t] + dot(h.cc, h.odd[t:t+k2])
		}
		n += run
		h.out += int64(run)
		h.even = h.even[:copy(h.even, h.even[run:])]
		h.odd = h.odd[:copy(h.odd, h.odd[run:])]
	}
	if h.end >= 0 && h.out >= h.end {
		if h.err != nil {
			return n, h.err
		}
		return n, io.EOF
	}
	return n, nil
}

// fill reads input until want outputs can be computed, or at least one
// once something has been read; after the end it pads with zeros.
func (h *halfband) fill(want int) {
	k2 := len(h.cc)
	// Leave room in both buffers whenever fewer than want are ready.
	want = min(want, cap(h.even)-k2)
	ready := func() int { return min(len(h.even), len(h.odd)-k2+1) }
	for read := false; ready() < want && !(read && ready() > 0); read = true {
		if h.done {
			for len(h.even) < want {
				h.even = append(h.even, 0)
			}
			for len(h.odd) < want+k2-1 {
				h.odd = append(h.odd, 0)
			}
			return
		}
		// Inputs still needed: up to x[2(m+want-1)+2k-1].
		need := 2*(want-1) + k2 + 1 - 2*len(h.even) + int(h.n&1)
		room := 2 * min(cap(h.even)-len(h.even), cap(h.odd)-len(h.odd))
		in := h.in[:min(len(h.in), room, max(need, minRead))]
		m, err := h.src.readMono(in)
		for _, v := range in[:m] {
			if h.n&1 == 0 {
				h.even = append(h.even, v)
			} else {
				h.odd = append(h.odd, v)
			}
			h.n++
		}
		if err != nil {
			h.done = true
			if err != io.EOF {
				h.err = err
			}
			h.end = (h.n + 1) / 2
		}
	}
}

// resampler pulls mono samples from src at the source rate and produces
// them at SampleRate.
type resampler struct {
	first       monoReader // the source, as the first stage reads it
	src         monoReader // what the polyphase stage reads: first, or the last half-band
	rate        int        // source rate
	bank        *filterBank
	whole, frac int // M/L and M%L: the input step per output

	buf   []float32 // input samples; buf[pos] is the first of the next window
	pos   int
	phase int // in [0, l)

	counted *countingReader
	out     int64 // output samples produced
	end     int64 // output samples due in total, once src has ended; -1 before
	srcDone bool
	srcErr  error // src's final error, returned after the last sample
}

// polyphaseRate is the rate the polyphase stage works at: rate halved
// while it is even and at least minHalfband.
func polyphaseRate(rate int) int {
	for rate >= minHalfband && rate%2 == 0 {
		rate /= 2
	}
	return rate
}

// countingReader counts the source's samples, which fix the output length.
type countingReader struct {
	src monoReader
	n   int64
}

func (c *countingReader) readMono(dst []float32) (int, error) {
	n, err := c.src.readMono(dst)
	c.n += int64(n)
	return n, err
}

func newResampler(src monoReader, rate int) *resampler {
	r := &resampler{rate: rate, end: -1}
	r.counted = &countingReader{src: src}
	var s monoReader = r.counted
	stage := rate
	for stage != polyphaseRate(rate) {
		s = newHalfband(s, stage)
		stage /= 2
	}
	r.src = s
	b := bankFor(stage)
	r.bank = b
	r.whole, r.frac = b.m/b.l, b.m%b.l
	// The filter's centre is taps/2 samples into its window, so the
	// window for output 0 (input time 0) starts taps/2-1 samples before
	// the input does: that history is zeros.
	r.buf = make([]float32, b.taps/2-1, b.taps+max(inputChunk, (r.whole+2)*64))
	return r
}

// fill makes at least need samples available from pos, reading from src
// only what is missing, or padding with zeros once src has ended.
func (r *resampler) fill(need int) {
	for len(r.buf)-r.pos < need {
		if r.pos > 0 {
			n := copy(r.buf, r.buf[r.pos:])
			r.buf = r.buf[:n]
			r.pos = 0
		}
		if r.srcDone {
			// Flush the filter with zeros.
			for len(r.buf) < need {
				r.buf = append(r.buf, 0)
			}
			return
		}
		free := r.buf[len(r.buf):cap(r.buf)]
		free = free[:min(len(free), max(need-len(r.buf), minRead))]
		n, err := r.src.readMono(free)
		r.buf = r.buf[:len(r.buf)+n]
		if err != nil {
			r.srcDone = true
			if err != io.EOF {
				r.srcErr = err
			}
			// ceil(in·8000/rate) outputs cover every source sample.
			r.end = (r.counted.n*SampleRate + int64(r.rate) - 1) / int64(r.rate)
		}
	}
}

// read fills dst with resampled output and returns io.EOF (or the
// source's error) once every output sample has been delivered.
func (r *resampler) read(dst []float32) (int, error) {
	b := r.bank
	taps := b.taps
	n := 0
	for n < len(dst) {
		if r.end >= 0 && r.out >= r.end {
			break
		}
		// Input for a run of outputs: each advances pos by at most
		// whole+1 samples.
		run := min(len(dst)-n, 64)
		r.fill(taps + (r.whole+1)*run)
		if r.end >= 0 {
			run = min(run, int(r.end-r.out))
		}
		for range run {
			if b.phases == b.l {
				row := b.coef[r.phase*taps : (r.phase+1)*taps]
				dst[n] = dot(row, r.buf[r.pos:r.pos+taps])
			} else {
				// Too many phases to tabulate: interpolate between the two
				// nearest (the one after the last is the first, a sample on).
				x := r.phase * b.phases
				q := x / b.l
				f := float32(x%b.l) / float32(b.l)
				y0 := dot(b.coef[q*taps:(q+1)*taps], r.buf[r.pos:r.pos+taps])
				var y1 float32
				if q+1 < b.phases {
					y1 = dot(b.coef[(q+1)*taps:(q+2)*taps], r.buf[r.pos:r.pos+taps])
				} else {
					y1 = dot(b.coef[:taps], r.buf[r.pos+1:r.pos+1+taps])
				}
				dst[n] = y0 + f*(y1-y0)
			}
			n++
			r.out++
			r.pos += r.whole
			r.phase += r.frac
			if r.phase >= b.l {
				r.phase -= b.l
				r.pos++
			}
		}
	}
	if r.end >= 0 && r.out >= r.end {
		if r.srcErr != nil {
			return n, r.srcErr
		}
		return n, io.EOF
	}
	return n, nil
}

// dot returns the inner product of c and x[:len(c)].
func dot(c, x []float32) float32 {
	x = x[:len(c)]
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(c); i += 4 {
		// Fixed-length subslices: one bounds check per four products.
		cc, xx := c[i:i+4:i+4], x[i:i+4:i+4]
		a0 += cc[0] * xx[0]
		a1 += cc[1] * xx[1]
		a2 += cc[2] * xx[2]
		a3 += cc[3] * xx[3]
	}
	for ; i < len(c); i++ {
		a0 += c[i] * x[i]
	}
	return (a0 + a1) + (a2 + a3)
}
