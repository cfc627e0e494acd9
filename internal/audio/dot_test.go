package audio

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestKernels checks dot and fir (the assembly kernels where the machine
// has them) against float64 sums, for every length around the vector
// widths.
func TestKernels(t *testing.T) {
	t.Logf("AVX2 kernels: %v", useAVX2)
	rng := rand.New(rand.NewPCG(1, 2))
	vec := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	check := func(what string, got float32, c, x []float32) {
		t.Helper()
		var want, mag float64
		for i := range c {
			want += float64(c[i]) * float64(x[i])
			mag += math.Abs(float64(c[i]) * float64(x[i]))
		}
		if d := math.Abs(float64(got) - want); d > 1e-6*mag+1e-30 {
			t.Fatalf("%s: %g, want %g (Σ|cx| %g)", what, got, want, mag)
		}
	}
	for n := 0; n <= 80; n++ {
		c, x := vec(n), vec(n+3)
		check("dot", dot(c, x), c, x)
		check("dotGo", dotGo(c, x), c, x)
	}
	for taps := 1; taps <= 40; taps += 3 {
		for n := 0; n <= 70; n++ {
			c, x := vec(taps), vec(n+taps-1)
			dst := make([]float32, n)
			fir(dst, x, c)
			for i := range dst {
				check("fir", dst[i], c, x[i:])
			}
		}
	}
}

func BenchmarkDot256(b *testing.B) {
	c, x := make([]float32, 256), make([]float32, 256)
	for i := range c {
		c[i], x[i] = float32(i), float32(256-i)
	}
	var s float32
	for b.Loop() {
		s += dot(c, x)
	}
	_ = s
}

// TestFirExact: fir gives the same bits whether an output falls in a
// vector block or in the tail computed in Go, so chunking cannot change
// the output.
func TestFirExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := make([]float32, 24)
	x := make([]float32, 100+len(c))
	for i := range c {
		c[i] = float32(rng.NormFloat64())
	}
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 10000)
	}
	all := make([]float32, 100)
	fir(all, x, c)
	for i := range all {
		one := make([]float32, 1)
		fir(one, x[i:], c)
		if one[0] != all[i] {
			t.Fatalf("output %d: %v alone, %v in a block", i, one[0], all[i])
		}
	}
}

// TestKernelsAlignment runs the kernels on slices that start at every
// float offset within a vector (the assembly loads unaligned) and checks
// them against the Go versions: dot within rounding, fir bit for bit.
func TestKernelsAlignment(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	back := make([]float32, 512)
	for i := range back {
		back[i] = float32(rng.NormFloat64())
	}
	for off := range 8 {
		for _, n := range []int{7, 8, 9, 31, 32, 33, 63, 65, 127} {
			c, x := back[off:off+n], back[off+200:off+200+n]
			got, want := dot(c, x), dotGo(c, x)
			var mag float64
			for i := range c {
				mag += math.Abs(float64(c[i]) * float64(x[i]))
			}
			if d := math.Abs(float64(got - want)); d > 1e-6*mag {
				t.Fatalf("dot at offset %d, length %d: %g, Go %g", off, n, got, want)
			}
			for _, taps := range []int{1, 5, 24} {
				c := back[300+off : 300+off+taps]
				x := back[off+1 : off+n+taps]
				dst := make([]float32, n+8)[off%8 : off%8+n]
				ref := make([]float32, n)
				fir(dst, x, c)
				firGo(ref, x, c)
				for i := range ref {
					if dst[i] != ref[i] {
						t.Fatalf("fir at offset %d, %d outputs, %d taps: output %d = %v, Go %v", off, n, taps, i, dst[i], ref[i])
					}
				}
			}
		}
	}
}

// TestFirAdd checks firAdd (the split tables' kernel) against float64
// sums for every block size it has, at every float offset, and that an
// output's bits do not depend on where in a run it falls.
func TestFirAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	back := make([]float32, 1024)
	for i := range back {
		back[i] = float32(rng.NormFloat64() * 10000)
	}
	for _, taps := range []int{1, 5, 24, 94, 184} {
		for n := 8; n <= 136; n += 8 {
			for off := range 8 {
				c := back[off : off+taps]
				x := back[300+off : 300+off+n+taps-1]
				dst := make([]float32, n+8)[off : off+n]
				for i := range dst {
					dst[i] = float32(i)
				}
				firAdd(dst, x, c)
				for i, got := range dst {
					want, mag := float64(i), float64(i)
					for k, v := range c {
						want += float64(v) * float64(x[i+k])
						mag += math.Abs(float64(v) * float64(x[i+k]))
					}
					if d := math.Abs(float64(got) - want); d > 1e-6*mag {
						t.Fatalf("%d taps, %d outputs, offset %d: output %d = %g, want %g", taps, n, off, i, got, want)
					}
				}
				// The same outputs computed from a later start: the same bits.
				if n >= 16 {
					part := make([]float32, n-8)
					for i := range part {
						part[i] = float32(i + 8)
					}
					firAdd(part, x[8:], c)
					for i := range part {
						if part[i] != dst[i+8] {
							t.Fatalf("%d taps: output %d is %v in a run of %d, %v in one of %d", taps, i+8, dst[i+8], n, part[i], n-8)
						}
					}
				}
			}
		}
	}
}

// TestFirAdd2: two filters run together give the bits each gives alone.
func TestFirAdd2(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	back := make([]float32, 2048)
	for i := range back {
		back[i] = float32(rng.NormFloat64() * 10000)
	}
	for _, taps := range []int{1, 5, 93, 94} {
		for n := 8; n <= 136; n += 8 {
			for off := range 3 {
				c, c2 := back[off:off+taps], back[100+off:100+off+taps]
				x, x2 := back[300+off:300+off+n+taps-1], back[700+2*off:700+2*off+n+taps-1]
				want, want2 := make([]float32, n), make([]float32, n)
				got, got2 := make([]float32, n), make([]float32, n)
				for i := range n {
					want[i], want2[i] = float32(i), float32(-i)
					got[i], got2[i] = float32(i), float32(-i)
				}
				firAdd(want, x, c)
				firAdd(want2, x2, c2)
				firAdd2(got, x, c, got2, x2, c2)
				if !slices.Equal(got, want) || !slices.Equal(got2, want2) {
					t.Fatalf("%d taps, %d outputs: firAdd2 differs from firAdd", taps, n)
				}
			}
		}
	}
}
