package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/worker"
)

// Streamed playbacks: a producer publishes its own audio, in its own
// format, on the playback's audio subject, and the edge plays it.

// pcmSignal is d of deterministic speech-like 16-bit PCM at rate with ch
// channels: gliding partials under a syllable-rate envelope, a little noise.
func pcmSignal(rate, ch int, d time.Duration) []byte {
	n := int(int64(rate) * int64(d) / int64(time.Second))
	r := rand.New(rand.NewPCG(uint64(rate), uint64(ch)))
	out := make([]byte, 0, n*2*ch)
	for i := range n {
		t := float64(i) / float64(rate)
		f0 := 140 + 40*math.Sin(2*math.Pi*0.7*t)
		env := 0.55 + 0.45*math.Sin(2*math.Pi*4*t)
		v := 0.0
		for k := 1; k <= 12; k++ {
			v += math.Sin(2*math.Pi*f0*float64(k)*t+float64(k)) / float64(k)
		}
		v = v*env*6000 + r.NormFloat64()*200
		for c := range ch {
			s := v
			if c == 1 {
				s = v * 0.8
			}
			out = binary.LittleEndian.AppendUint16(out, uint16(int16(max(-32768, min(32767, s)))))
		}
	}
	return out
}

// wavFile wraps 16-bit PCM in a WAV header that records its length.
func wavFile(rate, ch int, pcm []byte) []byte {
	return append(audio.AppendWAVHeader(make([]byte, 0, 44+len(pcm)), rate, ch, len(pcm)), pcm...)
}

// filePath is what the file path makes of a file: the transcoder's μ-law.
func filePath(t *testing.T, file []byte) []byte {
	t.Helper()
	tc, err := audio.NewTranscoder(bytes.NewReader(file), audio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(tc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// snr is the signal-to-noise ratio of got against ref (linear PCM of the
// μ-law), in dB, over the shorter length; +Inf when they are equal.
func snr(got, ref []byte) float64 {
	var sig, noise float64
	for i := range min(len(got), len(ref)) {
		r, g := float64(audio.DecodeMulaw(ref[i])), float64(audio.DecodeMulaw(got[i]))
		sig += r * r
		noise += (g - r) * (g - r)
	}
	if noise == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(sig/noise)
}

// startStream asks for a streamed playback and returns its reply.
func startStream(t *testing.T, nc *nats.Conn, req bus.PlayRequest) bus.PlayReply {
	t.Helper()
	reply := mustPlay(t, nc, req)
	if want := bus.PlaybackAudio(reply.PlaybackID); reply.AudioSubject != want {
		t.Fatalf("audioSubject %q, want %q", reply.AudioSubject, want)
	}
	return reply
}

// publishChunk publishes one chunk of a streamed playback.
func publishChunk(t *testing.T, nc *nats.Conn, subject string, seq int, data []byte, end bool) {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if seq > 0 {
		msg.Header.Set(bus.HeaderSeq, strconv.Itoa(seq))
	}
	if end {
		msg.Header.Set(bus.HeaderEnd, "true")
	}
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
}

// publishStream publishes data in chunks of size, then the end.
func publishStream(t *testing.T, nc *nats.Conn, subject string, data []byte, size int) {
	t.Helper()
	seq := 0
	for off := 0; off < len(data); off += size {
		seq++
		publishChunk(t, nc, subject, seq, data[off:min(off+size, len(data))], false)
	}
	publishChunk(t, nc, subject, seq+1, nil, true)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// checkHeard compares what a call heard with the file path's rendering of
// the same audio: the length within 20 ms and the same samples.
func checkHeard(t *testing.T, got, ref []byte) {
	t.Helper()
	if d := math.Abs(float64(len(got)-len(ref))) / audio.SampleRate; d > 0.020 {
		t.Errorf("heard %d bytes, the file path makes %d: off by %.0f ms, limit 20 ms", len(got), len(ref), d*1000)
	}
	s := snr(got, ref)
	t.Logf("heard %d bytes (file path %d), SNR against the file path %.1f dB", len(got), len(ref), s)
	if !bytes.Equal(got, ref) {
		t.Errorf("the call heard other samples than the file path makes (SNR %.1f dB)", s)
	}
}

func TestStreamedPlaybackSoundsLikeTheFile(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := producerSystem(t, "testdata/audio")
	speech, err := os.ReadFile("testdata/audio/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	sig8k := pcmSignal(8000, 1, 1500*time.Millisecond)
	ulaw := make([]byte, len(sig8k)/2)
	for i := range ulaw {
		ulaw[i] = audio.EncodeMulaw(int16(binary.LittleEndian.Uint16(sig8k[2*i:])))
	}
	pcm := func(rate, ch int) (bus.StreamFormat, []byte, []byte) {
		p := pcmSignal(rate, ch, 1500*time.Millisecond)
		return bus.StreamFormat{Format: bus.FormatPCMS16LE, SampleRate: rate, Channels: ch}, p, filePath(t, wavFile(rate, ch, p))
	}
	wav44 := wavFile(44100, 2, pcmSignal(44100, 2, 1500*time.Millisecond))
	type tc struct {
		name   string
		format bus.StreamFormat
		data   []byte
		ref    []byte
		chunk  int
	}
	cases := []tc{
		{name: "mulaw", format: bus.StreamFormat{Format: bus.FormatMulaw}, data: ulaw, ref: ulaw, chunk: 160},
		{name: "wav", format: bus.StreamFormat{Format: bus.FormatWAV}, data: wav44, ref: filePath(t, wav44), chunk: 4410},
		{name: "mp3 split every 1000 bytes", format: bus.StreamFormat{Format: bus.FormatMP3}, data: speech, ref: filePath(t, speech), chunk: 1000},
	}
	for _, r := range []struct{ rate, ch int }{{16000, 1}, {22050, 1}, {24000, 1}, {48000, 2}} {
		f, data, ref := pcm(r.rate, r.ch)
		// 20 ms chunks, a TTS engine's usual, plus an odd byte now and
		// then: chunks need not hold whole samples.
		cases = append(cases, tc{name: f.String(), format: f, data: data, ref: ref, chunk: r.rate*2*r.ch/50 + 1})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sid, ev, call := liveCall(t, s, 8)
			reply := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: &c.format, ID: "tts-1"})
			publishStream(t, s.nc, reply.AudioSubject, c.data, c.chunk)
			started := ev.playback(t, bus.EventPlaybackStarted, reply.PlaybackID, 5*time.Second)
			fin := ev.playback(t, bus.EventPlaybackFinished, reply.PlaybackID, 20*time.Second)
			if started.Playback.Stream != c.format.String() || fin.Playback.Stream != c.format.String() || fin.Playback.RequestID != "tts-1" {
				t.Errorf("events %+v %+v, want stream %q and requestId tts-1", started.Playback, fin.Playback, c.format.String())
			}
			got := call.Received()
			if fin.Playback.HeardMs != bus.MsOf(int64(len(got))) || fin.Playback.SentMs != fin.Playback.HeardMs {
				t.Errorf("finished %+v after %d bytes", fin.Playback, len(got))
			}
			if errs := call.Errs(); len(errs) > 0 {
				t.Errorf("protocol violations: %v", errs)
			}
			checkHeard(t, got, c.ref)
		})
	}
}

// streamSystem runs the product for producers with the edge's stream idle
// timeout at idle, and the worker's metrics in reg.
func streamSystem(t *testing.T, idle time.Duration, reg *prometheus.Registry) *system {
	t.Helper()
	wcfg := worker.Config{AudioDir: "testdata/audio", DefaultAudio: worker.NoDefaultAudio}
	if reg != nil {
		wcfg.Registerer = reg
	}
	c := startCluster(t, 1, 1, wcfg, func(c *edge.Config) { c.StreamIdleTimeout = idle })
	return &system{wsURL: c.edges[0], nc: c.nc, worker: c.workers[0]}
}

// mulawTone is d of a μ-law sine at hz: audio that no speech frame equals.
func mulawTone(hz float64, d time.Duration) []byte {
	out := make([]byte, int(d/time.Millisecond)*8)
	for i := range out {
		out[i] = audio.EncodeMulaw(int16(9000 * math.Sin(2*math.Pi*hz*float64(i)/8000)))
	}
	return out
}

// interleaving checks that got is a and b interleaved, each whole, in
// order and once; it returns how often the source changed.
func interleaving(t *testing.T, got, a, b []byte) int {
	t.Helper()
	common := func(x, y []byte) int {
		n := 0
		for n < min(len(x), len(y), audio.FrameSize) && x[n] == y[n] {
			n++
		}
		return n
	}
	i, j, switches, from := 0, 0, 0, 0
	for k := 0; k < len(got); {
		// The longer match wins: a few bytes of one may equal the other
		// by chance, a frame does not.
		la, lb := common(got[k:], a[i:]), common(got[k:], b[j:])
		src := 1
		switch {
		case la == 0 && lb == 0:
			t.Fatalf("heard byte %d (%d ms) is neither the playback's byte %d nor the producer's %d: a gap, a repeat or a loss", k, k/8, i, j)
		case la >= lb:
			i, k = i+la, k+la
		default:
			j, k, src = j+lb, k+lb, 2
		}
		if src != from {
			switches++
			from = src
		}
	}
	if i != len(a) || j != len(b) {
		t.Fatalf("heard %d of %d bytes of the playback and %d of %d of the producer's", i, len(a), j, len(b))
	}
	return switches
}

// metricValue sums the samples of a metric in reg whose labels include
// the given ones.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (sum float64, hist *dto.Histogram) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				hist = m.Histogram
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum, hist
}

// TestOutMediaPausesThePlayback: 20 s of a producer's own μ-law on .out,
// in real time, in the middle of a file's playback. The playback pauses
// while the producer's audio plays and resumes after it from the byte it
// reached: the caller hears all of both, nothing twice, no failure; the
// worker's superseded attempt is told to stop and stops within 100 ms.
func TestOutMediaPausesThePlayback(t *testing.T) {
	calltest.CheckGoroutines(t)
	reg := prometheus.NewRegistry()
	s := streamSystem(t, 0, reg)
	sid, ev, call := liveCall(t, s, 1)
	speech, err := os.ReadFile("testdata/audio/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	ref := filePath(t, speech)
	a := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: "speech.mp3"})
	ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
	waitFor(t, "a second of the playback to be heard", 5*time.Second, func() bool { return len(call.Played()) >= 8000 })

	tone := mulawTone(600, 20*time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	for off := 0; off < len(tone); off += audio.FrameSize {
		msg := `{"event":"media","media":{"payload":"` + base64.StdEncoding.EncodeToString(tone[off:off+audio.FrameSize]) + `"}}`
		if err := s.nc.Publish(bus.StreamOut(sid), []byte(msg)); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	tick.Stop()
	if err := s.nc.Publish(bus.StreamOut(sid), []byte(`{"event":"mark","mark":{"name":"producer-done"}}`)); err != nil {
		t.Fatal(err)
	}
	fin := ev.playback(t, bus.EventPlaybackFinished, a.PlaybackID, 15*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := call.WaitMark(ctx, "producer-done"); err != nil {
		t.Errorf("the producer's mark: %v", err)
	}
	for _, k := range ev.kinds() {
		if k == bus.EventPlaybackFailed {
			t.Errorf("a playback failed: %v", ev.kinds())
		}
	}
	if fin.Playback.HeardMs != bus.MsOf(int64(len(ref))) {
		t.Errorf("finished %+v, want all %d ms heard", fin.Playback, bus.MsOf(int64(len(ref))))
	}
	switches := interleaving(t, call.Received(), ref, tone)
	st := call.Stats()
	t.Logf("heard the playback and the producer's audio in %d runs; underruns %d (%s), max buffered %s", switches, st.Underruns, st.UnderrunTime, st.MaxBuffered)
	if st.MaxBuffered > leadBound {
		t.Errorf("Twilio's buffer held %s, more than the lead and one chunk (%s)", st.MaxBuffered, leadBound)
	}
	if st.UnderrunTime > 400*time.Millisecond && !raceEnabled {
		t.Errorf("gaps of %s beside the producer's own audio", st.UnderrunTime)
	}
	superseded, _ := metricValue(t, reg, "callcast_worker_playbacks_total", map[string]string{"outcome": "superseded"})
	n, h := metricValue(t, reg, "callcast_worker_stop_seconds", nil)
	if superseded < 1 || n != superseded {
		t.Fatalf("%v attempts superseded, %v stop delays measured: want the paused attempt told to stop", superseded, n)
	}
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == 0.1 && float64(b.GetCumulativeCount()) != n {
			t.Errorf("%d of %v superseded attempts stopped within 100 ms of being told", b.GetCumulativeCount(), n)
		}
	}
}

// chunked cuts data into chunks of size.
func chunked(data []byte, size int) [][]byte {
	var c [][]byte
	for off := 0; off < len(data); off += size {
		c = append(c, data[off:min(off+size, len(data))])
	}
	return c
}

// TestStreamedPlaybackProducerTrouble: the ways a producer can go wrong
// end the playback as the contract says, after what was sent is heard.
func TestStreamedPlaybackProducerTrouble(t *testing.T) {
	calltest.CheckGoroutines(t)
	const idle = 400 * time.Millisecond
	s := streamSystem(t, idle, nil)
	ulaw := mulawTone(440, 600*time.Millisecond) // 4800 bytes
	chunks := chunked(ulaw, 480)                 // 60 ms each
	mulaw := &bus.StreamFormat{Format: bus.FormatMulaw}

	t.Run("stalled before any audio", func(t *testing.T) {
		sid, ev, call := liveCall(t, s, 8)
		r := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw})
		begin := time.Now()
		f := ev.playback(t, bus.EventPlaybackFailed, r.PlaybackID, 5*time.Second)
		if took := time.Since(begin); f.Error == nil || f.Error.Code != bus.CodeStalled || took < idle/2 {
			t.Errorf("failed %+v %+v after %s, want code stalled after about %s", f.Playback, f.Error, took, idle)
		}
		if len(call.Received()) != 0 || f.Playback.Stream != "mulaw" {
			t.Errorf("heard %d bytes; event %+v", len(call.Received()), f.Playback)
		}
	})

	t.Run("only the end", func(t *testing.T) {
		sid, ev, call := liveCall(t, s, 8)
		r := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw})
		publishChunk(t, s.nc, r.AudioSubject, 0, nil, true) // no Callcast-Seq: after everything
		f := ev.playback(t, bus.EventPlaybackFinished, r.PlaybackID, 5*time.Second)
		if f.Playback.HeardMs != 0 || len(call.Received()) != 0 {
			t.Errorf("finished %+v after %d bytes, want nothing heard", f.Playback, len(call.Received()))
		}
		for _, k := range ev.kinds() {
			if k == bus.EventPlaybackStarted || k == bus.EventPlaybackFailed {
				t.Errorf("events %v", ev.kinds())
			}
		}
	})

	t.Run("never sends the end", func(t *testing.T) {
		sid, ev, call := liveCall(t, s, 8)
		r := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw})
		for i, c := range chunks {
			publishChunk(t, s.nc, r.AudioSubject, i+1, c, false)
		}
		f := ev.playback(t, bus.EventPlaybackFailed, r.PlaybackID, 5*time.Second)
		if f.Error == nil || f.Error.Code != bus.CodeStalled || f.Playback.HeardMs != 600 || f.Playback.SentMs != 600 {
			t.Errorf("failed %+v %+v, want code stalled after all 600 ms heard", f.Playback, f.Error)
		}
		if !bytes.Equal(call.Received(), ulaw) {
			t.Errorf("heard %d bytes, not the %d sent", len(call.Received()), len(ulaw))
		}
	})

	t.Run("pauses and goes on", func(t *testing.T) {
		sid, ev, call := liveCall(t, s, 8)
		r := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw})
		for i, c := range chunks[:5] {
			publishChunk(t, s.nc, r.AudioSubject, i+1, c, false)
		}
		waitFor(t, "the first half to be heard", 5*time.Second, func() bool { return len(call.Played()) >= 2400 })
		time.Sleep(idle / 2) // silence, shorter than the idle timeout
		for i, c := range chunks[5:] {
			publishChunk(t, s.nc, r.AudioSubject, i+6, c, false)
		}
		publishChunk(t, s.nc, r.AudioSubject, len(chunks)+1, nil, true)
		f := ev.playback(t, bus.EventPlaybackFinished, r.PlaybackID, 5*time.Second)
		if f.Playback.HeardMs != 600 || !bytes.Equal(call.Received(), ulaw) {
			t.Errorf("finished %+v after %d bytes, want all 600 ms", f.Playback, len(call.Received()))
		}
		if st := call.Stats(); st.Underruns == 0 {
			t.Errorf("no gap heard while the producer paused: %+v", st)
		}
	})

	t.Run("out of order and missing", func(t *testing.T) {
		sid, ev, call := liveCall(t, s, 8)
		r := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw})
		// 2 before 1, 5 before 4 before 3; 7 never comes; the end (11)
		// before 10.
		for _, seq := range []int{2, 1, 5, 4, 3, 6, 8, 9, 11, 10} {
			if seq == 11 {
				publishChunk(t, s.nc, r.AudioSubject, seq, nil, true)
				continue
			}
			publishChunk(t, s.nc, r.AudioSubject, seq, chunks[seq-1], false)
		}
		publishChunk(t, s.nc, r.AudioSubject, 3, chunks[2], false) // twice: dropped
		f := ev.playback(t, bus.EventPlaybackFinished, r.PlaybackID, 5*time.Second)
		want := bytes.Clone(ulaw)
		copy(want[6*480:7*480], bytes.Repeat([]byte{0xFF}, 480)) // μ-law silence
		if got := call.Received(); !bytes.Equal(got, want) {
			t.Errorf("heard %d bytes, want the %d sent in order with chunk 7 as silence (SNR %.1f dB)", len(got), len(want), snr(got, want))
		}
		if f.Playback.HeardMs != 600 {
			t.Errorf("finished %+v", f.Playback)
		}
	})

	t.Run("too large", func(t *testing.T) {
		sid, ev, _ := liveCall(t, s, 8)
		r := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw})
		chunk := make([]byte, 512<<10) // 65 s of μ-law each
		for i := range bytes.Repeat(chunk[:1], 10) {
			publishChunk(t, s.nc, r.AudioSubject, i+1, chunk, false)
		}
		f := ev.playback(t, bus.EventPlaybackFailed, r.PlaybackID, 10*time.Second)
		if f.Error == nil || f.Error.Code != bus.CodeTooLarge {
			t.Errorf("failed %+v, want code too_large", f.Error)
		}
	})
}

// TestStreamedAndFilePlaybacksShareTheTimeline: a stream queues behind a
// file and a file behind a stream; either interrupts the other.
func TestStreamedAndFilePlaybacksShareTheTimeline(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := streamSystem(t, 0, nil)
	speech, err := os.ReadFile("testdata/audio/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	file := filePath(t, speech)
	tone := mulawTone(700, 1500*time.Millisecond)
	mulaw := &bus.StreamFormat{Format: bus.FormatMulaw}

	t.Run("queue", func(t *testing.T) {
		sid, ev, call := liveCall(t, s, 8)
		a := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: "speech.mp3"})
		b := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw})
		publishStream(t, s.nc, b.AudioSubject, tone, 320)
		c := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: "speech.mp3"})
		ev.playback(t, bus.EventPlaybackFinished, c.PlaybackID, 20*time.Second)
		var order []string
		ev.mu.Lock()
		for _, e := range ev.list {
			if e.Event == bus.EventPlaybackFinished {
				order = append(order, e.Playback.ID)
			}
		}
		ev.mu.Unlock()
		if len(order) != 3 || order[0] != a.PlaybackID || order[1] != b.PlaybackID || order[2] != c.PlaybackID {
			t.Errorf("finished in order %v, want %s %s %s", order, a.PlaybackID, b.PlaybackID, c.PlaybackID)
		}
		want := append(append(bytes.Clone(file), tone...), file...)
		if got := call.Received(); !bytes.Equal(got, want) {
			t.Errorf("heard %d bytes, want file, stream, file (%d) back to back", len(got), len(want))
		}
	})

	t.Run("a stream interrupts a file", func(t *testing.T) {
		sid, ev, call := liveCall(t, s, 1)
		a := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: "speech.mp3"})
		ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
		waitFor(t, "half a second heard", 5*time.Second, func() bool { return len(call.Played()) >= 4000 })
		b := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw, Mode: bus.ModeInterrupt})
		in := ev.playback(t, bus.EventPlaybackInterrupted, a.PlaybackID, 5*time.Second)
		if in.Playback.Reason != "interrupt" {
			t.Errorf("interrupted %+v", in.Playback)
		}
		publishStream(t, s.nc, b.AudioSubject, tone[:4000], 320)
		ev.playback(t, bus.EventPlaybackFinished, b.PlaybackID, 5*time.Second)
		if got := call.Played(); !bytes.HasSuffix(got, tone[:4000]) {
			t.Errorf("the stream was not heard whole at the end")
		}
	})

	t.Run("producer media on .out pauses a stream", func(t *testing.T) {
		sid, ev, call := liveCall(t, s, 8)
		long := mulawTone(700, 8*time.Second)
		a := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw})
		publishStream(t, s.nc, a.AudioSubject, long, 320)
		ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
		waitFor(t, "some of the stream heard", 5*time.Second, func() bool { return len(call.Played()) >= 2000 })
		own := mulawTone(523, time.Second)
		for off := 0; off < len(own); off += audio.FrameSize {
			msg := `{"event":"media","media":{"payload":"` + base64.StdEncoding.EncodeToString(own[off:off+audio.FrameSize]) + `"}}`
			if err := s.nc.Publish(bus.StreamOut(sid), []byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.nc.Publish(bus.StreamOut(sid), []byte(`{"event":"mark","mark":{"name":"own-done"}}`)); err != nil {
			t.Fatal(err)
		}
		fin := ev.playback(t, bus.EventPlaybackFinished, a.PlaybackID, 10*time.Second)
		if fin.Playback.HeardMs != bus.MsOf(int64(len(long))) {
			t.Errorf("finished %+v, want all %d ms", fin.Playback, bus.MsOf(int64(len(long))))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := call.WaitMark(ctx, "own-done"); err != nil {
			t.Errorf("the producer's mark: %v", err)
		}
		got := call.Received()
		if runs := interleaving(t, got, long, own); runs != 3 {
			t.Errorf("heard the stream and the producer's media in %d runs, want 3: stream, media, the rest of the stream", runs)
		}
		// The producer's mark went out after all of its media.
		heard := 0
		for _, m := range call.Messages() {
			switch {
			case m.Event == "media":
				heard += len(decodePayload(t, m.Media.Payload))
			case m.Event == "mark" && m.Mark.Name == "own-done":
				if !bytes.Contains(got[:heard], own[len(own)-audio.FrameSize:]) {
					t.Errorf("the producer's mark went out after %d bytes, before the end of its media", heard)
				}
			}
		}
		if n := len(call.Marks()); n == 0 || !slices.Contains(call.Marks(), "own-done") {
			t.Errorf("the producer's mark never came: %v", call.Marks())
		}
	})

	t.Run("a file interrupts a stream", func(t *testing.T) {
		sid, ev, call := liveCall(t, s, 1)
		a := startStream(t, s.nc, bus.PlayRequest{StreamSid: sid, Stream: mulaw})
		publishStream(t, s.nc, a.AudioSubject, tone, 320)
		ev.playback(t, bus.EventPlaybackStarted, a.PlaybackID, 5*time.Second)
		waitFor(t, "half a second heard", 5*time.Second, func() bool { return len(call.Played()) >= 4000 })
		b := mustPlay(t, s.nc, bus.PlayRequest{StreamSid: sid, Audio: "speech.mp3", Mode: bus.ModeInterrupt})
		in := ev.playback(t, bus.EventPlaybackInterrupted, a.PlaybackID, 5*time.Second)
		if in.Playback.Reason != "interrupt" || in.Playback.Stream != "mulaw" || in.Playback.HeardMs < 400 || in.Playback.HeardMs > 1400 {
			t.Errorf("interrupted %+v, want about 500 ms heard", in.Playback)
		}
		ev.playback(t, bus.EventPlaybackFinished, b.PlaybackID, 10*time.Second)
		if got := call.Played(); !bytes.HasSuffix(got, file) {
			t.Errorf("the file was not heard whole at the end")
		}
	})
}
