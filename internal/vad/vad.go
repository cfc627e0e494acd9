// Package vad detects a caller's speech in 8000 Hz G.711 μ-law, the audio
// Twilio Media Streams send (160 bytes = 20 ms), and turns it into
// speech.started and speech.stopped events in stream time.
//
// A Detector looks at the audio 20 ms at a time. Each frame is decoded with
// the G.711 table of package audio and split by a tree of allpass
// quadrature mirror filters (the filter bank of WebRTC's classic VAD) into
// bands; the five above 250 Hz are scored. Each band keeps a noise level
// (a running mean of the frames that are not speech, over a floor from
// minimum statistics), and a frame is speech when its bands stand far
// enough above their noise levels on average. StartMs of speech starts an
// utterance and HangoverMs of silence ends it; a sound that stays as
// steady as no voice does for a second (music, a new background) is
// learnt as background instead. docs/vad.md describes the algorithm, why
// it was chosen, and what it measures on the committed fixtures.
//
// A Detector is not safe for concurrent use; a call owns one, allocated by
// New or held by value and readied by Init. Process does not allocate.
// With hundreds of calls, Prefetch lets the owner ask for a Detector's
// per-frame state while it still decodes the frame, ahead of Process.
package vad

import (
	"math"
	"unsafe"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/prefetch"
)

// Config tunes a Detector. The zero value of every field selects its
// default.
type Config struct {
	// StartMs is how much speech must be heard before speech.started
	// fires, in ms; the event's AtMs is still the start of that speech.
	// Shorter reacts sooner (barge-in), longer ignores more clicks and
	// coughs. 0 means DefaultStartMs; it is rounded up to whole 20 ms
	// frames.
	StartMs int
	// HangoverMs is how much silence ends an utterance, in ms: pauses
	// shorter than this stay inside it. speech.stopped fires HangoverMs
	// after the last speech, and its AtMs is the end of that speech.
	// 0 means DefaultHangoverMs; it is rounded up to whole 20 ms frames.
	HangoverMs int
}

// Defaults of Config.
const (
	DefaultStartMs    = 40
	DefaultHangoverMs = 500
)

// FrameMs is the duration the Detector decides on; FrameSize is its size in
// μ-law bytes (one byte a sample at 8000 Hz).
const (
	FrameMs   = 20
	FrameSize = 160
)

// Kind says what an Event reports.
type Kind int

// Kinds of Event.
const (
	None          Kind = iota // no event
	SpeechStarted             // the caller started speaking
	SpeechStopped             // the caller stopped speaking
)

// String returns the bus event type of k: "speech.started",
// "speech.stopped", or "none".
func (k Kind) String() string {
	switch k {
	case SpeechStarted:
		return "speech.started"
	case SpeechStopped:
		return "speech.stopped"
	}
	return "none"
}

// Event is a change between silence and speech, in stream time: the ms
// Twilio's media timestamps count since the stream started.
type Event struct {
	Kind Kind
	// AtMs is when the speech started (SpeechStarted) or ended
	// (SpeechStopped), not when the event fired: a start is reported
	// StartMs or a little more after AtMs, a stop HangoverMs after.
	AtMs int64
	// DurationMs is how long the utterance lasted, from its start to its
	// end, on SpeechStopped; 0 on SpeechStarted.
	DurationMs int64
}

// queueLen bounds the events that Process holds for Next. One 20 ms frame
// fires at most one event, and a start and a stop are at least
// StartMs+HangoverMs apart, so a Process call of up to a second of audio
// never overflows it with the defaults.
const queueLen = 8

// Bands of the filter bank that are scored, Hz: 250–500, 500–1000,
// 1000–2000, 2000–3000, 3000–4000. Below 250 Hz a telephone line carries
// little speech (the PSTN passes 300–3400 Hz) but mains hum and rumble.
const nBands = 5

// The noise floor of a band is the minimum of its smoothed level over the
// last nSub sub-windows of subFrames frames (minimum statistics): long
// enough that speech always dips to the floor inside it, short enough to
// follow a change of background in a few seconds.
const (
	subFrames = 10 // 200 ms
	nSub      = 10 // 2 s
)

// Detector finds speech in one stream of audio. The zero value is not
// usable: call New, or Init on one held by value.
type Detector struct {
	// What every frame reads and writes comes first, in as few cache
	// lines as it fits: with hundreds of calls a Detector is out of the
	// core's caches by the time its call's next frame comes, and each
	// line is a trip to memory (BenchmarkProcessCalls).

	startFrames    int // speech frames that start an utterance
	hangoverFrames int // silent frames that end it

	pos    int   // bytes in buf
	frameT int64 // stream time of the frame's first sample, ms

	// State machine.
	speaking bool
	spoken   int     // frames since the utterance started
	run      int     // consecutive speech frames while silent; silent frames while speaking
	onset    int64   // start of the current (candidate) utterance, ms
	lastEnd  int64   // end of the last speech frame while speaking, ms
	gate     float32 // level a candidate utterance must reach, dB
	peak     float32 // the loudest frame of the candidate, dB
	li       int     // the oldest of history
	sub      int     // frames into the current sub-window
	frames   int     // frames seen, saturating
	head, n  int     // of queue

	// Filter bank: the states of its five two-band splits.
	split [5]qmf

	// Per band, dB: the smoothed level, the minimum of the current
	// sub-window, the minimum of the last nSub (mins) and the noise level.
	smooth  [nBands]float32
	subMin  [nBands]float32
	minsMin [nBands]float32
	noise   [nBands]float32

	// Touched a line at a time, or one frame in subFrames, or rarely.

	// The last steadyFrames full-band levels, dB.
	history [steadyFrames]float32
	// The minima of the last nSub sub-windows, per band, dB.
	mins [nSub][nBands]float32
	// Events not yet returned, oldest first.
	queue [queueLen]Event
	// The frame being filled, when audio comes in pieces.
	buf [FrameSize]byte
}

// New returns a Detector for one stream.
func New(cfg Config) *Detector {
	d := &Detector{}
	d.Init(cfg)
	return d
}

// Init readies d for one stream, as New does: for a Detector held by value
// inside the state a stream keeps anyway, so that a frame finds both in
// one block of memory rather than behind a pointer to another.
func (d *Detector) Init(cfg Config) {
	if cfg.StartMs <= 0 {
		cfg.StartMs = DefaultStartMs
	}
	if cfg.HangoverMs <= 0 {
		cfg.HangoverMs = DefaultHangoverMs
	}
	d.startFrames = (cfg.StartMs + FrameMs - 1) / FrameMs
	d.hangoverFrames = (cfg.HangoverMs + FrameMs - 1) / FrameMs
	d.Reset()
}

// Reset forgets the audio seen so far and any events not yet returned, as
// if the Detector were new; the Config stays.
func (d *Detector) Reset() {
	s, h := d.startFrames, d.hangoverFrames
	*d = Detector{startFrames: s, hangoverFrames: h}
}

// Process takes μ-law audio whose first sample is at stream time tsMs and
// returns the oldest event not yet returned, if any. Any length is
// accepted: a partial frame is kept until the next call completes it (its
// time counts from where it started). Twilio sends 160 bytes at a time;
// batches of several frames are fine, and events inside them carry the
// time of the frame they happened in.
//
// One call fires at most one event in the common case. When it fires more
// (a long batch), Process returns the first and Next the others, in order;
// drain them with
//
//	for ev, ok := d.Process(b, ts); ok; ev, ok = d.Next() { ... }
//
// Events left undrained are returned by later calls, oldest first. If more
// than a few pile up (seconds of audio in one call, or events never
// drained) the oldest start and stop are dropped together, so starts and
// stops still alternate.
func (d *Detector) Process(ulaw []byte, tsMs int64) (Event, bool) {
	for i := 0; i < len(ulaw); {
		if d.pos == 0 {
			d.frameT = tsMs + int64(i)/8
		}
		if d.pos == 0 && len(ulaw)-i >= FrameSize {
			// A whole frame: no copy.
			d.frame((*[FrameSize]byte)(ulaw[i : i+FrameSize]))
			i += FrameSize
			continue
		}
		n := copy(d.buf[d.pos:], ulaw[i:])
		d.pos += n
		i += n
		if d.pos == FrameSize {
			d.frame(&d.buf)
			d.pos = 0
		}
	}
	return d.Next()
}

// Prefetch asks the processor to start loading what the next frame reads
// of d: its per-frame fields, some 360 bytes. A caller that keeps
// hundreds of Detectors calls it as soon as it knows a frame is coming,
// before it decodes the frame, so that those loads overlap that work (the
// edge's BenchmarkCallerMediaCalls: -30 %).
func (d *Detector) Prefetch() {
	prefetch.Range(unsafe.Pointer(d), unsafe.Offsetof(d.history))
}

// Next returns the oldest event that Process found and did not return.
func (d *Detector) Next() (Event, bool) {
	if d.n == 0 {
		return Event{}, false
	}
	ev := d.queue[d.head]
	d.head = (d.head + 1) % queueLen
	d.n--
	return ev, true
}

func (d *Detector) push(ev Event) {
	if d.n == queueLen {
		// Drop the oldest two: a stop and a start, or a start and a
		// stop, so what remains still alternates.
		d.head = (d.head + 2) % queueLen
		d.n -= 2
	}
	d.queue[(d.head+d.n)%queueLen] = ev
	d.n++
}

// linear is G.711 μ-law decoded.
var linear [256]int32

func init() {
	for i := range linear {
		linear[i] = int32(audio.DecodeMulaw(byte(i)))
	}
}

// The filter bank splits the band in two, again and again, with a
// quadrature mirror filter: two first-order allpass sections, one per
// polyphase branch, whose sum is the lower half of the band and whose
// difference the upper half, each at half the rate. It runs in integers
// (coefficients Q15), on fixed-size arrays and with the two splits of the
// second level in one loop: the filter bank is most of the cost of a
// frame, and what bounds it is the number of instructions.
type qmf struct{ x0, y0, x1, y1 int64 }

// Allpass coefficients of the two branches, Q15: 0.64 and 0.17.
const (
	qmfA0 = 20972
	qmfA1 = 5571
)

// allpass is y[n] = a·(x[n] - y[n-1]) + x[n-1].
func allpass(a, x, px, py int64) int64 { return (a*(x-py))>>15 + px }

// bank decodes a frame, runs the filter bank over it and returns the
// energies (sums of squares) of the scored bands.
//
// It runs the frame in blocks of 32 samples, each through all four levels
// of the tree before the next: what one level hands the next stays in
// registers and a few lines of stack, never in the Detector. With
// hundreds of calls, a call's Detector is out of the core's caches by the
// time its next frame comes, and every line a frame touches costs a trip
// to memory; a level-by-level pass wrote and read back 880 bytes of
// intermediate bands a frame (BenchmarkProcessCalls). It also lets the
// levels' dependency chains overlap.
//
// Each split's state is kept in local variables within a block and
// written back at its end: kept in the struct, every output would wait for
// a store and a load. Sums are not halved: each split doubles the energy
// of what it passes and at most doubles the amplitude, which 16-bit
// input, four levels and int64 arithmetic have room for.
func (d *Detector) bank(ulaw *[FrameSize]byte) (e [nBands]int64) {
	var e255, e051, e12, e23, e34 int64
	for blk := 0; blk < FrameSize; blk += 32 {
		in := (*[32]byte)(ulaw[blk : blk+32])

		// 0–4k → 0–2k | 2–4k.
		var lo1, hi1 [16]int64
		q := &d.split[0]
		px0, py0, px1, py1 := q.x0, q.y0, q.x1, q.y1
		for i := range 16 {
			x0, x1 := int64(linear[in[2*i]]), int64(linear[in[2*i+1]])
			y0 := allpass(qmfA0, x0, px0, py0)
			y1 := allpass(qmfA1, x1, px1, py1)
			px0, py0, px1, py1 = x0, y0, x1, y1
			lo1[i], hi1[i] = y0+y1, y0-y1
		}
		q.x0, q.y0, q.x1, q.y1 = px0, py0, px1, py1

		// 0–2k → 0–1k | 1–2k, and 2–4k → 3–4k | 2–3k (the upper half
		// of a split comes out mirrored), in one loop.
		var lo2 [8]int64
		q, r := &d.split[1], &d.split[2]
		px0, py0, px1, py1 = q.x0, q.y0, q.x1, q.y1
		rx0, ry0, rx1, ry1 := r.x0, r.y0, r.x1, r.y1
		for i := range 8 {
			x0, x1 := lo1[2*i], lo1[2*i+1]
			y0 := allpass(qmfA0, x0, px0, py0)
			y1 := allpass(qmfA1, x1, px1, py1)
			px0, py0, px1, py1 = x0, y0, x1, y1
			lo2[i] = y0 + y1
			h := y0 - y1
			e12 += h * h

			x0, x1 = hi1[2*i], hi1[2*i+1]
			y0 = allpass(qmfA0, x0, rx0, ry0)
			y1 = allpass(qmfA1, x1, rx1, ry1)
			rx0, ry0, rx1, ry1 = x0, y0, x1, y1
			l, h := y0+y1, y0-y1
			e34 += l * l
			e23 += h * h
		}
		q.x0, q.y0, q.x1, q.y1 = px0, py0, px1, py1
		r.x0, r.y0, r.x1, r.y1 = rx0, ry0, rx1, ry1

		// 0–1k → 0–500 | 500–1k.
		var lo3 [4]int64
		q = &d.split[3]
		px0, py0, px1, py1 = q.x0, q.y0, q.x1, q.y1
		for i := range 4 {
			x0, x1 := lo2[2*i], lo2[2*i+1]
			y0 := allpass(qmfA0, x0, px0, py0)
			y1 := allpass(qmfA1, x1, px1, py1)
			px0, py0, px1, py1 = x0, y0, x1, y1
			lo3[i] = y0 + y1
			h := y0 - y1
			e051 += h * h
		}
		q.x0, q.y0, q.x1, q.y1 = px0, py0, px1, py1

		// 0–500 → 0–250 | 250–500.
		q = &d.split[4]
		px0, py0, px1, py1 = q.x0, q.y0, q.x1, q.y1
		for i := range 2 {
			x0, x1 := lo3[2*i], lo3[2*i+1]
			y0 := allpass(qmfA0, x0, px0, py0)
			y1 := allpass(qmfA1, x1, px1, py1)
			px0, py0, px1, py1 = x0, y0, x1, y1
			h := y0 - y1
			e255 += h * h
		}
		q.x0, q.y0, q.x1, q.y1 = px0, py0, px1, py1
	}
	return [nBands]int64{e255, e051, e12, e23, e34}
}

// bandScale turns a band's energy into its share of the frame's mean
// square re full scale. A split with unhalved sums doubles the energy
// (the sum of squares): 250–500 Hz went through 4 splits, 500–1000 Hz 3,
// the others 2.
var bandScale = [nBands]float32{
	1.0 / 16 / FrameSize / (32768 * 32768), 1.0 / 8 / FrameSize / (32768 * 32768),
	1.0 / 4 / FrameSize / (32768 * 32768), 1.0 / 4 / FrameSize / (32768 * 32768), 1.0 / 4 / FrameSize / (32768 * 32768),
}

// dB returns 10·log10(x) for x > 0 within about 0.02 dB, from the float's
// exponent and a quadratic in its mantissa; tiny x give about -200.
func dB(x float32) float32 {
	bits := math.Float32bits(x + 1e-20)
	e := float32(int32(bits>>23&0xFF) - 128)              // the quadratic is log2(m)+1
	m := math.Float32frombits(bits&0x7FFFFF | 0x3F800000) // [1, 2)
	return 3.0103 * (e + (-0.34484843*m+2.02466578)*m - 0.67487759)
}

// Decision parameters, dB.
const (
	// minSpeechDB: quieter frames (full band, re full scale) are never
	// speech, whatever the floor: μ-law's idle codes decode to about
	// -78 dB, a phone line's hiss is rarely above -60 dB.
	minSpeechDB = -55
	// startDB: a frame is speech when its bands stand this far above
	// their noise levels on average (bands below count as 0).
	startDB = 2.5
	// maxExcessDB: how much one band may add to the score.
	maxExcessDB = 12
	// smoothK: smoothing of the band levels the minimum is taken of.
	smoothK = 0.3
	// noiseRise and noiseFall: how fast the noise level follows frames
	// above and below it (per frame; 0.05 is a time constant of 400 ms).
	noiseRise = 0.05
	noiseFall = 0.2
	// noiseCreep: how fast it follows frames that look like speech, so
	// that a sound that never stops (music) becomes background.
	noiseCreep = 0.004
	// steadyDB: speech goes up and down by far more than this within
	// steadyFrames (a second): from syllable to syllable and into the
	// pauses between words. A sound that does not is not speech.
	steadyDB     = 6
	steadyFrames = 50
	// gateDB: how much louder than a steady background's loudest frame
	// of the last second speech must be to start.
	gateDB = 3
)

// span returns the lowest and highest of the last steadyFrames levels.
func (d *Detector) span() (lo, hi float32) {
	lo, hi = d.history[0], d.history[0]
	for _, l := range d.history[1:] {
		lo, hi = min(lo, l), max(hi, l)
	}
	return lo, hi
}

// steady reports whether the last steadyFrames levels stayed within
// steadyDB of each other.
func (d *Detector) steady() bool {
	lo, hi := d.span()
	return hi-lo < steadyDB
}

// analyse runs a frame through the filter bank and returns the level of
// each scored band and of the whole frame above 250 Hz, dB re a
// full-scale square wave (a full-scale sine is -3 dB).
func (d *Detector) analyse(ulaw *[FrameSize]byte) (lv [nBands]float32, full float32) {
	e := d.bank(ulaw)
	for b := range nBands {
		lv[b] = dB(float32(e[b]) * bandScale[b])
	}
	full = dB((float32(e[0])/16 + float32(e[1])/8 + float32(e[2]+e[3]+e[4])/4) * (1.0 / FrameSize / (32768 * 32768)))
	return lv, full
}

// frame analyses a frame and advances the state machine.
func (d *Detector) frame(ulaw *[FrameSize]byte) {
	t := d.frameT
	lv, full := d.analyse(ulaw)

	first := d.frames == 0
	if d.frames < 1<<30 {
		d.frames++
	}
	if first {
		for b := range nBands {
			d.smooth[b], d.subMin[b], d.noise[b], d.minsMin[b] = lv[b], lv[b], lv[b], lv[b]
			for k := range nSub {
				d.mins[k][b] = lv[b]
			}
		}
	}
	// Score against the floor learnt before this frame: the mean excess
	// of the bands, each counted up to maxExcessDB so that one loud band
	// (a tone) is not enough.
	var score float32
	for b := range nBands {
		floor := max(d.noise[b], min(d.subMin[b], d.minsMin[b]))
		if ex := lv[b] - floor; ex > 0 {
			score += min(ex, maxExcessDB)
		}
	}
	score /= nBands

	// The noise level: a running mean of the frames that do not look
	// like speech, falling faster than it rises.
	for b := range nBands {
		switch {
		case lv[b] < d.noise[b]:
			d.noise[b] += noiseFall * (lv[b] - d.noise[b])
		case score < startDB:
			d.noise[b] += noiseRise * (lv[b] - d.noise[b])
		default:
			d.noise[b] += noiseCreep * (lv[b] - d.noise[b])
		}
	}
	// Minimum statistics, the floor under it: it follows any change of
	// background within nSub sub-windows, even one mistaken for speech.
	for b := range nBands {
		d.smooth[b] += smoothK * (lv[b] - d.smooth[b])
		d.subMin[b] = min(d.subMin[b], d.smooth[b])
	}
	d.sub++
	if d.sub == subFrames {
		d.sub = 0
		copy(d.mins[1:], d.mins[:nSub-1])
		d.mins[0] = d.subMin
		d.subMin = d.smooth
		d.minsMin = d.mins[0]
		for k := 1; k < nSub; k++ {
			for b := range nBands {
				d.minsMin[b] = min(d.minsMin[b], d.mins[k][b])
			}
		}
	}

	speech := full > minSpeechDB && score > startDB
	if !d.speaking && speech && d.run == 0 {
		// Over a steady background (music), speech must also get
		// louder than the background has been in the last second.
		d.gate = float32(math.Inf(-1))
		if lo, hi := d.span(); hi-lo < steadyDB {
			d.gate = hi + gateDB
		}
		d.peak = full
	}
	d.history[d.li] = full
	d.li = (d.li + 1) % steadyFrames

	if !d.speaking {
		if !speech {
			d.run = 0
			return
		}
		if d.run == 0 {
			d.onset = t
		}
		d.run++
		d.peak = max(d.peak, full)
		if d.run >= d.startFrames && d.peak > d.gate {
			d.speaking = true
			d.spoken = d.run
			d.run = 0
			d.lastEnd = t + FrameMs
			d.push(Event{Kind: SpeechStarted, AtMs: d.onset})
		}
		return
	}
	d.spoken++
	if d.spoken >= steadyFrames && d.steady() {
		// A second without the dips of speech: music, or a new
		// background. Learn it as the noise and end the utterance.
		d.noise = d.smooth
		speech = false
		d.run = d.hangoverFrames
	}
	if speech {
		d.run = 0
		d.lastEnd = t + FrameMs
		return
	}
	d.run++
	if d.run >= d.hangoverFrames {
		d.speaking = false
		d.run = 0
		d.push(Event{Kind: SpeechStopped, AtMs: d.lastEnd, DurationMs: max(0, d.lastEnd-d.onset)})
	}
}
