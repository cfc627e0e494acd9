package mp3

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The unrolled transforms are the straightforward ones, and those are the
// textbook definitions.
func TestTransforms(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var in [18]float32
		for i := range in {
			in[i] = float32(rng.NormFloat64())
		}
		// IMDCT-36 by its definition, windowed, overlapped.
		for bt := range 4 {
			if bt == 2 {
				continue
			}
			var prev [18]float32
			for i := range prev {
				prev[i] = float32(rng.NormFloat64())
			}
			var want [36]float64
			for i := range 36 {
				for k := range 18 {
					want[i] += float64(in[k]) * math.Cos(math.Pi/72*float64(2*i+1+18)*float64(2*k+1))
				}
				want[i] *= float64(imdctWin[bt][i])
			}
			s, o := in, prev
			imdct36(&s, &o, &imdctWin[bt])
			var out [36]float32
			imdctLong(in[:], &out, &imdctWin[bt])
			for i := range 36 {
				got := float64(out[i])
				var fused float64
				if i < 18 {
					fused = float64(s[i] - prev[i])
				} else {
					fused = float64(o[i-18])
				}
				if math.Abs(got-want[i]) > 1e-4 || math.Abs(fused-want[i]) > 1e-4 {
					t.Fatalf("IMDCT type %d, output %d: %g and %g, want %g", bt, i, got, fused, want[i])
				}
			}
		}
		// DCT-32 of the synthesis matrixing.
		var x, X, Xu [32]float32
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		dct32(&x, &X)
		dct32u(&x, &Xu)
		for m := range 32 {
			var want float64
			for k := range 32 {
				want += float64(x[k]) * math.Cos(math.Pi*float64(m)*float64(2*k+1)/64)
			}
			if math.Abs(float64(X[m])-want) > 1e-4 || math.Abs(float64(Xu[m])-want) > 1e-4 {
				t.Fatalf("DCT-32 output %d: %g and %g, want %g", m, X[m], Xu[m], want)
			}
		}
	}
}

// The assembly window is the Go one (up to the order of the additions).
func TestWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var b [1024]float32
	var w [512]float32
	for i := range b {
		b[i] = float32(rng.NormFloat64())
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	var got, want [32]float32
	window(&got, &b, &w)
	windowGeneric(&want, &b, &w)
	for j := range 32 {
		if math.Abs(float64(got[j]-want[j])) > 1e-4 {
			t.Fatalf("out[%d] = %g, want %g", j, got[j], want[j])
		}
	}
}
