package callsim

import (
	"reflect"
	"testing"
	"time"
)

// The playout model is driven with explicit times here, so durations are
// exact.

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestPlayoutPlaysAtRate(t *testing.T) {
	tests := []struct {
		name  string
		speed float64
		after int // ms of wall time
		want  int // bytes played
	}{
		{"real time 100ms", 1, 100, 800},
		{"real time 1s", 1, 1000, 8000},
		{"speed 20 50ms", 20, 50, 8000},
		{"speed 2 250ms", 2, 250, 4000},
		{"never more than buffered", 1, 5000, 8000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPlayout(tt.speed, true)
			p.advance(at(0))
			p.pushAudio(at(0), tone(8000))
			p.advance(at(tt.after))
			if len(p.played) != tt.want || p.buffered != 8000-tt.want {
				t.Errorf("played %d, buffered %d; want %d played", len(p.played), p.buffered, tt.want)
			}
		})
	}
}

func TestPlayoutSmallStepsLoseNothing(t *testing.T) {
	p := newPlayout(1, true)
	p.pushAudio(at(0), tone(16000))
	// 0.3 ms steps are 2.4 bytes each: fractions must carry.
	for us := 300; us <= 1_000_000; us += 300 {
		p.advance(t0.Add(time.Duration(us) * time.Microsecond))
	}
	if n := len(p.played); n < 7998 || n > 8000 {
		t.Errorf("played %d bytes in 1 s of small steps, want 8000", n)
	}
	if string(p.played) != string(tone(16000)[:len(p.played)]) {
		t.Error("played audio out of order")
	}
}

func TestPlayoutMarks(t *testing.T) {
	p := newPlayout(1, true)
	p.mark(at(0), "empty") // nothing buffered: due at once
	if got := p.takeEchoes(); !reflect.DeepEqual(got, []string{"empty"}) {
		t.Fatalf("echoes %q", got)
	}
	p.pushAudio(at(0), tone(160)) // 20 ms
	p.mark(at(0), "a")
	p.pushAudio(at(0), tone(160))
	p.mark(at(0), "b")
	if w := p.nextWake(time.Second); w != 20*time.Millisecond {
		t.Errorf("nextWake = %v, want 20ms until mark a", w)
	}
	p.advance(at(19))
	if got := p.takeEchoes(); got != nil {
		t.Fatalf("echoes %q before the audio played", got)
	}
	p.advance(at(20))
	if got := p.takeEchoes(); !reflect.DeepEqual(got, []string{"a"}) {
		t.Fatalf("echoes %q at 20ms, want a", got)
	}
	p.advance(at(45))
	if got := p.takeEchoes(); !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("echoes %q at 45ms, want b", got)
	}
	if p.nextWake(time.Second) != 0 || p.pending != 0 {
		t.Errorf("nextWake %v, pending %d with nothing buffered", p.nextWake(time.Second), p.pending)
	}
}

func TestPlayoutClear(t *testing.T) {
	p := newPlayout(1, true)
	p.pushAudio(at(0), tone(8000))
	p.mark(at(0), "a")
	p.pushAudio(at(0), tone(8000))
	p.mark(at(0), "b")
	p.clear(at(500))
	if got := p.takeEchoes(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("echoes %q after clear, want a b", got)
	}
	if len(p.played) != 4000 || p.cleared != 12000 || p.buffered != 0 || len(p.items) != 0 {
		t.Errorf("played %d, cleared %d, buffered %d", len(p.played), p.cleared, p.buffered)
	}
	// Silence after a clear is no underrun.
	p.pushAudio(at(2000), tone(800))
	p.advance(at(3000))
	if p.underruns != 0 {
		t.Errorf("%d underruns after clear", p.underruns)
	}
}

func TestPlayoutUnderruns(t *testing.T) {
	type step struct {
		ms    int
		bytes int // pushed at ms; 0: only advance
	}
	tests := []struct {
		name  string
		speed float64
		steps []step
		n     int
		gap   time.Duration
	}{
		{"none: late first audio", 1, []step{{1000, 800}, {1100, 0}}, 0, 0},
		{"none: back to back", 1, []step{{0, 800}, {100, 800}, {200, 800}, {300, 0}}, 0, 0},
		{"none: ahead of time", 1, []step{{0, 800}, {50, 800}, {60, 800}, {400, 0}}, 0, 0},
		{"none: after the last", 1, []step{{0, 800}, {5000, 0}}, 0, 0},
		{"one gap", 1, []step{{0, 800}, {300, 800}, {500, 0}}, 1, 200 * time.Millisecond},
		{"gap noticed without an advance at dry time", 1, []step{{0, 800}, {250, 800}}, 1, 150 * time.Millisecond},
		{"two gaps", 1, []step{{0, 160}, {40, 160}, {100, 160}, {200, 0}}, 2, 20*time.Millisecond + 40*time.Millisecond},
		{"stream time at speed 10", 10, []step{{0, 800}, {30, 800}, {100, 0}}, 1, 200 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, record := range []bool{true, false} {
				p := newPlayout(tt.speed, record)
				p.advance(at(0))
				total := 0
				for _, s := range tt.steps {
					if s.bytes > 0 {
						p.pushAudio(at(s.ms), tone(s.bytes))
						total += s.bytes
					} else {
						p.advance(at(s.ms))
					}
				}
				if p.underruns != tt.n || p.gap != tt.gap {
					t.Errorf("record %v: underruns %d, gap %v; want %d, %v", record, p.underruns, p.gap, tt.n, tt.gap)
				}
				if kept := len(p.played); record && kept != p.nPlayed || !record && kept != 0 {
					t.Errorf("record %v: kept %d bytes of %d played", record, kept, p.nPlayed)
				}
			}
		})
	}
}

func TestPlayoutMaxBufferedAndDiscard(t *testing.T) {
	p := newPlayout(1, true)
	p.pushAudio(at(0), tone(8000))
	p.pushAudio(at(500), tone(8000))
	if p.maxBuffered != 12000 {
		t.Errorf("maxBuffered %d, want 12000", p.maxBuffered)
	}
	p.pushAudio(at(500), make([]byte, maxBufferedBytes-12000))
	if ok := p.pushAudio(at(500), tone(1)); ok || p.discarded != 1 {
		t.Errorf("push over the cap = %v, discarded %d", ok, p.discarded)
	}
	if bytesDuration(p.maxBuffered) != MaxBuffered {
		t.Errorf("maxBuffered %v, want %v", bytesDuration(p.maxBuffered), MaxBuffered)
	}
}

// pushAudio queues recorded audio.
func (p *playout) pushAudio(now time.Time, audio []byte) bool { return p.push(now, len(audio), audio) }
