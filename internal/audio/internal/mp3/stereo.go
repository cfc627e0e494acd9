package mp3

import "math"

// isRatioMPEG1[p] are the left and right gains of MPEG-1 intensity
// position p (ISO/IEC 11172-3 2.4.3.4.9.3): tan(p·π/12) split as
// r/(1+r) and 1/(1+r).
var isRatioMPEG1 [7][2]float32

func init() {
	for p := range 7 {
		if p == 6 {
			isRatioMPEG1[p] = [2]float32{1, 0}
			continue
		}
		r := math.Tan(float64(p) * math.Pi / 12)
		isRatioMPEG1[p] = [2]float32{float32(r / (1 + r)), float32(1 / (1 + r))}
	}
}

// stereo undoes joint stereo coding of granule gr: intensity stereo in
// the bands above the last non-zero line of the right channel (per window
// for short blocks), middle/side in the rest when it is on.
func (d *Decoder) stereo(gr int, h Header) {
	ms := h.modeExt&2 != 0
	is := h.modeExt&1 != 0
	left, right := &d.xr[0], &d.xr[1]
	gl, grt := &d.si[gr][0], &d.si[gr][1]
	limit := max(gl.limit, grt.limit)
	if !is {
		if ms {
			midSide(left[:limit], right[:limit])
		}
		gl.limit, grt.limit = limit, limit
		return
	}
	b := grt.bands
	n := b.n
	// The highest band with a non-zero right line, per window.
	maxBand := [3]int{-1, -1, -1}
	pos := 0
	for i := range n {
		w := int(b.width[i])
		for k := pos; k < pos+w; k++ {
			if right[k] != 0 {
				maxBand[i%3] = i
				break
			}
		}
		pos += w
	}
	if b.nLong > 0 {
		m := max(maxBand[0], maxBand[1], maxBand[2])
		maxBand = [3]int{m, m, m}
	}
	// The top band has no scalefactor of its own: it takes the position
	// of the band below when that is intensity coded, else the default.
	ist := grt.ist
	blocks := 1
	if b.nLong < n {
		blocks = 3
	}
	def := uint8(0)
	if !h.LSF {
		def = 3
	}
	for k := range blocks {
		top := n - blocks + k
		prev := top - blocks
		if maxBand[k] >= prev {
			ist[top] = def
		} else {
			ist[top] = ist[prev]
		}
	}
	shift := uint(grt.sfCompress & 1)
	pos = 0
	for i := range n {
		w := int(b.width[i])
		l, r := left[pos:pos+w], right[pos:pos+w]
		p := ist[i]
		if i > maxBand[i%3] && p != 255 && (h.LSF || p < 7) {
			var kl, kr float32
			if h.LSF {
				// ISO/IEC 13818-3 2.4.3.2: k = io^((p+1)/2) on one side,
				// io = 2^-1/4, or 2^-1/2 when intensity_scale is set.
				kl, kr = 1, gainOf(-int((uint(p)+1)>>1)<<shift)
				if p&1 != 0 {
					kl, kr = kr, 1
				}
			} else {
				kl, kr = isRatioMPEG1[p][0], isRatioMPEG1[p][1]
			}
			for k := range l {
				v := l[k]
				l[k] = v * kl
				r[k] = v * kr
			}
		} else if ms {
			midSide(l, r)
		}
		pos += w
	}
	gl.limit, grt.limit = 576, 576
	// (The limit is refined below: lines above both channels' data are
	// zero.)
	top := 0
	for k := 575; k >= 0; k-- {
		if left[k] != 0 || right[k] != 0 {
			top = k + 1
			break
		}
	}
	gl.limit, grt.limit = top, top
}

func midSide(l, r []float32) {
	const s = 1 / math.Sqrt2
	r = r[:len(l)]
	for k := range l {
		a, b := l[k], r[k]
		l[k] = (a + b) * s
		r[k] = (a - b) * s
	}
}
