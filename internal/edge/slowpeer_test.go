package edge

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/twilio"
)

// TestLagMeter: audio sent past the lead and never echoed makes the peer
// late; the meter says so when more is sent after SlowPeerAfter, and its
// timer calls onLate when nothing more is sent at all. An echo that
// catches up disarms it, and stop disarms it for good.
func TestLagMeter(t *testing.T) {
	const sid = "MZ0123456789abcdef0123456789abcdef"
	second := make([]byte, twilio.SampleRate) // 1 s of μ-law
	media := twilio.AppendMedia(nil, sid, second)
	mark := twilio.AppendMark(nil, sid, "m")

	t.Run("sent after the deadline", func(t *testing.T) {
		l := newLagMeter(500*time.Millisecond, time.Hour, nil)
		now := time.Now()
		if l.sent(media, now) {
			t.Fatal("late after 1 s sent: the lead is 500 ms, the grace an hour")
		}
		if got := l.behind(); got != int64(len(second)) {
			t.Errorf("behind %d bytes, want %d", got, len(second))
		}
		if l.sent(media, now.Add(59*time.Minute)) {
			t.Error("late before the grace is over")
		}
		if !l.sent(media, now.Add(time.Hour)) {
			t.Error("not late an hour after falling behind")
		}
	})

	t.Run("caught up", func(t *testing.T) {
		var fired atomic.Int32
		l := newLagMeter(500*time.Millisecond, 50*time.Millisecond, func() { fired.Add(1) })
		defer l.stop()
		now := time.Now()
		l.sent(media, now)
		l.sent(mark, now)
		if l.echoed(now) {
			t.Fatal("late at the echo that catches up")
		}
		if got := l.behind(); got != 0 {
			t.Errorf("behind %d bytes after the echo, want 0", got)
		}
		time.Sleep(200 * time.Millisecond) // four times the grace: the timer must not fire
		if n := fired.Load(); n != 0 {
			t.Errorf("onLate called %d times for a peer that caught up", n)
		}
	})

	t.Run("nothing more arrives", func(t *testing.T) {
		fired := make(chan struct{}, 4)
		l := newLagMeter(500*time.Millisecond, 50*time.Millisecond, func() { fired <- struct{}{} })
		defer l.stop()
		l.sent(media, time.Now())
		select {
		case <-fired:
		case <-time.After(10 * time.Second):
			t.Fatal("onLate not called for a peer late with nothing more sent")
		}
	})

	t.Run("stopped", func(t *testing.T) {
		var fired atomic.Int32
		l := newLagMeter(500*time.Millisecond, 50*time.Millisecond, func() { fired.Add(1) })
		l.sent(media, time.Now())
		l.stop()
		time.Sleep(200 * time.Millisecond)
		if n := fired.Load(); n != 0 {
			t.Errorf("onLate called %d times after stop", n)
		}
	})
}
