package edge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
)

// testPCM is d of a deterministic signal, 16-bit PCM at rate with ch channels.
func testPCM(rate, ch int, d time.Duration) []byte {
	n := int(int64(rate) * int64(d) / int64(time.Second))
	out := make([]byte, 0, n*2*ch)
	for i := range n {
		t := float64(i) / float64(rate)
		v := 7000*math.Sin(2*math.Pi*(200+300*t)*t) + 3000*math.Sin(2*math.Pi*1900*t)
		for c := range ch {
			out = binary.LittleEndian.AppendUint16(out, uint16(int16(v*float64(1+c)/2)))
		}
	}
	return out
}

// oneShot is the file path's μ-law for a whole file.
func oneShot(t testing.TB, file []byte) []byte {
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

// runSource starts s's decoder, if it has one, and returns a function
// that waits for it.
func runSource(s *streamSource) (wait func()) {
	if !s.decodes() {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Go(s.run)
	return wg.Wait
}

// finished waits until s has decoded everything or failed.
func finished(t testing.TB, s *streamSource) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		done := s.decoded || s.fail != nil
		s.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the source did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

func outBytes(s *streamSource) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.out.peek(s.out.len()))
}

// TestChunkedStreamMatchesTheFile: a stream cut into chunks of any size
// decodes to exactly what the file path makes of the same bytes at once.
func TestChunkedStreamMatchesTheFile(t *testing.T) {
	calltest.CheckGoroutines(t)
	mp3, err := os.ReadFile("../e2e/testdata/audio/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}
	wav := calltestWAV(44100, 2, testPCM(44100, 2, 700*time.Millisecond))
	tests := []struct {
		name   string
		format bus.StreamFormat
		data   []byte
		ref    []byte
	}{
		{"mp3", bus.StreamFormat{Format: bus.FormatMP3}, mp3, oneShot(t, mp3)},
		{"wav", bus.StreamFormat{Format: bus.FormatWAV}, wav, oneShot(t, wav)},
	}
	for _, r := range []struct{ rate, ch int }{{8000, 1}, {11025, 2}, {16000, 1}, {22050, 1}, {24000, 1}, {32000, 2}, {44100, 1}, {48000, 2}} {
		p := testPCM(r.rate, r.ch, 700*time.Millisecond)
		f := bus.StreamFormat{Format: bus.FormatPCMS16LE, SampleRate: r.rate, Channels: r.ch}
		tests = append(tests, struct {
			name   string
			format bus.StreamFormat
			data   []byte
			ref    []byte
		}{f.String(), f, p, oneShot(t, calltestWAV(r.rate, r.ch, p))})
	}
	for _, tt := range tests {
		for _, max := range []int{1, 7, 1000, 1 << 20} {
			rng := rand.New(rand.NewPCG(uint64(max), 1))
			s := newStreamSource(tt.format, 0, func() {})
			wait := runSource(s)
			seq := uint64(0)
			for off := 0; off < len(tt.data); {
				n := min(1+rng.IntN(max), len(tt.data)-off)
				seq++
				s.take(seq, false, tt.data[off:off+n])
				off += n
			}
			s.take(seq+1, true, nil)
			finished(t, s)
			got := outBytes(s)
			s.close()
			wait()
			if !bytes.Equal(got, tt.ref) {
				t.Errorf("%s in chunks of up to %d bytes: %d bytes of μ-law, the file path makes %d, and other samples", tt.name, max, len(got), len(tt.ref))
			}
		}
	}
}

// calltestWAV is a WAV file of 16-bit PCM.
func calltestWAV(rate, ch int, pcm []byte) []byte {
	return append(audio.AppendWAVHeader(nil, rate, ch, len(pcm)), pcm...)
}

// TestStreamSourceOrder: chunks are put back in order, duplicates and late
// ones dropped, a missing one played as silence of the chunk before's length.
func TestStreamSourceOrder(t *testing.T) {
	calltest.CheckGoroutines(t)
	chunk := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 10) }
	type msg struct {
		seq uint64
		end bool
	}
	const wait = ^uint64(0)
	tests := []struct {
		name  string
		msgs  []msg
		want  []int // chunks heard, 0 for silence
		stats chunkStats
	}{
		{"in order", []msg{{1, false}, {2, false}, {3, true}}, []int{1, 2, 3}, chunkStats{}},
		{"end without a number", []msg{{1, false}, {2, false}, {0, true}}, []int{1, 2}, chunkStats{}},
		{"swapped", []msg{{2, false}, {1, false}, {3, true}}, []int{1, 2, 3}, chunkStats{outOfOrder: 1}},
		{"end first", []msg{{3, true}, {2, false}, {1, false}}, []int{1, 2, 3}, chunkStats{outOfOrder: 2}},
		{"twice", []msg{{1, false}, {1, false}, {2, true}}, []int{1, 2}, chunkStats{late: 1}},
		{"missing", []msg{{1, false}, {3, false}, {4, true}}, []int{1, 0, 3, 4}, chunkStats{outOfOrder: 2, missing: 1}},
		{"missing, late", []msg{{1, false}, {3, false}, {4, true}, {wait, false}, {2, false}}, []int{1, 0, 3, 4}, chunkStats{outOfOrder: 2, missing: 1, late: 1}},
		{"after the end", []msg{{1, true}, {2, false}}, []int{1}, chunkStats{late: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStreamSource(bus.StreamFormat{Format: bus.FormatMulaw}, 0, func() {})
			defer s.close()
			for _, m := range tt.msgs {
				if m.seq == wait {
					finished(t, s) // the gap given up
					continue
				}
				var data []byte
				if m.seq > 0 && !(m.end && m.seq == 0) {
					data = chunk(int(m.seq))
				}
				s.take(m.seq, m.end, data)
			}
			finished(t, s)
			var want []byte
			for _, c := range tt.want {
				if c == 0 {
					want = append(want, bytes.Repeat([]byte{0xFF}, 10)...)
				} else {
					want = append(want, chunk(c)...)
				}
			}
			if got := outBytes(s); !bytes.Equal(got, want) {
				t.Errorf("out %v, want %v", got, want)
			}
			s.mu.Lock()
			st := s.stats
			s.mu.Unlock()
			if st != tt.stats {
				t.Errorf("stats %+v, want %+v", st, tt.stats)
			}
		})
	}
}

// TestStreamSourceLimits: a source fails too_large past what it holds, and
// stalled when its producer goes quiet.
func TestStreamSourceLimits(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newStreamSource(bus.StreamFormat{Format: bus.FormatMulaw}, 0, func() {})
	s.take(1, false, make([]byte, MaxStreamAhead))
	s.take(2, false, make([]byte, 1))
	if s.fail == nil || s.fail.Code != bus.CodeTooLarge {
		t.Errorf("fail %+v, want too_large", s.fail)
	}
	s.close()

	// A decoding source holds MaxStreamAhead decoded and MaxStreamRaw more.
	s = newStreamSource(bus.StreamFormat{Format: bus.FormatPCMS16LE, SampleRate: 8000, Channels: 1}, 0, func() {})
	wait := runSource(s)
	chunk := make([]byte, 1<<20)
	for i := range uint64(16) { // 16 MiB: 17 min of audio
		s.take(i+1, false, chunk)
	}
	for i := uint64(16); i < 100 && s.failed() == nil; i++ {
		s.take(i+1, false, chunk)
	}
	if f := s.failed(); f == nil || f.Code != bus.CodeTooLarge {
		t.Errorf("fail %+v, want too_large", f)
	}
	s.mu.Lock()
	held := s.out.len() + s.raw.len()
	s.mu.Unlock()
	if held < MaxStreamAhead || held > MaxStreamAhead+MaxStreamRaw {
		t.Errorf("held %d bytes, want at least %d and at most %d", held, MaxStreamAhead, MaxStreamAhead+MaxStreamRaw)
	}
	s.close()
	wait()

	s = newStreamSource(bus.StreamFormat{Format: bus.FormatMulaw}, 50*time.Millisecond, func() {})
	defer s.close()
	s.take(1, false, []byte{1})
	time.Sleep(20 * time.Millisecond)
	s.take(2, false, []byte{2}) // resets the timeout
	if s.failed() != nil {
		t.Fatal("stalled early")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.failed() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if f := s.failed(); f == nil || f.Code != bus.CodeStalled {
		t.Errorf("fail %+v, want stalled", f)
	}
}

func (s *streamSource) failed() *bus.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail
}

func TestWAVLayout(t *testing.T) {
	pcm := calltestWAV(16000, 2, nil)
	mulaw := calltest.MulawWAV(10 * time.Millisecond)
	tests := []struct {
		name    string
		head    []byte
		silence byte
		align   int
		perSec  int
		ok      bool
	}{
		{"pcm", pcm, 0, 4, 64000, true},
		{"mulaw", mulaw, 0xFF, 1, 8000, true},
		{"cut in the fmt chunk", pcm[:30], 0, 0, 0, false},
		{"not yet at the data", pcm[:36], 0, 0, 0, false},
		{"not wav", []byte("ID3\x04\x00\x00\x00\x00\x00\x00\x00\x00"), 0, 0, 0, false},
	}
	for _, tt := range tests {
		silence, align, perSec, ok := wavLayout(tt.head)
		if silence != tt.silence || align != tt.align || perSec != tt.perSec || ok != tt.ok {
			t.Errorf("%s: %v %v %v %v, want %v %v %v %v", tt.name, silence, align, perSec, ok, tt.silence, tt.align, tt.perSec, tt.ok)
		}
	}
}

func TestByteQueue(t *testing.T) {
	var q byteQueue
	var want []byte
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 5000)
	for i := range 2000 {
		p := bytes.Repeat([]byte{byte(i)}, rng.IntN(3000))
		q.write(p)
		want = append(want, p...)
		n := q.read(buf[:rng.IntN(len(buf))])
		if !bytes.Equal(buf[:n], want[:n]) {
			t.Fatalf("read %d bytes that were not written in order", n)
		}
		want = want[n:]
		if q.len() != len(want) {
			t.Fatalf("len %d, want %d", q.len(), len(want))
		}
	}
	if cap(q.b) > 16*3000 {
		t.Errorf("queue of %d bytes holds a buffer of %d", len(want), cap(q.b))
	}
}

func TestAppendPlaybackMark(t *testing.T) {
	for _, last := range []bool{false, true} {
		got := appendPlaybackMark(nil, "MZ1", "pb_1-x", 12345, last)
		want := []byte(`{"event":"mark","streamSid":"MZ1","mark":{"name":"` + bus.PlaybackMark("pb_1-x", 12345, last) + `"}}`)
		if !bytes.Equal(got, want) {
			t.Errorf("%s, want %s", got, want)
		}
	}
}

// TestLongStreamHoldsMemoryFlat streams 30 minutes of audio through a
// source as fast as it decodes, taking its μ-law as it comes: the heap
// after 30 minutes is what it was after one.
func TestLongStreamHoldsMemoryFlat(t *testing.T) {
	calltest.CheckGoroutines(t)
	const minutes = 30
	s := newStreamSource(bus.StreamFormat{Format: bus.FormatPCMS16LE, SampleRate: 8000, Channels: 1}, 0, func() {})
	wait := runSource(s)
	defer wait()
	defer s.close()
	chunk := testPCM(8000, 1, 100*time.Millisecond) // 1600 bytes
	frame := make([]byte, 1600)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var afterOne uint64
	seq := uint64(0)
	for minute := range minutes {
		for range 600 { // a minute of 100 ms chunks
			seq++
			s.take(seq, false, chunk)
			// The pacer takes what is decoded, as fast as it comes.
			for {
				s.mu.Lock()
				n := s.out.read(frame)
				raw := s.raw.len()
				s.mu.Unlock()
				if n == 0 && raw == 0 {
					break
				}
				if n == 0 {
					runtime.Gosched()
				}
			}
		}
		if minute == 0 {
			afterOne = heap()
		}
	}
	end := heap()
	t.Logf("heap after 1 minute %d KiB, after %d minutes %d KiB", afterOne>>10, minutes, end>>10)
	if end > afterOne+256<<10 {
		t.Errorf("heap grew from %d to %d bytes over %d minutes of audio", afterOne, end, minutes)
	}
}

// TestRefusedStreamLeavesNothing: a streamed playback refused with
// queue_full is not subscribed to its audio subject; a queued one is.
func TestRefusedStreamLeavesNothing(t *testing.T) {
	addr, nc := serve(t, Config{MaxQueuedPlaybacks: 1})
	p := dialPeer(t, addr)
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	p.start(nil)
	started.wait(t, 1)
	f := bus.StreamFormat{Format: bus.FormatMulaw}
	for i, want := range []string{"", "", bus.CodeQueueFull} {
		r := enqueueOn(t, nc, p.sid, bus.Enqueue{PlaybackID: "s" + itoa(i), Stream: &f, Mode: bus.ModeQueue})
		if code := ""; r.Error != nil {
			code = r.Error.Code
			if code != want {
				t.Fatalf("stream %d: %+v, want %q", i, r.Error, want)
			}
		} else if want != "" || r.AudioSubject != bus.PlaybackAudio("s"+itoa(i)) {
			t.Fatalf("stream %d: %+v, want %q", i, r, want)
		}
	}
	// NATS says at once when nobody is subscribed; a subscriber that does
	// not answer lets the request time out.
	if _, err := nc.Request(bus.PlaybackAudio("s2"), nil, time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("refused stream's audio subject: %v, want no responders", err)
	}
	if _, err := nc.Request(bus.PlaybackAudio("s1"), nil, 200*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Errorf("queued stream's audio subject: %v, want a subscriber", err)
	}
}

// TestEndWithoutNumber: an end without Callcast-Seq follows every chunk
// published before it, its payload included.
func TestEndWithoutNumber(t *testing.T) {
	s := newStreamSource(bus.StreamFormat{Format: bus.FormatMulaw}, 0, func() {})
	defer s.close()
	s.take(2, false, []byte{2})
	s.take(1, false, []byte{1})
	s.onMsg(&nats.Msg{Data: []byte{3}, Header: nats.Header{bus.HeaderEnd: {"true"}}})
	s.take(4, false, []byte{4}) // after the end: dropped
	finished(t, s)
	if got := outBytes(s); !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Errorf("out %v, want [1 2 3]", got)
	}
}

// TestStreamBufferBound: the edge's streamed playbacks share one bound on
// what they hold ahead of playout. The one whose audio would pass it fails
// with too_large; the others play on; what ends is no longer counted.
func TestStreamBufferBound(t *testing.T) {
	calltest.CheckGoroutines(t)
	var held atomic.Int64
	const limit = 64 << 10
	mulaw := bus.StreamFormat{Format: bus.FormatMulaw}
	pcm := bus.StreamFormat{Format: bus.FormatPCMS16LE, SampleRate: 24000, Channels: 1}

	quiet := newStreamSource(mulaw, 0, func() {})
	quiet.account(&held, limit)
	quiet.take(1, false, make([]byte, 8000)) // 1 s
	decoding := newStreamSource(pcm, 0, func() {})
	decoding.account(&held, limit)
	decoding.take(1, false, make([]byte, 9600)) // 200 ms, undecoded: no decoder runs
	if got := held.Load(); got != 8000+9600 {
		t.Fatalf("held %d bytes, want %d", got, 8000+9600)
	}

	flood := newStreamSource(mulaw, 0, func() {})
	flood.account(&held, limit)
	seq := uint64(0)
	for flood.failed() == nil && seq < 100 {
		seq++
		flood.take(seq, false, make([]byte, 4000))
	}
	if f := flood.failed(); f == nil || f.Code != bus.CodeTooLarge || !strings.Contains(f.Message, "STREAM_BUFFER_BYTES") {
		t.Fatalf("flood: fail %+v, want too_large naming STREAM_BUFFER_BYTES", f)
	}
	if got := held.Load(); got > limit {
		t.Errorf("held %d bytes, past the bound %d", got, limit)
	}
	if quiet.failed() != nil || decoding.failed() != nil {
		t.Error("the flood failed the others")
	}

	// The pacer takes the quiet one's audio; the flood ends.
	quiet.mu.Lock()
	quiet.out.discard(8000)
	quiet.mu.Unlock()
	flood.close()
	if got := held.Load(); got != 9600 {
		t.Errorf("held %d bytes after playout and the flood's end, want 9600", got)
	}
	quiet.take(2, false, make([]byte, 40000)) // room again
	if quiet.failed() != nil {
		t.Errorf("quiet: %+v", quiet.failed())
	}
	quiet.close()
	decoding.close()
	if got := held.Load(); got != 0 {
		t.Errorf("held %d bytes once every source ended, want 0", got)
	}
}
