package vad

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// budgetNs is what one 20 ms frame may cost: 3 % of one core for 1000
// calls is 30 ms of CPU a second for 50 000 frames a second.
const budgetNs = 600

// BenchmarkProcess measures one 20 ms frame of speech in noise. Besides
// ns/op it reports the CPU time of the benchmark's thread per frame
// (cpu-ns/op, where the OS tells it: time other processes take from a
// busy machine does not count) and that as a share of budgetNs.
func BenchmarkProcess(b *testing.B) {
	audio := burst(5, 4000, 1000, 3000, -50, -20)
	d := New(Config{})
	ts := int64(0)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPUNs()
	for b.Loop() {
		i := int(ts*8) % len(audio)
		for _, ok := d.Process(audio[i:i+FrameSize], ts); ok; _, ok = d.Next() {
		}
		ts += FrameMs
	}
	if cpu0 >= 0 {
		ns := float64(threadCPUNs()-cpu0) / float64(b.N)
		b.ReportMetric(ns, "cpu-ns/op")
		b.ReportMetric(ns/budgetNs, "cpu-frac-of-budget")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/budgetNs, "frac-of-budget")
}

// BenchmarkDecodeEnergy is a floor to compare with: decoding a frame and
// summing its squares, the least any detector does.
func BenchmarkDecodeEnergy(b *testing.B) {
	audio := burst(5, 4000, 1000, 3000, -50, -20)
	var sink int64
	ts := 0
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPUNs()
	for b.Loop() {
		i := ts * 8 % len(audio)
		var e int64
		for _, c := range audio[i : i+FrameSize] {
			v := int64(linear[c])
			e += v * v
		}
		sink += e
		ts += FrameMs
	}
	if cpu0 >= 0 {
		b.ReportMetric(float64(threadCPUNs()-cpu0)/float64(b.N), "cpu-ns/op")
	}
	_ = sink
}

// BenchmarkProcessCalls measures a frame as an edge sees it under load:
// each frame goes to the next of many calls' detectors in turn, so that a
// detector's state has left the core's caches by the time its next frame
// comes, as it has with hundreds of calls between one caller frame and the
// next.
func BenchmarkProcessCalls(b *testing.B) {
	const calls = 20000 // 40 MB of detectors: more than the caches hold
	audio := burst(5, 4000, 1000, 3000, -50, -20)
	ds := make([]*Detector, calls)
	for i := range ds {
		ds[i] = New(Config{})
	}
	// In an order the prefetcher cannot guess.
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	ts, k := int64(0), 0
	for b.Loop() {
		i := int(ts*8) % len(audio)
		d := ds[k]
		for _, ok := d.Process(audio[i:i+FrameSize], ts); ok; _, ok = d.Next() {
		}
		if k++; k == calls {
			k = 0
			ts += FrameMs
		}
	}
}
