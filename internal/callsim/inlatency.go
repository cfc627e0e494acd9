package callsim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
)

// Caller audio latency. In a load run with LoadConfig.InLatencyNATS set,
// every caller says stamped frames: quiet μ-law (within 16 steps of
// silence) whose first 16 bytes carry the wall-clock time the frame was
// handed to the socket's writer. A subscriber on every call's
// callcast.stream.<sid>.in reads the stamp of each message's first frame:
// the time from the caller's frame to a listener, through the edge.

// stampLen is the bytes of a frame a stamp takes: a 3-byte tag and 13
// five-bit digits of the Unix time in ns.
const stampLen = 16

var stampTag = [3]byte{0xF5, 0x75, 0xF5}

// stampReader is caller audio whose every frame is stamped when read,
// which the writer does just before sending it.
type stampReader struct{}

func (stampReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0xFF
	}
	if len(p) >= stampLen {
		putStamp(p, time.Now())
	}
	return len(p), nil
}

func putStamp(p []byte, t time.Time) {
	copy(p, stampTag[:])
	ns := uint64(t.UnixNano())
	for i := range 13 {
		v := byte(ns>>(5*i)) & 0x1F
		p[3+i] = 0x70 | (v&0x10)<<3 | v&0x0F
	}
}

func readStamp(p []byte) (time.Time, bool) {
	if len(p) < stampLen || [3]byte(p[:3]) != stampTag {
		return time.Time{}, false
	}
	var ns uint64
	for i := range 13 {
		b := p[3+i]
		if b&0x70 != 0x70 {
			return time.Time{}, false
		}
		ns |= uint64((b>>3)&0x10|b&0x0F) << (5 * i)
	}
	return time.Unix(0, int64(ns)), true
}

// Restamp replaces the stamp of a caller frame said in a load run with
// LoadConfig.InLatencyNATS by at, and returns the stamp it had: a server
// that restamps the frames it reads makes the listener's figure start
// there, and the time it returns is what the frame took to reach it.
// ok is false, and frame unchanged, if frame holds no stamp.
func Restamp(frame []byte, at time.Time) (was time.Time, ok bool) {
	if was, ok = readStamp(frame); ok {
		putStamp(frame, at)
	}
	return was, ok
}

// inLatency collects the latencies of caller audio messages.
type inLatency struct {
	nc  *nats.Conn
	sub *nats.Subscription

	mu  sync.Mutex
	lat []time.Duration
	bad int // messages without a stamp
}

func listenIn(url string) (*inLatency, error) {
	nc, err := nats.Connect(url, nats.Name("callsim-in-latency"))
	if err != nil {
		return nil, fmt.Errorf("callsim: in latency: %w", err)
	}
	l := &inLatency{nc: nc}
	l.sub, err = nc.Subscribe(bus.StreamIn("*"), func(m *nats.Msg) {
		now := time.Now()
		t, ok := readStamp(m.Data)
		l.mu.Lock()
		defer l.mu.Unlock()
		if !ok {
			l.bad++
			return
		}
		l.lat = append(l.lat, now.Sub(t))
	})
	if err == nil {
		_ = l.sub.SetPendingLimits(-1, -1)
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("callsim: in latency: %w", err)
	}
	return l, nil
}

// stop ends the subscription and returns the latencies, sorted, and the
// messages without a stamp.
func (l *inLatency) stop(ctx context.Context) ([]time.Duration, int) {
	_ = l.nc.FlushWithContext(ctx)
	_ = l.sub.Drain()
	l.nc.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.lat)
	return l.lat, l.bad
}

// percentile is the p-th percentile (nearest rank) of sorted d, or 0.
func percentile(d []time.Duration, p float64) time.Duration {
	n := len(d)
	if n == 0 {
		return 0
	}
	i := int(p/100*float64(n)+0.999999) - 1
	return d[min(max(i, 0), n-1)]
}
