package edge

import (
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
)

// pacerRig is a controller on a session without a socket: what the pacer
// queues for the writer is taken back by the test.
type pacerRig struct {
	c  *controller
	ss *session
	it *item
}

func newPacerRig(tb testing.TB) *pacerRig {
	tb.Helper()
	ns := calltest.NATS(tb, bus.ServerOptions{})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	srv := &Server{nc: nc, metrics: m, log: slog.New(slog.DiscardHandler)}
	srv.cfg.setDefaults()
	ss := &session{srv: srv, log: srv.log, sid: "MZ0123456789abcdef0123456789abcdef", startedAt: time.Now(),
		send: make(chan *[]byte, 64), done: make(chan struct{}), lag: newLagMeter(time.Hour, time.Hour, nil)}
	c := newController(ss)
	ss.ctl = c
	tb.Cleanup(func() { c.close(bus.StopReasonTwilio) })
	f := bus.StreamFormat{Format: bus.FormatMulaw}
	it := &item{id: "pb1", stream: &f, end: -1}
	it.src = newStreamSource(f, 0, func() {})
	c.mu.Lock()
	c.sending = it
	c.mu.Unlock()
	return &pacerRig{c: c, ss: ss, it: it}
}

// frame sends one 200 ms message and its mark as the pacer does, Twilio
// having heard everything before, and takes them back as the writer does.
func (r *pacerRig) frame(chunk []byte) {
	r.it.src.mu.Lock()
	r.it.src.out.write(chunk)
	r.it.src.mu.Unlock()
	r.step()
}

// step runs one step of the pacer, Twilio having heard everything before,
// and takes back what it queued for the writer.
func (r *pacerRig) step() {
	var st step
	r.c.mu.Lock()
	r.it.heard = r.it.sent
	r.c.wallLevel = 0
	r.c.stepLocked(&st, time.Now())
	r.c.mu.Unlock()
	for _, bp := range st.msgs[:st.n] {
		r.ss.enqueue(bp)
	}
	for range st.n {
		bp := <-r.ss.send
		*bp = (*bp)[:0]
		bufPool.Put(bp)
	}
}

// TestPacerSendsWithoutAllocating: a 200 ms media message and its mark,
// from the decoded audio to the writer's queue, allocate nothing.
func TestPacerSendsWithoutAllocating(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	r := newPacerRig(t)
	chunk := make([]byte, pacerChunk)
	r.frame(chunk) // the first sends playback.started
	if n := testing.AllocsPerRun(200, func() { r.frame(chunk) }); n != 0 {
		t.Errorf("%v allocations per 200 ms message", n)
	}
}

// BenchmarkPacerFrame is the pacer's cost per 200 ms media message.
func BenchmarkPacerFrame(b *testing.B) {
	r := newPacerRig(b)
	chunk := make([]byte, pacerChunk)
	b.ReportAllocs()
	b.SetBytes(pacerChunk)
	for b.Loop() {
		r.frame(chunk)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStreamPCM24k is the edge's CPU for a second of a 24 kHz mono
// PCM stream, in 20 ms chunks: in order, decoded, resampled, μ-law
// encoded, and sent in 200 ms messages with their marks. It reports the
// share of one core that 100 such streams take in steady state.
func BenchmarkStreamPCM24k(b *testing.B) {
	r := newPacerRig(b)
	f := bus.StreamFormat{Format: bus.FormatPCMS16LE, SampleRate: 24000, Channels: 1}
	woke := make(chan struct{}, 1)
	src := newStreamSource(f, 0, func() {
		select {
		case woke <- struct{}{}:
		default:
		}
	})
	r.it.src = src
	wait := runSource(src)
	defer wait()
	defer src.close()
	second := testPCM(24000, 1, time.Second)
	const chunk = 960 // 20 ms
	seq := uint64(0)
	b.ReportAllocs()
	b.SetBytes(int64(len(second)))
	cpu0 := cpuTime()
	for b.Loop() {
		for off := 0; off < len(second); off += chunk {
			seq++
			src.take(seq, false, second[off:off+chunk])
			if seq%10 == 0 {
				r.drain()
			}
		}
		// As in a call, the decoder keeps up with the producer: the
		// second is decoded before the next comes.
		for {
			src.mu.Lock()
			raw := src.raw.len()
			src.mu.Unlock()
			if raw == 0 {
				break
			}
			<-woke // the decoder wrote some: not spinning beside it
		}
		r.drain()
	}
	cpu := cpuTime() - cpu0
	perSecond := cpu / time.Duration(b.N)
	b.ReportMetric(100*100*perSecond.Seconds(), "%core/100streams")
}

// drain sends every whole 200 ms message of decoded audio.
func (r *pacerRig) drain() {
	for {
		r.it.src.mu.Lock()
		n := r.it.src.out.len()
		r.it.src.mu.Unlock()
		if n < pacerChunk {
			return
		}
		r.step()
	}
}
