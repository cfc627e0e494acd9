package audio

import (
	"errors"
	"fmt"
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
//     with the sharp edge: flat to passEdge, −6 dB at cutoff (where soxr's
//     very-high-quality filter has it), stopAtten dB down from stopEdge.
//
// Every filter is symmetric and centred, so output sample n is the signal
// at time n/8000 s exactly, with no delay. All state (input history and
// phase) lives in the stages, so a stream resampled in chunks of any size
// gives the same samples as in one piece. The stages read their sources
// for what the outputs asked for need, and take what the source has: on a
// live stream a read returns as soon as the input windows of all it asked
// for are in, never waiting for a block of input beyond them.
//
// The source's rate may change mid-stream (concatenated MP3s): the source
// returns a *rateChange error (mp3.go) after its last sample at the old
// rate, and its next samples are at the new rate. The resampler takes it
// in its stride; the caller of read never sees it. The stages for the old
// rate run on past its last sample, on zeros, to the end of their reach
// (the segment's tail); new stages for the new rate start as far before
// its first sample, on zeros; where the two overlap their outputs are
// added. Filtering is linear, so at one rate the sum is exactly the
// filtered whole; across rates each side's samples stand for the signal up
// to the seam (the first new sample is weighted for the difference in
// spacing), so the seam adds no gap, dip or click of its own: −60 to
// −70 dB from a sine between 32, 44.1 and 48 kHz, −27 to −48 dB with the
// low rates, whose filters see few samples across the seam.

// Filter specification, for a source faster than SampleRate. Below it the
// band edges scale with the source's own Nyquist frequency.
const (
	passEdge      = 3685.0 // Hz; gain within 0.001 dB of unity up to here
	cutoff        = 3825.0 // Hz; −6 dB (soxr's is at 3822 Hz: pass band to 0.91 of 4 kHz)
	stopEdge      = 3965.0 // Hz; at least stopAtten dB down from here on
	stopAtten     = 100.0  // dB, polyphase stage
	keepEdge      = 4000.0 // Hz; the band the half-band stages keep, flat and clean
	halfbandAtten = 100.0  // dB, half-band stages (what they leave folds into 0–keepEdge)
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
	phases int // rows in coef: l; maxPhases when l is larger; or a multiple of l
	taps   int // a multiple of 8, for the vector kernel
	coef   []float32

	// For a small ratio (l and m at most maxSplit, phases = l): each
	// row's taps split by their index modulo m, split[ph*m+j] holding
	// row ph's taps j, j+m, j+2m, … (see resampler.split).
	split [][]float32
}

// maxSplit bounds l and m for the split form of a table: 12 kHz (2/3) and
// 16 kHz (1/2), the rates every PCM stream from 16 kHz up and MP3s at
// 12, 16, 24, 32 and 48 kHz are filtered at.
const maxSplit = 4

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
		return designBank(rate, 0)
	}
	if b, ok := banks.Load(rate); ok {
		return b.(*filterBank)
	}
	b, _ := banks.LoadOrStore(rate, designBank(rate, 0))
	return b.(*filterBank)
}

// fineBankFor is rate's table with at least maxPhases phases, a multiple
// of l: for a segment that starts, after a change of rate, between the
// points of the usual table's grid. nil when the usual table is fine
// enough (l ≥ maxPhases, or an odd rate's interpolated table).
func fineBankFor(rate int) *filterBank {
	g := gcd(SampleRate, rate)
	l := SampleRate / g
	if l >= maxPhases || !commonRate(rate) {
		return nil
	}
	if b, ok := banks.Load(-rate); ok {
		return b.(*filterBank)
	}
	b, _ := banks.LoadOrStore(-rate, designBank(rate, l*((maxPhases+l-1)/l)))
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

// bandEdges returns the polyphase filter's pass edge, cutoff and stop edge
// for a source at rate: the constants above, scaled down to the source's
// Nyquist frequency when it is below keepEdge.
func bandEdges(rate int) (pass, fc, stop float64) {
	scale := min(1, float64(rate)/2/keepEdge)
	return passEdge * scale, cutoff * scale, stopEdge * scale
}

// designBank computes the polyphase table for converting rate to
// SampleRate, with the given number of phases (0: l, or at most
// maxPhases for an odd rate).
func designBank(rate, phases int) *filterBank {
	g := gcd(SampleRate, rate)
	b := &filterBank{l: SampleRate / g, m: rate / g, phases: phases}
	if phases == 0 {
		b.phases = b.l
		if !commonRate(rate) {
			// The common rates' tables are shared; an odd rate's is the
			// stream's own, so keep it small.
			b.phases = min(b.l, maxPhases)
		}
	}

	pass, fc, stop := bandEdges(rate)
	beta, taps := kaiser(stopAtten, stop-pass, rate)
	taps = (taps + 7) &^ 7 // a multiple of 8 (so even: the centre falls on a sample with phase 0)
	b.taps = taps

	// Prototype at phases × rate, centred at n = taps·phases/2: row ph
	// holds its samples ph, ph+phases, … reversed.
	p := b.phases
	n := taps * p
	centre := float64(n) / 2
	fcn := fc / (float64(rate) * float64(p))
	i0b := besselI0(beta)
	b.coef = make([]float32, n)
	row := make([]float64, taps)
	for ph := range p {
		// Normalise each phase to unity gain at DC, so a constant input
		// gives a constant output whatever the phase.
		var sum float64
		for k := range row {
			row[k] = windowedSinc(float64(ph+k*p)-centre, fcn, beta, centre+1, i0b)
			sum += row[k]
		}
		out := b.coef[ph*taps : (ph+1)*taps]
		for k, v := range row {
			out[taps-1-k] = float32(v / sum)
		}
	}
	if b.phases == b.l && b.l <= maxSplit && b.m <= maxSplit {
		for ph := range b.l {
			row := b.coef[ph*taps : (ph+1)*taps]
			for j := range b.m {
				var part []float32
				for k := j; k < taps; k += b.m {
					part = append(part, row[k])
				}
				b.split = append(b.split, part)
			}
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
// offsets is 0, and h is symmetric. It keeps 0–keepEdge and removes what
// would fold onto it, the band from rate/2-keepEdge up; the shortest
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
	if !commonRate(polyphaseRate(rate)) {
		// An odd rate's own: not kept, as for its filter bank.
		return c
	}
	v, _ := halfbands.LoadOrStore(rate, c)
	return v.([]float32)
}

// halfbandStop is the highest gain, dB, of the half-band filter c at rate
// over the band that folds onto 0–keepEdge.
func halfbandStop(c []float32, rate int) float64 {
	worst := math.Inf(-1)
	fs := float64(rate)
	for f := fs/2 - keepEdge; f <= fs/2; f += 5 {
		worst = max(worst, 20*math.Log10(math.Abs(halfbandGain(c, f/fs))+1e-300))
	}
	return worst
}

// halfbandGain is the half-band filter c's gain at f, a fraction of its
// input rate.
func halfbandGain(c []float32, f float64) float64 {
	w := 2 * math.Pi * f
	g := 0.5
	for i, ci := range c {
		g += 2 * float64(ci) * math.Cos(w*float64(2*i+1))
	}
	return g
}

var halfbands sync.Map // int rate → []float32, for rates that halve to a common rate

// halfband is a stage that halves the sample rate, in polyphase form.
// Output m is the filter centred on input 2m:
//
//	y[m] = x[2m]/2 + Σ c[i]·(x[2m-2i-1] + x[2m+2i+1]),  i = 0 … k-1
//
// so the input is split into its even samples (one per output) and its odd
// samples, and the outputs are one filter run over the odd samples with
// the mirrored coefficients.
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
		if n > 0 && h.ready() == 0 {
			// The next output needs input not read yet: deliver these
			// first, rather than wait for it.
			break
		}
		h.fill(len(dst) - n)
		run := min(len(dst)-n, h.ready())
		if h.end >= 0 {
			run = min(run, int(h.end-h.out))
		}
		out := dst[n : n+run]
		fir(out, h.odd[:run+k2-1], h.cc)
		for t, v := range h.even[:run] {
			out[t] += 0.5 * v
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

// ready is how many outputs the input held can compute.
func (h *halfband) ready() int { return max(0, min(len(h.even), len(h.odd)-len(h.cc)+1)) }

// fill reads input until at least one output can be computed, asking the
// source at once for what want outputs need; it reads only while no
// output can be computed, so it waits for the source only when the next
// output needs it. After the end it pads with zeros.
func (h *halfband) fill(want int) {
	k2 := len(h.cc)
	// Leave room in both buffers whenever fewer than want are ready.
	want = min(want, cap(h.even)-k2)
	for h.ready() == 0 {
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
		h.split(in[:m])
		if err != nil {
			h.done = true
			if err != io.EOF {
				h.err = err
			}
			h.end = (h.n + 1) / 2
		}
	}
}

// split appends the samples in to the even and odd buffers, which have
// room for them.
func (h *halfband) split(in []float32) {
	if len(in) > 0 && h.n&1 == 1 {
		h.odd = append(h.odd, in[0])
		in = in[1:]
		h.n++
	}
	ne, no := (len(in)+1)/2, len(in)/2
	e, o := len(h.even), len(h.odd)
	h.even, h.odd = h.even[:e+ne], h.odd[:o+no]
	ev, od := h.even[e:], h.odd[o:]
	for j := range od {
		p := in[2*j : 2*j+2 : 2*j+2]
		ev[j], od[j] = p[0], p[1]
	}
	if ne > no {
		ev[ne-1] = in[len(in)-1]
	}
	h.n += int64(len(in))
}

// resampler pulls mono samples from src at the source rate and produces
// them at SampleRate. A stream is a run of segments, one per source rate
// (one for almost every stream); the stages belong to the current one.
//
// Output sample i is at time i (in output samples). A segment's first
// sample is at time begun; its stages see zeros before it from time
// origin on (origin = begun for the stream's first segment) and, when it
// ends in a change of rate, tail zeros after it.
type resampler struct {
	src    segmentSource // the source, with the segment's leading and tail zeros
	stage  monoReader    // what the polyphase stage reads: &src, or the last half-band
	rate   int           // the current segment's source rate
	bank   *filterBank   // nil: the segment is at SampleRate and passes through
	whole  int           // M/L: whole polyphase inputs per output
	frac   int           // and the fraction, in units
	unit   int           // steps of phase per input sample: L, or the phases of a finer table
	begun  float64       // time of the segment's first sample
	origin float64       // time of its stages' first input (leading zeros included)
	reach  float64       // how far an output reaches ahead into the segment's input, in outputs

	buf   []float32 // polyphase input; buf[pos] is the first of the next window
	pos   int
	phase int   // in [0, unit)
	out   int64 // output samples produced, all segments
	end   int64 // outputs due when the segment's source has ended; -1 before
	cut   int64 // after a change of rate: the first output the next segment adds to; -1 before
	done  bool  // the segment's input has ended
	err   error // how (nil: io.EOF or a change of rate)

	// Outputs from index carryAt on still have carry[…] to add: the tail
	// of the segments before the current one.
	carry   []float32
	carryAt int64
	scratch []float32

	// The split form's input: buf dealt into m sequences, comp[j][v] =
	// buf[cbase+j+m·v], as far as buf[cfill-1] (cbase may be negative:
	// the sequences keep what buf has dropped), and its sums.
	comp         [maxSplit][]float32
	cbase, cfill int
	sum          []float32
}

// segmentSource delivers a segment of the source: lead zeros, the
// source's samples, and, when the source changes rate, tail zeros before
// the change is reported.
type segmentSource struct {
	src   monoReader
	lead  int         // zeros still to deliver before the source's samples
	tail  int         // zeros to deliver after them, if the segment ends in a change of rate
	n     int64       // the source's samples in this segment
	first float32     // weight of its first sample
	all   int64       // samples delivered in this segment, zeros included
	next  *rateChange // the change of rate that ends the segment, once seen
}

func (s *segmentSource) readMono(dst []float32) (int, error) {
	var k int
	var err error
	switch {
	case s.lead > 0:
		k = min(len(dst), s.lead)
		clear(dst[:k])
		s.lead -= k
	case s.next != nil:
		if s.tail == 0 {
			return 0, s.next
		}
		k = min(len(dst), s.tail)
		clear(dst[:k])
		s.tail -= k
	default:
		k, err = s.src.readMono(dst)
		if s.n == 0 && k > 0 {
			dst[0] *= s.first
		}
		s.n += int64(k)
		if errors.As(err, &s.next) {
			err = nil
			if k == 0 && s.tail == 0 {
				err = s.next
			}
		}
	}
	s.all += int64(k)
	return k, err
}

// polyphaseRate is the rate the polyphase stage works at: rate halved
// while it is even and at least minHalfband.
func polyphaseRate(rate int) int {
	for rate >= minHalfband && rate%2 == 0 {
		rate /= 2
	}
	return rate
}

// newResampler returns a resampler of src, whose samples are at rate Hz
// (any rate from 1000 Hz up; SampleRate passes through unchanged).
func newResampler(src monoReader, rate int) *resampler {
	r := &resampler{}
	r.reset(src, rate)
	return r
}

// reset starts the resampler over on a new stream from src at rate: as
// newResampler, reusing what can be reused.
func (r *resampler) reset(src monoReader, rate int) {
	r.src.src = src
	r.out = 0
	r.carry, r.carryAt = r.carry[:0], 0
	r.begin(rate, 0)
}

// begin starts a segment at rate whose first sample is at time begun; its
// first output is r.out (before begun after a change of rate, to add to
// the previous segment's tail).
func (r *resampler) begin(rate int, begun float64) {
	r.rate = rate
	r.begun = begun
	r.end, r.cut = -1, -1
	r.done, r.err = false, nil
	r.src.n, r.src.all, r.src.next = 0, 0, nil
	r.src.lead, r.src.tail, r.src.first = 0, 0, 1
	step := 1 // source samples per polyphase input
	for st := rate; st != polyphaseRate(rate); st /= 2 {
		step *= 2
	}
	// Lead zeros from r.out on, a whole number of polyphase inputs.
	if d := begun - float64(r.out); d > 1e-6 {
		r.src.lead = step * int(math.Ceil(d*float64(rate)/SampleRate/float64(step)-1e-9))
	}
	r.origin = begun - float64(r.src.lead)*SampleRate/float64(rate)
	delta := float64(r.out) - r.origin // ≥ 0
	var s monoReader = &r.src
	if rate == SampleRate && begun == 0 {
		// Passed through: a stream that starts at 8000 Hz. (After a
		// change of rate, 8000 Hz is filtered like any other rate, so
		// that the seams add up.)
		r.bank, r.stage, r.reach = nil, s, 0
		return
	}
	tail := 0 // the stages' reach, in source samples
	for st := rate; st != polyphaseRate(rate); st /= 2 {
		s = newHalfband(s, st)
		tail += (2*len(halfbandTaps(st)) - 1) * (rate / st)
	}
	r.stage = s
	stage := polyphaseRate(rate)
	b := bankFor(stage)
	if x := delta * float64(b.m); math.Abs(x-math.Round(x)) > 1e-6 {
		// Off the table's grid: a finer table, if there is one.
		if fine := fineBankFor(stage); fine != nil {
			b = fine
		}
	}
	r.bank = b
	k := 1
	if b.phases > b.l {
		k = b.phases / b.l
	}
	r.unit = b.l * k
	r.whole, r.frac = b.m/b.l, b.m%b.l*k
	// An output reaches taps/2 polyphase inputs ahead of its time, and
	// each of those as far as the half-band stages reach: the stages' tail
	// after a seam, and how far before one the next segment's outputs
	// start (two polyphase inputs less, to be safe from rounding).
	tail += b.taps / 2 * step
	r.src.tail = tail + 2*step
	r.reach = float64(tail-2*step) * SampleRate / float64(rate)
	// The filter's centre is taps/2 samples into its window, so the
	// window for an output at input time 0 starts taps/2-1 samples before
	// the input does: that history is zeros.
	hist := b.taps/2 - 1
	size := b.taps + max(inputChunk, (r.whole+2)*64)
	if cap(r.buf) < size {
		r.buf = make([]float32, 0, size)
	}
	r.buf = r.buf[:hist]
	clear(r.buf)
	r.cbase, r.cfill = 0, 0
	for j := range r.comp {
		r.comp[j] = r.comp[j][:0]
	}
	// r.out is δ output samples after the first input: δ·M/L polyphase
	// inputs, in steps of 1/unit.
	q := int64(math.Round(delta * float64(b.m) * float64(k)))
	r.pos, r.phase = int(q/int64(r.unit)), int(q%int64(r.unit))
}

// fill makes at least need samples available from pos, reading from the
// stage only what is missing, or padding with zeros once it has ended.
// Each read asks for what want samples lack (at least minRead, at most
// the buffer's room), but fill reads again only while fewer than need are
// there: it waits for the source only when the next output needs it.
func (r *resampler) fill(need, want int) {
	want = max(need, min(want, cap(r.buf)))
	for len(r.buf)-r.pos < need {
		if r.pos > 0 && cap(r.buf)-r.pos < want {
			n := copy(r.buf, r.buf[r.pos:])
			r.buf = r.buf[:n]
			r.shiftComps()
			r.pos = 0
		}
		if r.done {
			for len(r.buf) < r.pos+need {
				r.buf = append(r.buf, 0)
			}
			return
		}
		free := r.buf[len(r.buf):cap(r.buf)]
		free = free[:min(len(free), max(r.pos+want-len(r.buf), minRead))]
		n, err := r.stage.readMono(free)
		r.buf = r.buf[:len(r.buf)+n]
		if err != nil {
			r.ended(err)
		}
	}
}

// ended records the error that ended the segment's input, and the number
// of outputs that makes.
func (r *resampler) ended(err error) {
	r.done = true
	if err != io.EOF && err != r.src.next {
		r.err = err
	}
	n, rate := r.src.n, int64(r.rate)
	switch {
	case r.src.next != nil:
		// The stages run on to the end of their reach (the tail zeros).
		t := r.origin + float64(r.src.all)*SampleRate/float64(rate)
		r.end = max(r.out, int64(math.Ceil(t-1e-6)))
	case r.begun == 0:
		// The end of the stream: ceil(n·8000/rate), exactly.
		r.end = (n*SampleRate + rate - 1) / rate
	default:
		r.end = max(r.out, int64(math.Ceil(r.seam()-1e-6)))
	}
}

// seam is the time the segment's source samples end.
func (r *resampler) seam() float64 {
	return r.begun + float64(r.src.n)*SampleRate/float64(r.rate)
}

// read fills dst with resampled output and returns io.EOF (or the
// source's error) once every output sample has been delivered. A change
// to a rate it cannot take (below 1000 Hz, or odd and above 48 kHz) ends
// the stream with ErrUnsupported.
func (r *resampler) read(dst []float32) (int, error) {
	n := 0
	for {
		k := r.produce(dst[n:])
		r.addCarry(dst[n:n+k], r.out-int64(k))
		n += k
		if r.cut >= 0 && r.out >= r.cut {
			// Run this segment's stages to their end into the carry, and
			// go on with the next segment from the cut.
			if next := r.src.next.rate; next < 1000 || polyphaseRate(next) > 48000 {
				// Not a rate this package resamples (no MP3 has one).
				return n, fmt.Errorf("%w: sample rate changes to %d Hz", ErrUnsupported, next)
			}
			cut, old := r.cut, r.rate
			r.drain()
			r.out = cut
			r.begin(r.src.next.rate, r.seam())
			// A sample stands for the signal over its own spacing, centred
			// on it: the old rate's last one up to half its spacing after
			// it, the new rate's first one from half its own before it.
			// The first new sample is weighted to cover the difference, so
			// that the two neither overlap nor leave a gap.
			r.src.first = float32(1+float64(r.rate)/float64(old)) / 2
			continue
		}
		if r.done && r.out >= r.end && r.src.next == nil {
			if r.err != nil {
				return n, r.err
			}
			return n, io.EOF
		}
		if n == len(dst) || k == 0 && !r.done {
			return n, nil
		}
	}
}

// produce computes outputs of the current segment into dst, up to its
// end or the cut.
func (r *resampler) produce(dst []float32) int {
	if r.bank == nil {
		return r.pass(dst)
	}
	return r.filter(dst)
}

// checkCut sets the cut once the change of rate that ends the segment has
// been seen: the next segment's outputs start where this one's still need
// samples beyond the seam, none of which has been produced yet (outputs
// are only computed once their input is in).
func (r *resampler) checkCut() {
	if r.src.next != nil && r.cut < 0 {
		r.cut = max(r.out, int64(math.Ceil(r.seam()-r.reach)))
	}
}

// room is how many outputs the segment may produce now, at most want.
func (r *resampler) room(want int) int {
	if r.done {
		want = min(want, int(max(0, r.end-r.out)))
	}
	if r.cut >= 0 {
		want = min(want, int(max(0, r.cut-r.out)))
	}
	return want
}

// drain computes the rest of the segment's outputs, from the cut to its
// end, and adds them to the carry.
func (r *resampler) drain() {
	r.cut = math.MaxInt64
	if r.scratch == nil {
		r.scratch = make([]float32, 256)
	}
	for {
		k := r.produce(r.scratch)
		if k == 0 {
			if r.done && r.out >= r.end {
				return
			}
			continue
		}
		at := int(r.out - int64(k) - r.carryAt)
		for len(r.carry) < at+k {
			r.carry = append(r.carry, 0)
		}
		for i, v := range r.scratch[:k] {
			r.carry[at+i] += v
		}
	}
}

// addCarry adds what is carried for outputs from index at on to y.
func (r *resampler) addCarry(y []float32, at int64) {
	if len(r.carry) == 0 {
		r.carryAt = at + int64(len(y))
		return
	}
	off := int(at - r.carryAt)
	for i := range y {
		if j := off + i; j >= 0 && j < len(r.carry) {
			y[i] += r.carry[j]
		}
	}
	used := min(len(r.carry), max(0, off+len(y)))
	r.carry = r.carry[:copy(r.carry, r.carry[used:])]
	r.carryAt += int64(used)
	if len(r.carry) == 0 {
		r.carryAt = at + int64(len(y))
	}
}

// pass copies a segment at SampleRate through.
func (r *resampler) pass(dst []float32) int {
	n := 0
	for n < len(dst) && !r.done && r.room(1) > 0 {
		k, err := r.stage.readMono(dst[n:])
		n += k
		r.out += int64(k)
		if err != nil {
			r.ended(err)
			r.end = r.out
		}
		r.checkCut()
	}
	return n
}

// filter produces outputs of the current segment through the polyphase
// stage, up to len(dst) or the segment's end. It reads the input the
// outputs of dst need, and no more: dst is done as soon as the last of
// its windows is in, never waiting for a block of input beyond it.
func (r *resampler) filter(dst []float32) int {
	b := r.bank
	taps := b.taps
	step := r.whole*r.unit + r.frac // phase units per output
	n := 0
	for n < len(dst) && r.room(1) > 0 {
		rest := len(dst) - n
		run := r.ready(rest)
		if run < rest && (!r.done || run == 0) {
			// Read what the rest of dst needs first (as much as the
			// buffer holds): the caller waits for all of dst anyway, and
			// one long run costs less than many short ones.
			w := r.window()
			need := w + int((int64(r.phase)+int64(rest-1)*int64(step))/int64(r.unit))
			r.fill(min(need, cap(r.buf)), need+1)
			r.checkCut()
			if run = r.ready(rest); run == 0 {
				continue
			}
		}
		run = r.room(run)
		if b.split != nil && b.phases == r.unit {
			r.splitFilter(dst[n : n+run])
			n += run
			r.out += int64(run)
			t := r.phase + run*step
			r.pos += t / r.unit
			r.phase = t % r.unit
			continue
		}
		for range run {
			if b.phases == r.unit {
				row := b.coef[r.phase*taps : (r.phase+1)*taps]
				dst[n] = dot(row, r.buf[r.pos:r.pos+taps])
			} else {
				// Too many phases to tabulate: interpolate between the two
				// nearest (the one after the last is the first, a sample on).
				x := r.phase * b.phases
				q := x / r.unit
				f := float32(x%r.unit) / float32(r.unit)
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
			if r.phase >= r.unit {
				r.phase -= r.unit
				r.pos++
			}
		}
	}
	return n
}

// window is how many input samples an output reads from its position:
// the filter's taps, and one more for interpolated phases.
func (r *resampler) window() int {
	if r.bank.phases == r.unit {
		return r.bank.taps
	}
	return r.bank.taps + 1
}

// ready is how many of the next outputs, at most limit, have their input
// window in the buffer.
func (r *resampler) ready(limit int) int {
	a := len(r.buf) - r.pos - r.window() // the last position whose window is in
	if a < 0 {
		return 0
	}
	// Output j is at position (phase + j·step)/unit from pos.
	step := int64(r.whole*r.unit + r.frac)
	j := (int64(a+1)*int64(r.unit) - 1 - int64(r.phase)) / step
	return int(min(j+1, int64(limit)))
}

// splitFilter computes len(dst) outputs from pos and phase with a table
// in split form, without moving pos. With l/m in lowest terms, outputs
// a, a+l, a+2l, … share a phase and their windows start m samples apart:
// dealt into m sequences (every m-th sample), the input makes each
// phase's outputs m plain FIR filters run across consecutive outputs
// (firAdd, vectorised across outputs: no horizontal sums, each tap loaded
// once for eight outputs). Each output is one sum over taps 0, m, 2m, …,
// then 1, m+1, …: the same operations wherever it falls in a run, so that
// the result does not depend on how the stream is cut.
// Runs are computed in whole blocks of eight, the extra outputs of the
// last block (on input not in yet, or zeros) thrown away.
func (r *resampler) splitFilter(dst []float32) {
	b := r.bank
	l, m := b.l, b.m
	n := len(dst)
	lanes := ((n+l-1)/l + 7) &^ 7 // outputs per phase, rounded up to a block
	// Deal what came since the last call.
	r.deal()
	// Room for the whole blocks: a window starts at most
	// (phase+(l-1)·m)/l + m-1 < 2m samples after pos, under 2 more in a
	// sequence. What lies past the input dealt is thrown away.
	rel := r.pos - r.cbase
	size := rel/m + 2 + lanes + (b.taps+m-1)/m
	for j := range m {
		if c := r.comp[j]; cap(c) < size {
			r.comp[j] = append(make([]float32, 0, size+cap(r.buf)/m), c...)
		}
	}
	if cap(r.sum) < 2*lanes {
		r.sum = make([]float32, 2*lanes, 4*lanes)
	}
	sum := r.sum[:lanes]
	if l == 2 && n >= 2 {
		// Both phases together: twice the sums in flight.
		sum2 := r.sum[lanes : 2*lanes]
		clear(sum)
		clear(sum2)
		t0, t1 := r.phase, r.phase+m
		ph0, off0, ph1, off1 := t0%l, t0/l, t1%l, t1/l
		for j := range m {
			taps0, taps1 := b.split[ph0*m+j], b.split[ph1*m+j]
			q0, s0 := (rel+off0+j)%m, (rel+off0+j)/m
			q1, s1 := (rel+off1+j)%m, (rel+off1+j)/m
			firAdd2(sum, r.comp[q0][s0:s0+lanes+len(taps0)-1], taps0,
				sum2, r.comp[q1][s1:s1+lanes+len(taps1)-1], taps1)
		}
		for i := 0; 2*i < n; i++ {
			dst[2*i] = sum[i]
		}
		for i := 0; 2*i+1 < n; i++ {
			dst[2*i+1] = sum2[i]
		}
		return
	}
	for a := range min(l, n) {
		t := r.phase + a*m
		ph, off := t%l, t/l // output a's phase and window, from pos
		clear(sum)
		for j := range m {
			taps := b.split[ph*m+j]
			// Output a+l·i reads buf[pos+off+m·i+j+m·k] = comp[q][s+i+k].
			q, s := (rel+off+j)%m, (rel+off+j)/m
			firAdd(sum, r.comp[q][s:s+lanes+len(taps)-1], taps)
		}
		for i := 0; a+l*i < n; i++ {
			dst[a+l*i] = sum[i]
		}
	}
}

// shiftComps follows buf dropping its first pos samples: the split form's
// sequences drop what no window will read again.
func (r *resampler) shiftComps() {
	if r.bank == nil || r.bank.split == nil {
		return
	}
	m := r.bank.m
	drop := max(0, (r.pos-r.cbase)/m)
	for j := range m {
		c := r.comp[j]
		d := min(drop, len(c))
		r.comp[j] = c[:copy(c, c[d:])]
	}
	r.cbase += m*drop - r.pos
	r.cfill = max(0, r.cfill-r.pos)
}

// deal appends the samples buf got since the last call to the split
// form's sequences.
func (r *resampler) deal() {
	m := r.bank.m
	in := r.buf[r.cfill:]
	r.cfill = len(r.buf)
	// One at a time up to a whole group, which starts with sequence 0.
	j := (r.cfill - len(in) - r.cbase) % m
	for ; j != 0 && len(in) > 0; j = (j + 1) % m {
		r.comp[j] = append(r.comp[j], in[0])
		in = in[1:]
	}
	g := len(in) / m
	var d [maxSplit][]float32
	for j := range m {
		c := r.comp[j]
		if cap(c)-len(c) < g+1 {
			c = append(make([]float32, 0, 2*(len(c)+g+1)+cap(r.buf)/m), c...)
		}
		r.comp[j] = c[:len(c)+g]
		d[j] = r.comp[j][len(c):]
	}
	switch m {
	case 2:
		d0, d1 := d[0], d[1][:len(d[0])]
		for v := range d0 {
			p := in[2*v : 2*v+2 : 2*v+2]
			d0[v], d1[v] = p[0], p[1]
		}
	case 3:
		d0, d1, d2 := d[0], d[1][:len(d[0])], d[2][:len(d[0])]
		for v := range d0 {
			p := in[3*v : 3*v+3 : 3*v+3]
			d0[v], d1[v], d2[v] = p[0], p[1], p[2]
		}
	default:
		for j := range m {
			for v := range d[j] {
				d[j][v] = in[m*v+j]
			}
		}
	}
	for j, v := range in[m*g:] {
		r.comp[j] = append(r.comp[j], v)
	}
}
