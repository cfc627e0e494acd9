package audio

import (
	"io"
	"math"
	"sync"
)

// The resampler is a polyphase windowed-sinc (Kaiser) low-pass interpolator
// that converts mono float32 samples from any source rate to SampleRate.
// For an output/input ratio L/M in lowest terms, output sample n sits at
// input time n·M/L: its integer part selects the input window and its
// fractional part one of L precomputed filter phases, so only the output
// samples are ever computed (about 8000 × taps multiply-adds a second).
// All state (input history and phase) lives in the resampler, so a stream
// resampled in chunks of any size gives the same samples as in one piece.

// Filter specification, for a source faster than SampleRate. Below it the
// band edges scale with the source's own Nyquist frequency.
const (
	passEdge   = 3400.0 // Hz; gain within 0.1 dB of unity up to here
	stopEdge   = 4000.0 // Hz; at least stopAtten dB down from here on
	stopAtten  = 65.0   // dB
	maxPhases  = 1024   // table phases; more are rounded to the nearest
	inputChunk = 1024   // input samples pulled from the source at a time
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

func bankFor(rate int) *filterBank {
	common := false
	switch rate {
	case 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000:
		common = true
	}
	if common {
		if b, ok := banks.Load(rate); ok {
			return b.(*filterBank)
		}
	}
	b := designBank(rate)
	if common {
		banks.Store(rate, b)
	}
	return b
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// designBank computes the Kaiser-windowed sinc table for converting rate
// to SampleRate.
func designBank(rate int) *filterBank {
	g := gcd(SampleRate, rate)
	b := &filterBank{l: SampleRate / g, m: rate / g}
	b.phases = min(b.l, maxPhases)

	pass, stop := passEdge, stopEdge
	if nyq := float64(min(rate, SampleRate)) / 2; stop > nyq {
		stop = nyq
		pass = nyq * passEdge / stopEdge
	}
	fc := (pass + stop) / 2
	// Kaiser's estimates for the window (Oppenheim & Schafer 7.6).
	beta := 0.1102 * (stopAtten - 8.7)
	dw := 2 * math.Pi * (stop - pass) / float64(rate)
	taps := int(math.Ceil((stopAtten - 8) / (2.285 * dw)))
	taps += taps & 1 // even, so the centre falls on a sample with phase 0
	b.taps = taps

	// Prototype at phases × rate, centred at n = taps·phases/2.
	p := b.phases
	n := taps * p
	centre := float64(n) / 2
	half := centre + 1 // window half-width, a little past the last tap
	i0b := besselI0(beta)
	proto := make([]float64, n)
	up := float64(rate) * float64(p)
	for i := range proto {
		x := float64(i) - centre
		t := 2 * fc * x / up
		s := 2 * fc / up
		if t != 0 {
			s *= math.Sin(math.Pi*t) / (math.Pi * t)
		}
		r := x / half
		proto[i] = s * besselI0(beta*math.Sqrt(1-r*r)) / i0b
	}
	b.coef = make([]float32, n)
	for ph := range p {
		row := b.coef[ph*taps : (ph+1)*taps]
		// Normalise each phase to unity gain at DC, so a constant input
		// gives a constant output whatever the phase.
		var sum float64
		for k := range taps {
			sum += proto[ph+k*p]
		}
		for k := range taps {
			row[taps-1-k] = float32(proto[ph+k*p] / sum)
		}
	}
	return b
}

// besselI0 is the zeroth-order modified Bessel function of the first kind.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 200; k++ {
		term *= (x / 2) / float64(k)
		sum += term * term
		if term*term < sum*1e-17 {
			break
		}
	}
	return sum
}

// resampler pulls mono samples from src at the source rate and produces
// them at SampleRate.
type resampler struct {
	src         monoReader
	bank        *filterBank
	whole, frac int // M/L and M%L: the input step per output

	buf   []float32 // input samples; buf[pos] is the first of the next window
	pos   int
	phase int // in [0, l)

	in      int64 // input samples received from src
	out     int64 // output samples produced
	end     int64 // output samples due in total, once src has ended
	srcDone bool
	srcErr  error // src's final error, returned after the last sample
}

func newResampler(src monoReader, rate int) *resampler {
	b := bankFor(rate)
	r := &resampler{
		src:   src,
		bank:  b,
		whole: b.m / b.l,
		frac:  b.m % b.l,
		buf:   make([]float32, b.taps/2-1, b.taps+inputChunk),
		end:   -1,
	}
	// The filter's centre is taps/2 samples into its window, so the
	// window for output 0 (input time 0) starts taps/2-1 samples before
	// the input does: that history is the zeros above.
	return r
}

// fill makes at least need samples available from pos, reading from src,
// or padding with zeros once src has ended.
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
		n, err := r.src.readMono(free)
		r.buf = r.buf[:len(r.buf)+n]
		r.in += int64(n)
		if err != nil {
			r.srcDone = true
			if err != io.EOF {
				r.srcErr = err
			}
			b := r.bank
			// ceil(in·l/m) outputs cover every input sample.
			r.end = (r.in*int64(b.l) + int64(b.m) - 1) / int64(b.m)
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
		// Enough input for a run of outputs: each advances pos by at most
		// whole+1 samples.
		run := len(dst) - n
		r.fill(taps + (r.whole+1)*min(run, 64))
		if r.end >= 0 {
			run = min(run, int(r.end-r.out))
		}
		avail := len(r.buf) - r.pos - taps
		for ; run > 0 && avail >= r.whole+1; run-- {
			start := r.pos
			var row []float32
			if b.phases == b.l {
				row = b.coef[r.phase*taps : (r.phase+1)*taps]
			} else {
				// Too many phases to tabulate: use the nearest one.
				q := (r.phase*b.phases + b.l/2) / b.l
				if q == b.phases {
					q = 0
					start++
				}
				row = b.coef[q*taps : (q+1)*taps]
			}
			dst[n] = dot(row, r.buf[start:start+taps])
			n++
			r.out++
			r.pos += r.whole
			r.phase += r.frac
			if r.phase >= b.l {
				r.phase -= b.l
				r.pos++
			}
			avail -= r.whole + 1
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
		a0 += c[i] * x[i]
		a1 += c[i+1] * x[i+1]
		a2 += c[i+2] * x[i+2]
		a3 += c[i+3] * x[i+3]
	}
	for ; i < len(c); i++ {
		a0 += c[i] * x[i]
	}
	return (a0 + a1) + (a2 + a3)
}
