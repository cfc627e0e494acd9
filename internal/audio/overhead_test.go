//go:build unix

package audio

import (
	"bytes"
	"io"
	"syscall"
	"testing"
	"time"

	upstream "github.com/hajimehoshi/go-mp3"

	"github.com/callcast/callcast/internal/audio/internal/mp3"
)

// BenchmarkOverhead alternates go-mp3 alone, the project's decoder alone
// (mono mix, as the pipeline runs it) and the whole pipeline on the
// benchmark file, one run of each per iteration, and reports the
// pipeline's extra CPU time (user + system, all threads, so garbage
// collection counts) as a percentage of go-mp3's (overhead-%) and of the
// decoder's, the cost of the stages after it (stages-%), and each one's
// real-time factor. Alternating runs and counting CPU time rather than
// wall time keeps the ratios steady on a busy machine. Run with -cpu 1 for
// one core.
func BenchmarkOverhead(b *testing.B) {
	data := fixture(b, benchFile)
	buf := make([]byte, 4096)
	var frame [FrameSize]byte
	var dec, ours, pipe time.Duration
	var pd mp3.Decoder
	var mono [1152]float32
	for b.Loop() {
		c0 := cpuTime()
		d, err := upstream.NewDecoder(nonSeeker{bytes.NewReader(data)})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := d.Read(buf); err != nil {
				break
			}
		}
		cp := cpuTime()
		pd.Reset()
		eachFrame(data, func(frame []byte) { pd.DecodeFrameMono(frame, mono[:]) })
		c1 := cpuTime()
		ours += c1 - cp
		t, err := NewTranscoder(bytes.NewReader(data), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := io.ReadFull(t, frame[:]); err != nil {
				break
			}
		}
		c2 := cpuTime()
		dec += cp - c0
		pipe += c2 - c1
	}
	b.ReportMetric(100*(float64(pipe)/float64(dec)-1), "overhead-%")
	b.ReportMetric(100*(float64(pipe)/float64(ours)-1), "stages-%")
	b.ReportMetric(3*float64(b.N)/dec.Seconds(), "decode-x-realtime")
	b.ReportMetric(3*float64(b.N)/ours.Seconds(), "ours-x-realtime")
	b.ReportMetric(3*float64(b.N)/pipe.Seconds(), "pipeline-x-realtime")
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
