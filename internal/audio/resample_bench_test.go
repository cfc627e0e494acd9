//go:build unix

package audio

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkResample is the resampler alone: one second of audio per
// operation at each common source rate, read a 20 ms frame at a time.
// ns/op is wall time; cpu-ns/op is the process's CPU time per operation
// (user + system, garbage collection included), the figure to compare on
// a shared machine:
//
//	go test -run '^$' -bench 'Resample$' -cpu 1 -count 10 ./internal/audio/ | tee new.txt
//	go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
func BenchmarkResample(b *testing.B) {
	for _, rate := range []int{11025, 16000, 22050, 24000, 44100, 48000} {
		b.Run(fmt.Sprint(rate), func(b *testing.B) {
			// A tone plus broadband noise, at the level of speech.
			x := make([]float32, rate)
			seed := uint32(1)
			for i, v := range sineSamples(rate, 440, 8000, rate) {
				seed = seed*1664525 + 1013904223
				x[i] = float32(v) + float32(int32(seed)>>20)
			}
			out := make([]float32, FrameSize)
			src := &sliceReader{}
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				src.s = x
				r := newResampler(src, rate)
				for {
					if _, err := r.read(out); err != nil {
						break
					}
				}
			}
			cpu := cpuTime() - c0
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(b.N)*time.Second.Seconds()/cpu.Seconds(), "x-realtime-cpu")
		})
	}
}
