package vad

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/callcast/callcast/internal/audio"
)

// encode turns samples in [-1, 1] into μ-law.
func encode(x []float64) []byte {
	out := make([]byte, len(x))
	for i, v := range x {
		out[i] = audio.EncodeMulaw(int16(max(-32768, min(32767, math.Round(v*32768)))))
	}
	return out
}

// gain returns the linear amplitude of level dB.
func gain(db float64) float64 { return math.Pow(10, db/20) }

// whiteNoise returns n samples of Gaussian noise at rms dB (re full scale).
func whiteNoise(r *rand.Rand, n int, db float64) []float64 {
	x := make([]float64, n)
	g := gain(db)
	for i := range x {
		x[i] = r.NormFloat64() * g
	}
	return x
}

// voiced returns n samples of a harmonic, speech-like sound: a 140 Hz
// pulse train's first 20 harmonics at rms about db, its level going up
// and down by 14 dB four times a second like syllables.
func voiced(n int, db float64) []float64 {
	x := make([]float64, n)
	g := gain(db) * math.Sqrt2 / math.Sqrt(20)
	for i := range x {
		t := float64(i) / 8000
		env := 0.6 + 0.4*math.Cos(2*math.Pi*4*t)
		for h := 1; h <= 20; h++ {
			x[i] += env * g * math.Sin(2*math.Pi*140*float64(h)*t) / math.Sqrt(float64(h))
		}
	}
	return x
}

// run feeds b in chunks of size bytes from stream time 0 and returns every
// event, draining Next.
func run(d *Detector, b []byte, size int) []Event {
	var evs []Event
	for i := 0; i < len(b); i += size {
		chunk := b[i:min(len(b), i+size)]
		for ev, ok := d.Process(chunk, int64(i)/8); ok; ev, ok = d.Next() {
			evs = append(evs, ev)
		}
	}
	return evs
}

func TestSilenceNoEvents(t *testing.T) {
	silence := make([]byte, 8000*60)
	for i := range silence {
		silence[i] = 0xFF
	}
	if evs := run(New(Config{}), silence, FrameSize); len(evs) != 0 {
		t.Fatalf("a minute of 0xFF fired %v", evs)
	}
}

// burst returns noise at noiseDB with a voiced burst from onMs to offMs.
func burst(seed uint64, totalMs, onMs, offMs int, noiseDB, speechDB float64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	x := whiteNoise(r, totalMs*8, noiseDB)
	v := voiced((offMs-onMs)*8, speechDB)
	for i, s := range v {
		x[onMs*8+i] += s
	}
	return encode(x)
}

func TestBurstInNoise(t *testing.T) {
	b := burst(1, 6000, 2000, 3500, -46, -26)
	evs := run(New(Config{}), b, FrameSize)
	if len(evs) != 2 || evs[0].Kind != SpeechStarted || evs[1].Kind != SpeechStopped {
		t.Fatalf("events %+v, want a start and a stop", evs)
	}
	if d := evs[0].AtMs - 2000; d < -20 || d > 20 {
		t.Errorf("started at %d ms, true onset 2000", evs[0].AtMs)
	}
	if d := evs[1].AtMs - 3500; d < -20 || d > 20 {
		t.Errorf("stopped at %d ms, true end 3500", evs[1].AtMs)
	}
	if evs[0].DurationMs != 0 || evs[1].DurationMs != evs[1].AtMs-evs[0].AtMs {
		t.Errorf("durations %+v", evs)
	}
}

// TestChunking: the same audio gives the same events whatever the size of
// the pieces it comes in, as long as its timestamps are right.
func TestChunking(t *testing.T) {
	b := burst(2, 10000, 1000, 2500, -50, -20)
	b = append(b, burst(3, 4000, 1000, 1700, -50, -30)...)
	want := run(New(Config{}), b, FrameSize)
	if len(want) != 4 {
		t.Fatalf("events %+v, want two utterances", want)
	}
	for _, size := range []int{8, 80, 3200, 8000 * 3, len(b)} {
		if got := run(New(Config{}), b, size); !reflect.DeepEqual(got, want) {
			t.Errorf("in pieces of %d bytes: %+v, want %+v", size, got, want)
		}
	}
	// Pieces that are not whole ms get timestamps rounded down to the
	// ms, as Twilio's would be: events may move by 1 ms.
	for _, size := range []int{1, 7, 333} {
		got := run(New(Config{}), b, size)
		if len(got) != len(want) {
			t.Fatalf("in pieces of %d bytes: %+v, want %+v", size, got, want)
		}
		for i := range got {
			if got[i].Kind != want[i].Kind || abs(got[i].AtMs-want[i].AtMs) > 1 || abs(got[i].DurationMs-want[i].DurationMs) > 1 {
				t.Errorf("in pieces of %d bytes: %+v, want %+v", size, got, want)
				break
			}
		}
	}
}

func abs(x int64) int64 { return max(x, -x) }

// TestLostFrames: frames Twilio never sent leave a jump in the
// timestamps; events keep the stream time of the frames they came with.
func TestLostFrames(t *testing.T) {
	b := burst(6, 6000, 2000, 3500, -46, -26)
	d := New(Config{})
	var evs []Event
	for i := 0; i+FrameSize <= len(b); i += FrameSize {
		ts := int64(i / 8)
		if ts >= 1000 && ts < 1200 {
			continue // lost: 200 ms before the speech
		}
		for ev, ok := d.Process(b[i:i+FrameSize], ts); ok; ev, ok = d.Next() {
			evs = append(evs, ev)
		}
	}
	if len(evs) != 2 || abs(evs[0].AtMs-2000) > 20 || abs(evs[1].AtMs-3500) > 20 {
		t.Fatalf("events %+v, want a start at 2000 and a stop at 3500", evs)
	}
}

func TestReset(t *testing.T) {
	b := burst(4, 4000, 1000, 2500, -50, -20)
	d := New(Config{StartMs: 100, HangoverMs: 300})
	want := run(d, b, FrameSize)
	d.Process(b[:8000*1.2], 0) // mid-utterance
	d.Reset()
	if got := run(d, b, FrameSize); !reflect.DeepEqual(got, want) {
		t.Fatalf("after Reset: %+v, want %+v", got, want)
	}
}

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Config
		start, hg int
	}{
		{"zero", Config{}, DefaultStartMs / FrameMs, DefaultHangoverMs / FrameMs},
		{"negative", Config{StartMs: -1, HangoverMs: -5}, DefaultStartMs / FrameMs, DefaultHangoverMs / FrameMs},
		{"rounded up", Config{StartMs: 41, HangoverMs: 1}, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(tc.cfg)
			if d.startFrames != tc.start || d.hangoverFrames != tc.hg {
				t.Errorf("frames %d/%d, want %d/%d", d.startFrames, d.hangoverFrames, tc.start, tc.hg)
			}
		})
	}
}

func TestQueueOverflowAlternates(t *testing.T) {
	// Many short utterances in one call: more events than the queue
	// holds. What comes out still alternates, starting with a start.
	var b []byte
	for i := range 20 {
		b = append(b, burst(uint64(10+i), 1500, 500, 900, -50, -20)...)
	}
	d := New(Config{StartMs: 20, HangoverMs: 200})
	evs := run(d, b, len(b))
	if len(evs) == 0 || len(evs) > queueLen {
		t.Fatalf("%d events, want 1..%d", len(evs), queueLen)
	}
	checkWellFormed(t, evs)
}

// checkWellFormed: starts and stops alternate from a start, stops last
// as long as they say, and times do not go backwards.
func checkWellFormed(t *testing.T, evs []Event) {
	t.Helper()
	for i, ev := range evs {
		want := SpeechStarted
		if i%2 == 1 {
			want = SpeechStopped
		}
		if ev.Kind != want {
			t.Fatalf("event %d is %v, want %v: %+v", i, ev.Kind, want, evs)
		}
		if ev.DurationMs < 0 || (ev.Kind == SpeechStarted && ev.DurationMs != 0) {
			t.Fatalf("event %d: bad duration: %+v", i, ev)
		}
		if i > 0 && ev.AtMs < evs[i-1].AtMs {
			t.Fatalf("event %d goes back in time: %+v", i, evs)
		}
	}
}

// TestLevels: a sine in the middle of each band reads its level there,
// far less in the others, and the same level for the whole frame.
func TestLevels(t *testing.T) {
	for band, hz := range []float64{375, 750, 1500, 2500, 3500} {
		t.Run(fmt.Sprint(hz, " Hz"), func(t *testing.T) {
			const db = -20 // rms re full scale: a sine at -17 dBFS peak
			x := make([]float64, 8000)
			for i := range x {
				x[i] = gain(db) * math.Sqrt2 * math.Sin(2*math.Pi*hz*float64(i)/8000)
			}
			b := encode(x)
			d := New(Config{})
			var lv [nBands]float32
			var full float32
			for i := 0; i+FrameSize <= len(b); i += FrameSize {
				lv, full = d.analyse((*[FrameSize]byte)(b[i : i+FrameSize]))
			}
			if math.Abs(float64(lv[band])-db) > 1.5 || math.Abs(float64(full)-db) > 1 {
				t.Errorf("band %d reads %.1f dB, the frame %.1f dB; want %d", band, lv[band], full, db)
			}
			for o := range nBands {
				if o != band && lv[o] > db-10 {
					t.Errorf("band %d reads %.1f dB for a sine in band %d", o, lv[o], band)
				}
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{None: "none", SpeechStarted: "speech.started", SpeechStopped: "speech.stopped", 7: "none"} {
		if got := k.String(); got != want {
			t.Errorf("%d: %q, want %q", k, got, want)
		}
	}
}

func TestProcessAllocs(t *testing.T) {
	b := burst(5, 2000, 500, 1500, -50, -20)
	d := New(Config{})
	ts := int64(0)
	allocs := testing.AllocsPerRun(500, func() {
		i := int(ts*8) % len(b)
		for _, ok := d.Process(b[i:i+FrameSize], ts); ok; _, ok = d.Next() {
		}
		ts += FrameMs
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per frame", allocs)
	}
}

// refBank is the filter bank level by level, each level over the whole
// frame before the next, as plainly as it reads: what Detector.bank, which
// runs the levels block by block, must equal exactly.
type refBank struct{ split [5]qmf }

func (f *refBank) run(ulaw []byte) [nBands]int64 {
	halve := func(q *qmf, x []int64) (lo, hi []int64) {
		for i := 0; i < len(x); i += 2 {
			y0 := allpass(qmfA0, x[i], q.x0, q.y0)
			y1 := allpass(qmfA1, x[i+1], q.x1, q.y1)
			q.x0, q.y0, q.x1, q.y1 = x[i], y0, x[i+1], y1
			lo, hi = append(lo, y0+y1), append(hi, y0-y1)
		}
		return lo, hi
	}
	energy := func(x []int64) (e int64) {
		for _, v := range x {
			e += v * v
		}
		return e
	}
	x := make([]int64, len(ulaw))
	for i, c := range ulaw {
		x[i] = int64(linear[c])
	}
	lo1, hi1 := halve(&f.split[0], x)    // 0–2k | 2–4k
	lo2, b12 := halve(&f.split[1], lo1)  // 0–1k | 1–2k
	b34, b23 := halve(&f.split[2], hi1)  // 3–4k | 2–3k (mirrored)
	lo3, b051 := halve(&f.split[3], lo2) // 0–500 | 500–1k
	_, b255 := halve(&f.split[4], lo3)   // 0–250 | 250–500
	return [nBands]int64{energy(b255), energy(b051), energy(b12), energy(b23), energy(b34)}
}

func TestBankMatchesLevelByLevel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	var frames [][]byte
	// Full-scale extremes, random bytes, silence, and speech in noise.
	for _, c := range []byte{0x00, 0x80, 0xFF, 0x7F} {
		f := make([]byte, FrameSize)
		for i := range f {
			f[i] = c ^ byte(i&1)*0x80 // alternating signs: the most a split can pass
		}
		frames = append(frames, f, f, f)
	}
	for range 200 {
		f := make([]byte, FrameSize)
		for i := range f {
			f[i] = byte(r.Uint32())
		}
		frames = append(frames, f)
	}
	speech := burst(3, 4000, 500, 3500, -50, -10)
	for i := 0; i+FrameSize <= len(speech); i += FrameSize {
		frames = append(frames, speech[i:i+FrameSize])
	}
	d := New(Config{})
	var ref refBank
	for k, f := range frames {
		got, want := d.bank((*[FrameSize]byte)(f)), ref.run(f)
		if got != want {
			t.Fatalf("frame %d: bank %v, level by level %v", k, got, want)
		}
	}
}

// TestInitAndPrefetch: a Detector held by value and readied by Init hears
// what one from New hears, and asking for its lines changes nothing.
func TestInitAndPrefetch(t *testing.T) {
	b := burst(1, 6000, 2000, 3500, -46, -26)
	cfg := Config{StartMs: 60, HangoverMs: 300}
	want := run(New(cfg), b, FrameSize)
	if len(want) != 2 {
		t.Fatalf("New: %d events, want a start and a stop: %+v", len(want), want)
	}
	var held struct {
		flag bool
		d    Detector
	}
	held.d.Init(cfg)
	var got []Event
	for i := 0; i+FrameSize <= len(b); i += FrameSize {
		before := held.d
		held.d.Prefetch()
		if held.d != before {
			t.Fatalf("Prefetch changed the detector at frame %d", i/FrameSize)
		}
		for ev, ok := held.d.Process(b[i:i+FrameSize], int64(i/8)); ok; ev, ok = held.d.Next() {
			got = append(got, ev)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Init: %+v, New: %+v", got, want)
	}
}
