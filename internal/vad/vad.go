// Package vad detects a caller's speech in 8000 Hz G.711 μ-law, the audio
// Twilio Media Streams send (160 bytes = 20 ms), and turns it into
// speech.started and speech.stopped events in stream time.
//
// A Detector looks at the audio 20 ms at a time. Each frame is decoded with
// the G.711 table of package audio and reduced to a frame energy in dB; an
// adaptive noise floor follows the background, and a frame counts as speech
// when it stands far enough above the floor. StartMs of speech starts an
// utterance and HangoverMs of silence ends it. docs/vad.md describes the
// algorithm, why it was chosen, and what it measures on the committed
// fixtures.
//
// A Detector is not safe for concurrent use; a call owns one. Process does
// not allocate.
package vad

import (
	"math"

	"github.com/callcast/callcast/internal/audio"
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
	DefaultStartMs    = 60
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

// Detector finds speech in one stream of audio. The zero value is not
// usable: call New.
type Detector struct {
	startFrames    int // speech frames that start an utterance
	hangoverFrames int // silent frames that end it

	// The frame being accumulated.
	pos    int   // samples of it seen so far
	energy int64 // sum of squared samples
	frameT int64 // stream time of its first sample, ms

	// The noise floor, dB.
	floor  float64
	frames int // frames seen, up to a saturation

	// State machine.
	speaking bool
	run      int   // consecutive speech frames while silent; silent frames while speaking
	onset    int64 // start of the current (candidate) utterance, ms
	lastEnd  int64 // end of the last speech frame while speaking, ms

	// Events not yet returned, oldest first.
	queue [queueLen]Event
	head  int
	n     int
}

// New returns a Detector for one stream.
func New(cfg Config) *Detector {
	d := &Detector{}
	d.configure(cfg)
	d.Reset()
	return d
}

func (d *Detector) configure(cfg Config) {
	if cfg.StartMs <= 0 {
		cfg.StartMs = DefaultStartMs
	}
	if cfg.HangoverMs <= 0 {
		cfg.HangoverMs = DefaultHangoverMs
	}
	d.startFrames = (cfg.StartMs + FrameMs - 1) / FrameMs
	d.hangoverFrames = (cfg.HangoverMs + FrameMs - 1) / FrameMs
}

// Reset forgets the audio seen so far and any events not yet returned, as
// if the Detector were new; the Config stays.
func (d *Detector) Reset() {
	s, h := d.startFrames, d.hangoverFrames
	*d = Detector{startFrames: s, hangoverFrames: h}
	d.floor = math.Inf(1)
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
		chunk := ulaw[i:min(len(ulaw), i+FrameSize-d.pos)]
		var e int64
		for _, b := range chunk {
			s := int64(audio.DecodeMulaw(b))
			e += s * s
		}
		d.energy += e
		d.pos += len(chunk)
		i += len(chunk)
		if d.pos == FrameSize {
			d.frame()
		}
	}
	return d.Next()
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

// Levels, dB relative to a full-scale square wave per sample (32768²).
const (
	// minSpeechDB: quieter frames are never speech, whatever the floor.
	// μ-law's idle codes decode to ±4 (about -78 dB); -55 dB is far below
	// a caller's voice on a phone line and above line noise.
	minSpeechDB = -55
	// marginDB: a speech frame stands this far above the noise floor.
	marginDB = 9
	// floorRiseDB: how fast the floor climbs towards louder frames, per
	// frame (0.5 dB per second), so that a steady noise is learnt in
	// seconds but speech is not.
	floorRiseDB = 0.01
)

// frame decides on the frame just completed and advances the state machine.
func (d *Detector) frame() {
	e := d.energy
	t := d.frameT
	d.energy, d.pos = 0, 0

	db := 10*math.Log10(float64(e)/FrameSize+1) - 90.309 // 10·log10(32768²)
	if d.frames < 1<<20 {
		d.frames++
	}
	// The floor falls at once to a quieter frame and climbs slowly.
	if db < d.floor {
		d.floor = db
	} else {
		d.floor += floorRiseDB
	}
	speech := db > minSpeechDB && db > d.floor+marginDB

	if !d.speaking {
		if !speech {
			d.run = 0
			return
		}
		if d.run == 0 {
			d.onset = t
		}
		d.run++
		if d.run >= d.startFrames {
			d.speaking = true
			d.run = 0
			d.lastEnd = t + FrameMs
			d.push(Event{Kind: SpeechStarted, AtMs: d.onset})
		}
		return
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
