package mp3

import "math"

// The hybrid filter bank's second half: alias reduction and the IMDCT
// with windowing and overlap-add, which turn a granule's 576 spectral
// lines into 18 samples of each of 32 subbands (in place in d.xr).

var aliasCS, aliasCA [8]float32

// imdctWin[blockType] are the long windows (type 2 holds the short one
// in its first 12).
var imdctWin [4][36]float32

// dct4Pre, dct2Odd: see dct4of18.
var (
	dct4Pre [18]float32
	dct2Odd [9]float32
	cos9    [9][9]float32 // cos9[m][k] = cos(π·m·(2k+1)/18)
	imdct12 [6][12]float32
)

func init() {
	ci := [8]float64{-0.6, -0.535, -0.33, -0.185, -0.095, -0.041, -0.0142, -0.0037}
	for i, c := range ci {
		sq := math.Sqrt(1 + c*c)
		aliasCS[i] = float32(1 / sq)
		aliasCA[i] = float32(c / sq)
	}
	for i := range 36 {
		imdctWin[0][i] = float32(math.Sin(math.Pi / 36 * (float64(i) + 0.5)))
	}
	for i := range 18 {
		imdctWin[1][i] = imdctWin[0][i]
		imdctWin[3][i+18] = imdctWin[0][i+18]
	}
	for i := 18; i < 24; i++ {
		imdctWin[1][i] = 1
	}
	for i := 24; i < 30; i++ {
		imdctWin[1][i] = float32(math.Sin(math.Pi / 12 * (float64(i-18) + 0.5)))
	}
	for i := 6; i < 12; i++ {
		imdctWin[3][i] = float32(math.Sin(math.Pi / 12 * (float64(i-6) + 0.5)))
	}
	for i := 12; i < 18; i++ {
		imdctWin[3][i] = 1
	}
	for i := range 12 {
		imdctWin[2][i] = float32(math.Sin(math.Pi / 12 * (float64(i) + 0.5)))
	}
	for k := range 18 {
		dct4Pre[k] = float32(2 * math.Cos(math.Pi/36*(float64(k)+0.5)))
	}
	for k := range 9 {
		dct2Odd[k] = float32(1 / (2 * math.Cos(math.Pi*float64(2*k+1)/36)))
		for m := range 9 {
			cos9[m][k] = float32(math.Cos(math.Pi * float64(m) * float64(2*k+1) / 18))
		}
	}
	for m := range 6 {
		for p := range 12 {
			imdct12[m][p] = float32(math.Cos(math.Pi / 24 * float64(2*p+1+6) * float64(2*m+1)))
		}
	}
}

// hybrid turns channel ch of granule gr from spectral lines into subband
// samples, frequency inversion included.
func (d *Decoder) hybrid(gr, ch int) {
	hybridWith(&d.si[gr][ch], &d.xr[ch], &d.overlap[ch], &d.olBands[ch])
}

// hybridWith is hybrid for the lines xr of granule g, overlapping with ol,
// of which the first *olBands subbands may be non-zero.
func hybridWith(g *granule, xr *[576]float32, ol *[32][18]float32, olBands *int) {
	limit := g.limit
	if g.blockType == 2 {
		limit = reorder(g, xr, limit)
	}
	// Alias reduction between long-block subbands.
	if g.blockType != 2 || g.mixed {
		sbs := 32
		if g.blockType == 2 {
			sbs = 2
		}
		for sb := 1; sb < sbs && 18*sb-8 < limit; sb++ {
			lo := xr[18*sb-8 : 18*sb : 18*sb]
			hi := xr[18*sb : 18*sb+8 : 18*sb+8]
			for i := range 8 {
				a, b := lo[7-i], hi[i]
				lo[7-i] = a*aliasCS[i] - b*aliasCA[i]
				hi[i] = b*aliasCS[i] + a*aliasCA[i]
			}
			limit = max(limit, min(18*sb+8, 576))
		}
	}
	bands := (limit + 17) / 18
	var out [36]float32
	total := max(bands, *olBands)
	for sb := range total {
		s := xr[18*sb : 18*sb+18 : 18*sb+18]
		o := &ol[sb]
		if sb >= bands {
			copy(s, o[:])
			*o = [18]float32{}
		} else {
			bt := g.blockType
			if g.mixed && sb < 2 {
				bt = 0
			}
			if bt == 2 {
				imdctShort(s, &out)
				for i := range 18 {
					s[i] = out[i] + o[i]
					o[i] = out[18+i]
				}
			} else {
				imdct36((*[18]float32)(s), o, &imdctWin[bt])
			}
		}
		if sb&1 == 1 {
			for i := 1; i < 18; i += 2 {
				s[i] = -s[i]
			}
		}
	}
	*olBands = bands
}

// reorder puts the short-block lines (coded band by band, window after
// window) in the order the IMDCT reads them: line f of window w at 3f+w.
// Lines from limit up are zero; it returns the new such limit (the end of
// the band that held the last line).
func reorder(g *granule, xr *[576]float32, limit int) int {
	var tmp [576]float32
	b := g.bands
	pos := 0
	for i := 0; i < b.n && pos < limit; i++ {
		w := int(b.width[i])
		if b.window[i] < 0 {
			pos += w
			continue
		}
		// Three windows of band b.sfb[i] start here.
		start := pos / 3 // the band's first line within a window
		for win := range 3 {
			for j := range w {
				tmp[3*(start+j)+win] = xr[pos+win*w+j]
			}
		}
		pos += 3 * w
		i += 2
	}
	first := 0
	if b.nLong > 0 {
		first = 36
	}
	if pos > first {
		copy(xr[first:pos], tmp[first:pos])
	}
	return max(pos, limit)
}

//go:generate go run mkunrolled.go

// imdctLong computes the 36-point IMDCT of in's 18 lines, windowed: an
// 18-point DCT-IV and its symmetries.
func imdctLong(in []float32, out *[36]float32, win *[36]float32) {
	var y [18]float32
	dct4of18(in, &y)
	for i := range 9 {
		out[i] = y[i+9] * win[i]
	}
	for i := 9; i < 27; i++ {
		out[i] = -y[26-i] * win[i]
	}
	for i := 27; i < 36; i++ {
		out[i] = -y[i-27] * win[i]
	}
}

// dct4of18 is y[n] = Σ x[k]·cos(π/18·(n+½)(k+½)): the inputs weighted by
// 2cos(π/36·(k+½)) make it a DCT-II whose neighbouring outputs sum to it
// (y[n] = Z[n] - y[n-1]), and the 18-point DCT-II splits into two 9-point
// ones (even outputs from sums, odd outputs from weighted differences).
func dct4of18(in []float32, y *[18]float32) {
	in = in[:18]
	var x [18]float32
	for k := range 18 {
		x[k] = in[k] * dct4Pre[k]
	}
	var u, v [9]float32
	for k := range 9 {
		u[k] = x[k] + x[17-k]
		v[k] = (x[k] - x[17-k]) * dct2Odd[k]
	}
	var U, V [10]float32
	dct2of9(&u, &U)
	dct2of9(&v, &V)
	var z [18]float32
	for m := range 9 {
		z[2*m] = U[m]
		z[2*m+1] = V[m] + V[m+1]
	}
	y[0] = z[0] * 0.5
	for n := 1; n < 18; n++ {
		y[n] = z[n] - y[n-1]
	}
}

// dct2of9 is X[m] = Σ x[k]·cos(π·m·(2k+1)/18), using the symmetry of
// k and 8-k. X[9] is left 0.
func dct2of9(x *[9]float32, X *[10]float32) {
	var s, t [4]float32
	for k := range 4 {
		s[k] = x[k] + x[8-k]
		t[k] = x[k] - x[8-k]
	}
	x4 := x[4]
	for m := 0; m < 9; m += 2 {
		c := &cos9[m]
		acc := s[0]*c[0] + s[1]*c[1] + s[2]*c[2] + s[3]*c[3]
		switch m % 4 {
		case 0:
			acc += x4
		case 2:
			acc -= x4
		}
		X[m] = acc
	}
	for m := 1; m < 9; m += 2 {
		c := &cos9[m]
		X[m] = t[0]*c[0] + t[1]*c[1] + t[2]*c[2] + t[3]*c[3]
	}
	X[9] = 0
}

// imdctShort computes the three windowed 12-point IMDCTs of a short-block
// subband (window w's line m at in[3m+w]) and overlaps them into out.
func imdctShort(in []float32, out *[36]float32) {
	*out = [36]float32{}
	win := &imdctWin[2]
	for w := range 3 {
		for p := range 12 {
			var sum float32
			for m := range 6 {
				sum += in[3*m+w] * imdct12[m][p]
			}
			out[6+6*w+p] += sum * win[p]
		}
	}
}
