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

// The assembly window is the Go one (up to the order of the additions),
// at every position of the V ring the synthesis reads it from.
func TestWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var ring [2048]float32
	var w [512]float32
	for i := range ring {
		ring[i] = float32(rng.NormFloat64())
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	for pos := range 16 {
		b := (*[1024]float32)(ring[pos*64:])
		var got, want [32]float32
		window(&got, b, &w)
		windowGeneric(&want, b, &w)
		for j := range 32 {
			if math.Abs(float64(got[j]-want[j])) > 1e-4 {
				t.Fatalf("ring position %d: out[%d] = %g, want %g", pos, j, got[j], want[j])
			}
		}
	}
}

// TestMixHybrid: the mono mix's hybrid filter bank, with the channels'
// block types equal or not, is the average of the channels' own.
func TestMixHybrid(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var d Decoder
	kinds := []struct {
		bt    int
		mixed bool
	}{{0, false}, {1, false}, {2, false}, {3, false}, {2, true}}
	for step := range 200 {
		var want [576]float32
		for ch := range 2 {
			k := kinds[rng.IntN(len(kinds))]
			if step%3 == 0 && ch == 1 {
				k = struct {
					bt    int
					mixed bool
				}{d.si[0][0].blockType, d.si[0][0].mixed}
			}
			g := &d.si[0][ch]
			kind := 0
			if k.bt == 2 {
				kind = 1
				if k.mixed {
					kind = 2
				}
			}
			*g = granule{blockType: k.bt, mixed: k.mixed, bands: &bandLists[0][kind], limit: 18 * (1 + rng.IntN(32))}
			clear(d.xr[ch][:])
			for i := range g.limit {
				d.xr[ch][i] = float32(rng.NormFloat64())
			}
		}
		// Each channel on its own (copies: the mix works in place).
		sep := d
		sep.hybrid(0, 0)
		sep.hybrid(0, 1)
		for i := range want {
			want[i] = 0.5 * (sep.xr[0][i] + sep.xr[1][i])
		}
		d.overlap, d.olBands = sep.overlap, sep.olBands
		d.mixHybrid(0, 2)
		for i := range want {
			if math.Abs(float64(d.xr[0][i]-want[i])) > 1e-4 {
				t.Fatalf("step %d (block types %d/%d): line %d = %g, want %g", step, d.si[0][0].blockType, d.si[0][1].blockType, i, d.xr[0][i], want[i])
			}
		}
	}
}
