package edge

import (
	"bytes"
	"sync"
	"time"

	"github.com/callcast/callcast/internal/twilio"
)

// lagMeter measures how far a peer has fallen behind real time: the audio
// handed to its socket less the audio its mark echoes say it has played.
// Twilio echoes every mark, in order, once the audio before it has played
// (or been cleared), so each echo confirms the position of the oldest mark
// not yet echoed. A healthy peer holds at most the lead; one that reads
// slower than real time falls further behind for as long as it lives.
type lagMeter struct {
	limit int64         // bytes of audio behind that count as late
	after time.Duration // how long it may stay late before it is cut
	// onLate is called, once, when the peer has been late for after
	// without a message or an echo to notice it (nothing else moves).
	onLate func()

	mu      sync.Mutex
	written int64   // audio bytes handed to the writer
	heard   int64   // position of the last mark echoed
	marks   []int64 // positions of marks handed to the writer, not yet echoed, oldest first
	late    time.Time
	timer   *time.Timer // armed while late
	stopped bool
}

// maxMarksInFlight bounds lagMeter.marks: a peer that echoes nothing
// while this many marks are out is late by any measure.
const maxMarksInFlight = 4096

func newLagMeter(lead, after time.Duration, onLate func()) *lagMeter {
	return &lagMeter{limit: int64(lead/time.Millisecond) * (twilio.SampleRate / 1000), after: after, onLate: onLate}
}

// stop disarms the meter's timer for good.
func (l *lagMeter) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	if l.timer != nil {
		l.timer.Stop()
	}
}

// fire runs when the peer may have been late for long enough.
func (l *lagMeter) fire() {
	l.mu.Lock()
	late := !l.stopped && !l.late.IsZero() && time.Since(l.late) >= l.after
	l.mu.Unlock()
	if late {
		l.onLate()
	}
}

var (
	outMediaHead = []byte(`{"event":"media","streamSid":"`)
	outMarkHead  = []byte(`{"event":"mark","streamSid":"`)
	payloadKey   = []byte(`","media":{"payload":"`)
)

// sent accounts for an encoded outbound message (twilio.AppendMedia,
// AppendMark…) handed to the writer. It reports whether the peer has been
// late for longer than allowed.
func (l *lagMeter) sent(msg []byte, now time.Time) bool {
	switch {
	case bytes.HasPrefix(msg, outMediaHead):
		i := bytes.Index(msg, payloadKey)
		if i < 0 || len(msg) < i+len(payloadKey)+3 {
			return false
		}
		n := payloadLen(msg[i+len(payloadKey) : len(msg)-3])
		l.mu.Lock()
		l.written += int64(n)
		late := l.checkLocked(now)
		l.mu.Unlock()
		return late
	case bytes.HasPrefix(msg, outMarkHead):
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.marks) >= maxMarksInFlight {
			return l.checkLocked(now)
		}
		l.marks = append(l.marks, l.written)
	}
	return false
}

// echoed accounts for a mark echo. It reports whether the peer has been
// late for longer than allowed.
func (l *lagMeter) echoed(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.marks) > 0 {
		l.heard = l.marks[0]
		l.marks = l.marks[1:]
		if len(l.marks) == 0 {
			l.marks = l.marks[:0:0] // let the array go once drained
		}
	}
	return l.checkLocked(now)
}

// behind is the audio handed to the peer and not yet confirmed played.
func (l *lagMeter) behind() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written - l.heard
}

func (l *lagMeter) checkLocked(now time.Time) bool {
	if l.written-l.heard <= l.limit {
		l.late = time.Time{}
		if l.timer != nil {
			l.timer.Stop()
		}
		return false
	}
	if l.late.IsZero() {
		l.late = now
		if !l.stopped && l.onLate != nil {
			// A peer that stops echoing and reading at once sends
			// nothing that would call us again.
			if l.timer == nil {
				l.timer = time.AfterFunc(l.after, l.fire)
			} else {
				l.timer.Reset(l.after)
			}
		}
		return false
	}
	return now.Sub(l.late) >= l.after
}

// payloadLen is twilio.PayloadLen of a payload in a message being sent,
// without copying it into a string.
func payloadLen(p []byte) int {
	n := len(p) / 4 * 3
	for i := len(p) - 1; i >= 0 && p[i] == '='; i-- {
		n--
	}
	return n
}
