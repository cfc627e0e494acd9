package vad_test

import (
	"fmt"
	"math"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/vad"
)

// A caller says something for a second and a half, two seconds into the
// stream, over a quiet line. The edge hands the detector each 20 ms media
// payload with its Twilio timestamp.
func Example() {
	ulaw := make([]byte, 5*8000)
	for i := range ulaw {
		t := float64(i) / 8000
		var s float64
		if t >= 2 && t < 3.5 { // a 140 Hz voice, syllables four times a second
			for h := 1.0; h <= 20; h++ {
				s += 1000 / h * math.Sin(2*math.Pi*140*h*t) * (0.6 + 0.4*math.Cos(2*math.Pi*4*t))
			}
		}
		ulaw[i] = audio.EncodeMulaw(int16(s + 30*math.Sin(float64(i*i%97)))) // and a little line noise
	}

	d := vad.New(vad.Config{})
	for i := 0; i < len(ulaw); i += vad.FrameSize {
		ts := int64(i / 8)
		for ev, ok := d.Process(ulaw[i:i+vad.FrameSize], ts); ok; ev, ok = d.Next() {
			fmt.Printf("%s at %d ms (duration %d ms), returned at %d ms\n", ev.Kind, ev.AtMs, ev.DurationMs, ts+vad.FrameMs)
		}
	}
	// Output:
	// speech.started at 2000 ms (duration 0 ms), returned at 2040 ms
	// speech.stopped at 3520 ms (duration 1520 ms), returned at 4020 ms
}
