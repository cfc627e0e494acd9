package edge

import (
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/vad"
)

// detect runs the call's voice-activity detector over one frame and
// publishes what it finds.
func (c *callerAudio) detect(ulaw []byte, tsMs int64) {
	for ev, ok := c.vad.Process(ulaw, tsMs); ok; ev, ok = c.vad.Next() {
		c.speech(ev)
	}
}

// speech publishes a speech event; a start may interrupt a playback
// (barge-in, bargein.go).
func (c *callerAudio) speech(ev vad.Event) {
	kind := bus.EventSpeechStarted
	if ev.Kind == vad.SpeechStopped {
		kind = bus.EventSpeechStopped
	}
	e := bus.NewEvent(c.ss.sid, kind)
	e.Speech = &bus.Speech{AtMs: ev.AtMs, DurationMs: ev.DurationMs}
	c.ss.publish(e)
	c.ss.srv.metrics.caller.speech.WithLabelValues(kind).Inc()
	if ev.Kind == vad.SpeechStarted {
		c.ss.bargeIn()
	}
}
