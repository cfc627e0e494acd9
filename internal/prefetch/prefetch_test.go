package prefetch

import (
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestRange: any range may be asked for, aligned or not, a line or many,
// even one at nil, and the memory reads the same afterwards.
func TestRange(t *testing.T) {
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for _, off := range []int{0, 1, 63, 64, 65, 1000} {
		for _, size := range []uintptr{0, 1, 63, 64, 65, 128, 1000, 3000} {
			Range(unsafe.Pointer(&buf[off]), size)
		}
	}
	Range(nil, 0)
	Range(nil, LineSize) // a hint: never a fault
	for i := range buf {
		if buf[i] != byte(i*7) {
			t.Fatalf("byte %d changed", i)
		}
	}
}

// BenchmarkColdObjects is what Range is for: objects of 384 bytes (six
// lines) visited in an order the processor cannot guess, among more than
// its caches hold, each after some work that does not need them (decoding
// the message an object is for, say), and read a line at a time, each
// line only once the one before it is in (as a filter's state, then its
// levels, then their history, with a frame's arithmetic between). With
// prefetch=on an object's lines are asked for before that work, all at
// once, and come in while it runs.
func BenchmarkColdObjects(b *testing.B) {
	const words = 6 * LineSize / 8
	type object [words]uint64
	const n = 1 << 16 // 24 MiB
	objs := make([]object, n)
	for i := range objs {
		for w := 0; w < words; w += LineSize / 8 {
			objs[i][w] = uint64(w + LineSize/8) // where the next line is
		}
	}
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	var work [128]byte
	for _, on := range []bool{false, true} {
		name := "prefetch=off"
		if on {
			name = "prefetch=on"
		}
		b.Run(name, func(b *testing.B) {
			var sum uint64
			k := 0
			for b.Loop() {
				o := &objs[order[k]]
				if on {
					Range(unsafe.Pointer(o), unsafe.Sizeof(*o))
				}
				h := uint64(14695981039346656037) // FNV-1a over the work
				for _, c := range work {
					h = (h ^ uint64(c)) * 1099511628211
				}
				for w := uint64(0); w < words; w = o[w] {
					sum += w
				}
				sum += h
				if k++; k == n {
					k = 0
				}
			}
			if sum == 1 {
				b.Log(sum)
			}
		})
	}
}
