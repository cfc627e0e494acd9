package audio

import (
	"errors"
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
// gives the same samples as in one piece.
//
// The source's rate may change mid-stream: a source returns a *rateChange
// error (mp3.go) after its last sample at the old rate, and its next
// samples are at the new rate. The resampler takes it in its stride: the
// caller of read never sees it. The stages
// for the old rate are then run to the end of its samples and a new set is
// started for the new one, on the same output timeline; at the seam each
// side's filters see a mirror image of their own side's signal beyond it,
// not silence, so the seam adds no dip or click of its own.

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

var halfbands sync.Map // int rate → []float32

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

	// Mirror the input at its start (the stage begins after a change of
	// rate) rather than assume silence before it, and at its end when it
	// ends in one (err is a *rateChange).
	mirrorStart, mirrorEnd bool
	last                   float32 // the last input
}

func newHalfband(src monoReader, rate int, mirror bool) *halfband {
	c := halfbandTaps(rate)
	k := len(c)
	h := &halfband{src: src, end: -1, mirrorStart: mirror}
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
		if h.mirrorStart {
			// x[-j] = x[j]: the odd history x[-1], x[-3], … is the odd
			// samples x[1], x[3], … read so far, reversed.
			k := k2 / 2
			if len(h.even) > 0 {
				for i := range min(k, len(h.odd)-k) {
					h.odd[k-1-i] = 2*h.even[0] - h.odd[k+i]
				}
			}
			h.mirrorStart = false
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

// fill reads input until want outputs can be computed, or at least one
// once something has been read; after the end it pads with zeros, or with
// the mirror image of the input before a change of rate.
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
			// odd[t] is x[base+2t]; beyond the last input x[n-1] the
			// mirror image is x[n-1+j] = x[n-1-j].
			base := 2*(h.out-int64(k2/2)) + 1
			for len(h.odd) < want+k2-1 {
				var v float32
				if q := 2*(h.n-1) - (base + 2*int64(len(h.odd))); h.mirrorEnd && q >= base {
					v = 2*h.last - h.odd[(q-base)/2]
				}
				h.odd = append(h.odd, v)
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
			var rc *rateChange
			h.mirrorEnd = errors.As(err, &rc)
			h.end = (h.n + 1) / 2
		}
	}
}

// split appends the samples in to the even and odd buffers, which have
// room for them.
func (h *halfband) split(in []float32) {
	if len(in) > 0 && h.n&1 == 1 {
		h.odd = append(h.odd, in[0])
		h.last = in[0]
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
	if len(in) > 0 {
		h.last = in[len(in)-1]
	}
}

// resampler pulls mono samples from src at the source rate and produces
// them at SampleRate. A stream is a run of segments, one per source rate
// (one for almost every stream); the stages belong to the current one.
type resampler struct {
	src     countingReader // the source, counting the current segment's samples
	stage   monoReader     // what the polyphase stage reads: &src, or the last half-band
	rate    int            // the current segment's source rate
	bank    *filterBank    // nil: the segment is at SampleRate and passes through
	whole   int            // M/L: whole input samples per output
	frac    int            // and the fraction, in units
	unit    int            // steps of phase per input sample: L, or the phases of a finer table
	segment int64          // outputs before the current segment
	start   float64        // time the segment starts, in output samples (≤ segment)

	buf     []float32 // polyphase input; buf[pos] is the first of the next window
	pos     int
	phase   int   // in [0, unit)
	first   int64 // polyphase input index of buf[0] (negative: history)
	in      int64 // polyphase input samples received in this segment
	mirror  bool  // mirror the history once the first inputs are in
	out     int64 // output samples produced, all segments
	end     int64 // outputs due when the segment's source has ended; -1 before
	srcDone bool
	srcErr  error       // the segment's source's final error (nil for io.EOF or a change of rate)
	next    *rateChange // how the segment's source ended, if by a change of rate
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

// newResampler returns a resampler of src, whose samples are at rate Hz
// (any rate from 1000 Hz up; SampleRate passes through unchanged).
func newResampler(src monoReader, rate int) *resampler {
	r := &resampler{}
	r.src.src = src
	r.begin(rate, 0, false)
	return r
}

// reset starts the resampler over on a new stream from src at rate: as
// newResampler, reusing what can be reused.
func (r *resampler) reset(src monoReader, rate int) {
	r.src.src = src
	r.out = 0
	r.begin(rate, 0, false)
}

// begin starts a segment at rate whose first sample is at time start
// (output samples; r.out is the first output in it). mirror: the segment
// follows another, so its filters see the mirror image of its first
// samples before it rather than silence.
func (r *resampler) begin(rate int, start float64, mirror bool) {
	r.rate = rate
	r.segment = r.out
	r.start = start
	r.src.n = 0
	r.in = 0
	r.end = -1
	r.srcDone, r.srcErr, r.next = false, nil, nil
	var s monoReader = &r.src
	stage := rate
	// The first output, r.out, is δ = r.out-start output samples after
	// the segment's first input: δ·M/L polyphase inputs.
	delta := float64(r.out) - start
	if rate == SampleRate && delta < 1e-6 {
		r.bank, r.stage = nil, s
		return
	}
	for stage != polyphaseRate(rate) {
		s = newHalfband(s, stage, mirror)
		stage /= 2
	}
	r.stage = s
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
	// The filter's centre is taps/2 samples into its window, so the
	// window for an output at input time 0 starts taps/2-1 samples before
	// the input does: that history is zeros (or mirrored).
	hist := b.taps/2 - 1
	size := b.taps + max(inputChunk, (r.whole+2)*64)
	if cap(r.buf) < size {
		r.buf = make([]float32, 0, size)
	}
	r.buf = r.buf[:hist]
	clear(r.buf)
	r.first = -int64(hist)
	r.mirror = mirror
	q := int64(math.Round(delta * float64(b.m) * float64(k)))
	r.pos, r.phase = int(q/int64(r.unit)), int(q%int64(r.unit))
}

// fill makes at least need samples available from pos, reading from the
// stage only what is missing, or padding once it has ended: with zeros at
// the end of the stream, with the mirror image of the input before a
// change of rate.
func (r *resampler) fill(need int) {
	for len(r.buf)-r.pos < need {
		if r.pos > 0 {
			n := copy(r.buf, r.buf[r.pos:])
			r.buf = r.buf[:n]
			r.first += int64(r.pos)
			r.pos = 0
		}
		if r.srcDone {
			for len(r.buf) < need {
				var v float32
				// Beyond the last input x[in-1]: x[in-1+j] = x[in-1-j].
				if q := 2*(r.in-1) - (r.first + int64(len(r.buf))); r.next != nil && q >= r.first {
					v = 2*r.buf[r.in-1-r.first] - r.buf[q-r.first]
				}
				r.buf = append(r.buf, v)
			}
			return
		}
		free := r.buf[len(r.buf):cap(r.buf)]
		free = free[:min(len(free), max(need-len(r.buf), minRead))]
		n, err := r.stage.readMono(free)
		r.buf = r.buf[:len(r.buf)+n]
		r.in += int64(n)
		if err != nil {
			r.stageEnded(err)
			r.end = r.segmentEnd()
		}
	}
}

// stageEnded records the error that ended the segment's input.
func (r *resampler) stageEnded(err error) {
	r.srcDone = true
	if !errors.As(err, &r.next) && err != io.EOF {
		r.srcErr = err
	}
}

// segmentEnd is the number of outputs, all segments, once the current
// segment's source has ended: those before time start + n·8000/rate.
func (r *resampler) segmentEnd() int64 {
	n, rate := r.src.n, int64(r.rate)
	if r.start == 0 {
		// ceil(n·8000/rate), exactly.
		return (n*SampleRate + rate - 1) / rate
	}
	t := r.start + float64(n)*SampleRate/float64(rate)
	return max(r.out, int64(math.Ceil(t-1e-6)))
}

// read fills dst with resampled output and returns io.EOF (or the
// source's error) once every output sample has been delivered.
func (r *resampler) read(dst []float32) (int, error) {
	n := 0
	for {
		if r.bank == nil {
			n += r.pass(dst[n:])
		} else {
			n += r.filter(dst[n:])
		}
		if !(r.end >= 0 && r.out >= r.end) {
			return n, nil
		}
		if r.next == nil {
			if r.srcErr != nil {
				return n, r.srcErr
			}
			return n, io.EOF
		}
		// The next segment starts where this one's samples end.
		start := r.start + float64(r.src.n)*SampleRate/float64(r.rate)
		r.begin(r.next.rate, start, true)
		if n == len(dst) {
			return n, nil
		}
	}
}

// pass copies a segment at SampleRate through. (Its samples stay on their
// own grid: after a change of rate that can put them up to one sample,
// 125 µs, later than their time.)
func (r *resampler) pass(dst []float32) int {
	n := 0
	for n < len(dst) && !r.srcDone {
		k, err := r.stage.readMono(dst[n:])
		n += k
		r.in += int64(k)
		r.out += int64(k)
		if err != nil {
			r.stageEnded(err)
			r.end = r.out
		}
	}
	return n
}

// filter produces outputs of the current segment through the polyphase
// stage, up to len(dst) or the segment's end.
func (r *resampler) filter(dst []float32) int {
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
		if r.mirror {
			// x[-j] = x[j] for the history before the segment's first input.
			hist := int(-r.first)
			for j := 1; j <= hist && hist+j < len(r.buf); j++ {
				r.buf[hist-j] = 2*r.buf[hist] - r.buf[hist+j]
			}
			r.mirror = false
		}
		if r.end >= 0 {
			run = min(run, int(r.end-r.out))
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
