package audio

import (
	"bytes"
	"io"
	"runtime"
	"testing"
	"time"

	upstream "github.com/hajimehoshi/go-mp3"

	"github.com/callcast/callcast/internal/audio/internal/mp3"
)

// Speed, allocation and memory checks. Compare runs with benchstat:
//
//	go test -run '^$' -bench . -count 10 ./internal/audio/ | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
//
// The "x-realtime" metric is seconds of audio processed per second of one
// core.

const benchFile = "music-44k-stereo-cbr128.mp3" // 3.000 s, 44.1 kHz stereo, 128 kb/s

func reportRealtime(b *testing.B, audio time.Duration) {
	b.ReportMetric(audio.Seconds()*float64(b.N)/b.Elapsed().Seconds(), "x-realtime")
}

// BenchmarkDecodeOnly is go-mp3 alone, the baseline the pipeline is
// measured against: the file as s16le stereo at 44.1 kHz, nothing else.
func BenchmarkDecodeOnly(b *testing.B) {
	data := fixture(b, benchFile)
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		d, err := upstream.NewDecoder(nonSeeker{bytes.NewReader(data)})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := d.Read(buf); err != nil {
				break
			}
		}
	}
	reportRealtime(b, 3*time.Second)
}

// BenchmarkDecodeOnlyOurs is the project's decoder alone, frame by frame:
// s16 stereo as go-mp3 delivers it (stereo), or mixed to mono before the
// synthesis filter bank as the pipeline uses it (mono).
func BenchmarkDecodeOnlyOurs(b *testing.B) {
	data := fixture(b, benchFile)
	for _, mono := range []bool{false, true} {
		name := "stereo"
		if mono {
			name = "mono"
		}
		b.Run(name, func(b *testing.B) {
			var d mp3.Decoder
			var pcm [2 * 1152]int16
			var out [1152]float32
			b.ReportAllocs()
			for b.Loop() {
				d.Reset()
				eachFrame(data, func(frame []byte) {
					if mono {
						d.DecodeFrameMono(frame, out[:])
					} else {
						d.DecodeFrame(frame, pcm[:])
					}
				})
			}
			reportRealtime(b, 3*time.Second)
		})
	}
}

// eachFrame calls f with every Layer III frame of an MP3 in memory.
func eachFrame(data []byte, f func(frame []byte)) {
	for i := 0; i+4 <= len(data); {
		h, ok := mp3.ParseHeader(data[i:])
		if !ok || i+h.Size > len(data) {
			i++
			continue
		}
		f(data[i : i+h.Size])
		i += h.Size
	}
}

// BenchmarkTranscode is the whole pipeline on the same file: MP3 to
// 8 kHz μ-law, read a frame (160 bytes) at a time.
func BenchmarkTranscode(b *testing.B) {
	data := fixture(b, benchFile)
	var frame [FrameSize]byte
	b.ReportAllocs()
	for b.Loop() {
		t, err := NewTranscoder(bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := io.ReadFull(t, frame[:]); err != nil {
				break
			}
		}
	}
	reportRealtime(b, 3*time.Second)
}

// BenchmarkStages is everything after the decoder (downmix, resampling,
// μ-law) on 44.1 kHz stereo PCM already in memory.
func BenchmarkStages(b *testing.B) {
	const seconds = 3
	pcm := make([]int16, 2*44100*seconds)
	for i, v := range sineSamples(44100, 440, 12000, 44100*seconds) {
		pcm[2*i], pcm[2*i+1] = v, -v/2
	}
	data := makeWAV(44100, 2, pcm)
	var frame [FrameSize]byte
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		t, err := NewTranscoder(bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := io.ReadFull(t, frame[:]); err != nil {
				break
			}
		}
	}
	reportRealtime(b, seconds*time.Second)
}

// BenchmarkTimeToFirstFrame measures opening an MP3 and producing its first
// 20 ms frame: only the first MP3 frames are decoded.
func BenchmarkTimeToFirstFrame(b *testing.B) {
	data := fixture(b, benchFile)
	var frame [FrameSize]byte
	for b.Loop() {
		t, err := NewTranscoder(bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(t, frame[:]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/first-frame")
}

// nonSeeker hides Seek, so go-mp3 streams instead of scanning the file.
type nonSeeker struct{ r io.Reader }

func (n nonSeeker) Read(p []byte) (int, error) { return n.r.Read(p) }

// TestSteadyStateAllocs: once running, producing a 20 ms frame allocates
// nothing in the stages after the decoder.
func TestSteadyStateAllocs(t *testing.T) {
	pcm := make([]int16, 2*44100*30)
	data := makeWAV(44100, 2, pcm)
	tr, err := NewTranscoder(bytes.NewReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var frame [FrameSize]byte
	io.ReadFull(tr, frame[:]) // warm up
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := io.ReadFull(tr, frame[:]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
}

// TestSteadyStateAllocsMP3 is the same from an MP3: the patched decoder
// reuses its frame state too, so nothing is allocated per frame at all.
func TestSteadyStateAllocsMP3(t *testing.T) {
	tr, err := NewTranscoder(repeatFrames(t, fixture(t, benchFile), 4), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var frame [FrameSize]byte
	io.ReadFull(tr, frame[:]) // warm up
	allocs := testing.AllocsPerRun(300, func() {
		if _, err := io.ReadFull(tr, frame[:]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per frame, want 0", allocs)
	}
}

// TestDecoderMatchesUpstream: where go-mp3 decodes correctly
// (MPEG-1; MPEG-2 without the padded frames it mis-sizes), the project's
// decoder gives the same audio, within the LSB or two of rounding its
// output instead of truncating it. (Not onset-24k-stereo-vbr.mp3: there
// go-mp3 is 74.5 dB from mpg123's decoding, the project's decoder 107 dB.)
func TestDecoderMatchesUpstream(t *testing.T) {
	for _, name := range []string{benchFile, "onset-48k-stereo-cbr.mp3", "onset-32k-mono-cbr.mp3", "onset-16k-mono-cbr.mp3"} {
		data := fixture(t, name)
		up, err := upstream.NewDecoder(nonSeeker{bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(up)
		got := decodeOurs(t, data)
		if len(got) != len(want)/2 {
			t.Errorf("%s: %d samples, go-mp3 %d", name, len(got), len(want)/2)
			continue
		}
		worst := 0
		for i, g := range got {
			w := int(int16(uint16(want[2*i]) | uint16(want[2*i+1])<<8))
			worst = max(worst, abs(int(g)-w))
		}
		if worst > 2 {
			t.Errorf("%s: a sample differs from go-mp3's by %d", name, worst)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestLongFileHeap transcodes a 5-minute stereo MP3 (the benchmark file's
// audio frames repeated, assembled on the fly, never in memory at once) and
// samples the heap as it goes.
func TestLongFileHeap(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("decodes 5 minutes of MP3: run without -race or -short")
	}
	data := fixture(t, benchFile)
	const minutes = 5
	r := repeatFrames(t, data, minutes*60/3)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	tr, err := NewTranscoder(r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		frame [FrameSize]byte
		peak  uint64
		n     int
		ms    runtime.MemStats
	)
	for i := 0; ; i++ {
		k, err := io.ReadFull(tr, frame[:])
		n += k
		if i%50 == 0 { // every second of output
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		if err != nil {
			break
		}
	}
	if n < minutes*60*SampleRate-SampleRate {
		t.Fatalf("%d samples out, want %d minutes", n, minutes)
	}
	t.Logf("%.1f s out; peak heap %.1f MB (%.1f MB before)", float64(n)/SampleRate, float64(peak)/1e6, float64(base.HeapAlloc)/1e6)
	if peak > 16<<20 {
		t.Errorf("peak heap %.1f MB, want < 16 MB", float64(peak)/(1<<20))
	}
}

// repeatFrames returns a reader of an MP3 made of data's audio frames n
// times over (the bit reservoir glitches at each join, which is fine for
// measuring memory), generated as it is read.
func repeatFrames(t testing.TB, data []byte, n int) io.Reader {
	off := 0
	if string(data[:3]) == "ID3" { // ffmpeg's ID3v2 tag naming the encoder
		off = 10 + (int(data[6])<<21 | int(data[7])<<14 | int(data[8])<<7 | int(data[9]))
	}
	first, ok := parseHeader(data[off:])
	if !ok {
		t.Fatal("no frame header after the ID3 tag of " + benchFile)
	}
	// Without the Info frame: its frame count would end the stream after
	// the first copy.
	audio := data[off+first.size:]
	var readers []io.Reader
	for range n {
		readers = append(readers, bytes.NewReader(audio))
	}
	return io.MultiReader(readers...)
}

// TestPerStreamMemory opens 100 transcoders on the benchmark MP3 and reads
// a frame from each: the heap each playing stream holds.
func TestPerStreamMemory(t *testing.T) {
	data := fixture(t, benchFile)
	const n = 100
	ts := make([]*Transcoder, n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var frame [FrameSize]byte
	for i := range ts {
		tr, err := NewTranscoder(bytes.NewReader(data), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(tr, frame[:]); err != nil {
			t.Fatal(err)
		}
		ts[i] = tr
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f KB of heap per playing stream", per/1024)
	if per > 256<<10 {
		t.Errorf("%.0f KB per stream, want under 256 KB", per/1024)
	}
	runtime.KeepAlive(ts)
}

// decodeOurs decodes a whole MP3 with the project's decoder alone, as
// interleaved stereo samples (mono doubled, as go-mp3 does).
func decodeOurs(t testing.TB, data []byte) []int16 {
	t.Helper()
	var d mp3.Decoder
	var pcm [2 * 1152]int16
	var s []int16
	eachFrame(data, func(frame []byte) {
		h, err := d.DecodeFrame(frame, pcm[:])
		if err != nil {
			t.Fatal(err)
		}
		for k := range h.Samples {
			if h.Channels == 1 {
				s = append(s, pcm[k], pcm[k])
			} else {
				s = append(s, pcm[2*k], pcm[2*k+1])
			}
		}
	})
	return s
}
