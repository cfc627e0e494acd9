package callsim

import "time"

// Playout constants of Twilio's outbound side.
const (
	// BytesPerSecond is the μ-law rate: 8000 one-byte samples per second.
	BytesPerSecond = 8000
	// MaxBuffered is how much unplayed audio Twilio accepts before it
	// discards more (warning 31931): 10 minutes.
	MaxBuffered = 10 * time.Minute
)

// maxBufferedBytes is MaxBuffered in μ-law bytes.
const maxBufferedBytes = int(MaxBuffered / time.Second * BytesPerSecond)

// bytesDuration is the stream time taken by n μ-law bytes.
func bytesDuration(n int) time.Duration {
	return time.Duration(n) * time.Second / BytesPerSecond
}

// item is one entry of the playout queue: audio, or a mark waiting behind
// the audio queued before it.
type item struct {
	n      int    // bytes of audio left
	audio  []byte // those bytes, when recording
	mark   string
	isMark bool
}

// playout models the buffer Twilio plays to the caller: audio and marks in
// arrival order, audio consumed at rate bytes per second of wall time. All
// times are passed in, so the model is deterministic; Call drives it with the
// wall clock under its mutex.
type playout struct {
	rate   float64 // bytes per second of wall time: BytesPerSecond × speed
	record bool    // keep the audio played in played

	items    []item
	buffered int       // audio bytes in items
	last     time.Time // consumption is accounted up to here
	frac     float64   // fraction of a byte carried between advances

	played  []byte   // audio played out, in order, when recording
	nPlayed int      // bytes played out
	echoes  []string // marks due to be echoed, in order; taken by takeEchoes
	pending int      // marks in items

	// Underrun tracking. started: audio has been buffered since the stream
	// began or the last clear. dryAt: when the buffer ran dry after that;
	// zero while audio is buffered.
	started bool
	dryAt   time.Time

	underruns   int
	gap         time.Duration // total underrun gap, in stream time
	maxBuffered int           // most bytes ever buffered
	cleared     int           // bytes dropped by clear
	discarded   int           // bytes refused over maxBufferedBytes
}

// newPlayout returns a playout at speed times real time that keeps the
// audio it plays if record is set.
func newPlayout(speed float64, record bool) *playout {
	return &playout{rate: BytesPerSecond * speed, record: record}
}

// advance plays out the audio due by now and moves marks that have reached
// the head of the queue to the echo list.
func (p *playout) advance(now time.Time) {
	if p.last.IsZero() || now.Before(p.last) {
		p.last = now
	}
	from := p.last
	budget := now.Sub(from).Seconds()*p.rate + p.frac
	n := int(budget)
	p.frac = budget - float64(n)
	p.last = now
	consumed := 0
	for len(p.items) > 0 {
		it := &p.items[0]
		if it.isMark {
			p.echoes = append(p.echoes, it.mark)
			p.pending--
			p.pop()
			continue
		}
		if n == 0 {
			break
		}
		k := min(n, it.n)
		if it.audio != nil {
			p.played = append(p.played, it.audio[:k]...)
			it.audio = it.audio[k:]
		}
		it.n -= k
		p.nPlayed += k
		n -= k
		consumed += k
		p.buffered -= k
		if it.n == 0 {
			p.pop()
		}
	}
	if p.buffered == 0 {
		p.frac = 0
		if p.started && p.dryAt.IsZero() {
			p.dryAt = from.Add(time.Duration(float64(consumed) / p.rate * float64(time.Second)))
		}
	}
}

func (p *playout) pop() {
	p.items[0] = item{}
	p.items = p.items[1:]
	if len(p.items) == 0 {
		p.items = nil // let the backing array go
	}
}

// push queues n bytes of audio received at now; audio holds them when
// recording and may be nil otherwise. It reports false if the audio was
// refused because more than MaxBuffered would be queued.
func (p *playout) push(now time.Time, n int, audio []byte) bool {
	p.advance(now)
	if n == 0 {
		return true
	}
	if !p.record {
		audio = nil
	}
	if p.buffered+n > maxBufferedBytes {
		p.discarded += n
		return false
	}
	if p.buffered == 0 {
		if !p.dryAt.IsZero() {
			// The caller heard silence from dryAt until now.
			gap := time.Duration(float64(now.Sub(p.dryAt)) * p.rate / BytesPerSecond)
			if gap >= time.Second/BytesPerSecond { // at least one sample
				p.underruns++
				p.gap += gap
			}
			p.dryAt = time.Time{}
		}
		p.frac = 0
	}
	p.items = append(p.items, item{n: n, audio: audio})
	p.buffered += n
	p.started = true
	p.maxBuffered = max(p.maxBuffered, p.buffered)
	return true
}

// mark queues a mark received at now behind the audio buffered before it;
// with nothing buffered it is due at once.
func (p *playout) mark(now time.Time, name string) {
	p.advance(now)
	if p.buffered == 0 {
		p.echoes = append(p.echoes, name)
		return
	}
	p.items = append(p.items, item{mark: name, isMark: true})
	p.pending++
}

// clear drops all unplayed audio at now; every pending mark becomes due.
// Silence after a clear is deliberate, so it does not count as an underrun.
func (p *playout) clear(now time.Time) {
	p.advance(now)
	for _, it := range p.items {
		if it.isMark {
			p.echoes = append(p.echoes, it.mark)
		}
	}
	p.cleared += p.buffered
	p.items = nil
	p.buffered = 0
	p.pending = 0
	p.frac = 0
	p.started = false
	p.dryAt = time.Time{}
}

// takeEchoes returns the marks now due, oldest first, and forgets them.
func (p *playout) takeEchoes() []string {
	e := p.echoes
	p.echoes = nil
	return e
}

// nextWake is how long after the last advance the next mark falls due or
// the buffer runs dry, capped at limit; 0 means nothing is buffered.
func (p *playout) nextWake(limit time.Duration) time.Duration {
	if p.buffered == 0 {
		return 0
	}
	ahead := 0
	for _, it := range p.items {
		if it.isMark {
			break
		}
		ahead += it.n
	}
	d := time.Duration((float64(ahead) - p.frac) / p.rate * float64(time.Second))
	return min(limit, max(d, time.Millisecond))
}
