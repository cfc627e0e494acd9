package mp3

import (
	"encoding/binary"
	"fmt"
	"math"
)

// bitReader reads big-endian bits from buf, which has at least 8 bytes
// after the last one that matters (peek loads 8 at a time).
type bitReader struct {
	buf []byte
	pos int // bit position
}

// peek returns the next bits, left-aligned: at least 57 of them are valid.
func (b *bitReader) peek() uint64 {
	i := b.pos >> 3
	if i+8 > len(b.buf) {
		return 0
	}
	return binary.BigEndian.Uint64(b.buf[i:]) << (b.pos & 7)
}

// read returns the next n (at most 32) bits.
func (b *bitReader) read(n int) int {
	if n == 0 {
		return 0
	}
	v := b.peek() >> (64 - n)
	b.pos += n
	return int(v)
}

// readSideInfo parses the side information (ISO/IEC 11172-3 2.4.1.7,
// 13818-3 2.4.1.7) into d.si.
func (d *Decoder) readSideInfo(b []byte, h Header) error {
	var buf [40]byte
	copy(buf[:], b)
	r := bitReader{buf: buf[:], pos: 0}
	nch := h.Channels
	if h.LSF {
		d.mdBegin = r.read(8)
		r.read([2]int{2, 1}[nch&1])
	} else {
		d.mdBegin = r.read(9)
		r.read([2]int{3, 5}[nch&1])
		for ch := range nch {
			for i := range 4 {
				d.scfsi[ch][i] = r.read(1) == 1
			}
		}
	}
	for gr := range h.granules() {
		for ch := range nch {
			g := &d.si[gr][ch]
			g.part23 = r.read(12)
			g.bigValues = r.read(9)
			g.globalGain = r.read(8)
			if h.LSF {
				g.sfCompress = r.read(9)
			} else {
				g.sfCompress = r.read(4)
			}
			if g.bigValues > 288 {
				return fmt.Errorf("%w: big_values %d", ErrCorrupt, g.bigValues)
			}
			kind := 0
			if r.read(1) == 1 { // window switching
				g.blockType = r.read(2)
				g.mixed = r.read(1) == 1
				for i := range 2 {
					g.tableSelect[i] = r.read(5)
				}
				g.tableSelect[2] = 0
				for i := range 3 {
					g.subGain[i] = r.read(3)
				}
				if g.blockType == 0 {
					return fmt.Errorf("%w: window switching with block type 0", ErrCorrupt)
				}
				if g.blockType == 2 {
					kind = 1
					if g.mixed {
						kind = 2
					}
					g.region1 = sfbShort[h.rateIndex][3] * 3
				} else {
					// (mixed_block_flag with a start or stop window still
					// puts the lowest two subbands under the normal
					// window, as the reference decoder does.)
					g.region1 = sfbLong[h.rateIndex][8]
				}
				g.region2 = 576
			} else {
				g.blockType = 0
				g.mixed = false
				for i := range 3 {
					g.tableSelect[i] = r.read(5)
				}
				g.subGain = [3]int{}
				r0 := r.read(4)
				r1 := r.read(3)
				g.region1 = sfbLong[h.rateIndex][min(r0+1, 22)]
				g.region2 = sfbLong[h.rateIndex][min(r0+r1+2, 22)]
			}
			for _, t := range g.tableSelect {
				if t == 4 || t == 14 {
					return fmt.Errorf("%w: Huffman table %d", ErrCorrupt, t)
				}
			}
			g.bands = &bandLists[h.rateIndex][kind]
			if h.LSF {
				g.preflag = false
			} else {
				g.preflag = r.read(1) == 1
			}
			g.sfScale = r.read(1)
			g.count1Table = r.read(1)
		}
	}
	return nil
}

// spectrum decodes granule gr's scalefactors and Huffman data into d.xr
// (requantised) and applies the stereo processing.
func (d *Decoder) spectrum(gr int, h Header) error {
	for ch := range h.Channels {
		g := &d.si[gr][ch]
		if d.silent {
			clear(d.xr[ch][:])
			g.limit = 0
			continue
		}
		start := d.bits.pos
		end := start + g.part23
		if h.LSF {
			d.scalefactorsLSF(g, h, ch)
		} else {
			d.scalefactorsMPEG1(gr, ch, g)
		}
		if d.bits.pos > end {
			return fmt.Errorf("%w: scalefactors overrun part2_3_length", ErrCorrupt)
		}
		if err := d.huffman(g, &d.xr[ch], end); err != nil {
			return err
		}
		d.bits.pos = end
	}
	if h.mode == 1 && h.Channels == 2 {
		d.stereo(gr, h)
	}
	return nil
}

func (d *Decoder) scalefactorsMPEG1(gr, ch int, g *granule) {
	r := &d.bits
	slen1, slen2 := slenMPEG1[g.sfCompress][0], slenMPEG1[g.sfCompress][1]
	if g.blockType == 2 {
		n := g.bands.n
		// Short bands 0-5 (for mixed: the long bands, then short 3-5)
		// use slen1, short 6-11 slen2, and 12 has none.
		for i := range n {
			b := g.bands
			switch {
			case b.window[i] < 0 || b.sfb[i] < 6:
				g.scf[i] = uint8(r.read(slen1))
			case b.sfb[i] < 12:
				g.scf[i] = uint8(r.read(slen2))
			default:
				g.scf[i] = 0
			}
		}
	} else {
		groups := [5]int{0, 6, 11, 16, 21}
		for k := range 4 {
			slen := slen1
			if k >= 2 {
				slen = slen2
			}
			if gr == 1 && d.scfsi[ch][k] {
				for s := groups[k]; s < groups[k+1]; s++ {
					g.scf[s] = d.si[0][ch].scf[s]
				}
				continue
			}
			for s := groups[k]; s < groups[k+1]; s++ {
				g.scf[s] = uint8(r.read(slen))
			}
		}
		g.scf[21] = 0
	}
	n := g.bands.n
	for i := range n {
		g.ist[i] = g.scf[i]
		if g.scf[i] >= 7 {
			g.ist[i] = 255
		}
	}
}

func (d *Decoder) scalefactorsLSF(g *granule, h Header, ch int) {
	r := &d.bits
	var slen [4]int
	var tab int
	sc := g.sfCompress
	intensity := ch == 1 && h.modeExt&1 != 0
	g.preflag = false
	if !intensity {
		switch {
		case sc < 400:
			slen = [4]int{(sc >> 4) / 5, (sc >> 4) % 5, (sc % 16) >> 2, sc % 4}
			tab = 0
		case sc < 500:
			t := sc - 400
			slen = [4]int{(t >> 2) / 5, (t >> 2) % 5, t % 4, 0}
			tab = 1
		default:
			t := sc - 500
			slen = [4]int{t / 3, t % 3, 0, 0}
			tab = 2
			g.preflag = true
		}
	} else {
		t := sc >> 1
		switch {
		case t < 180:
			slen = [4]int{t / 36, (t % 36) / 6, (t % 36) % 6, 0}
			tab = 3
		case t < 244:
			t -= 180
			slen = [4]int{(t % 64) >> 4, (t % 16) >> 2, t % 4, 0}
			tab = 4
		default:
			t -= 244
			slen = [4]int{t / 3, t % 3, 0, 0}
			tab = 5
		}
	}
	kind := 0
	if g.blockType == 2 {
		kind = 1
		if g.mixed {
			kind = 2
		}
	}
	i := 0
	for p := range 4 {
		bits := slen[p]
		illegal := 255
		if intensity && bits > 0 {
			illegal = 1<<bits - 1
		}
		for range nrOfSfb[tab][kind][p] {
			v := r.read(bits)
			g.scf[i] = uint8(v)
			if v == illegal {
				g.ist[i] = 255
			} else {
				g.ist[i] = uint8(v)
			}
			i++
		}
	}
	for ; i < g.bands.n; i++ {
		g.scf[i], g.ist[i] = 0, 0
	}
}

// bandGain is the requantisation gain of band i: 2^(q/4).
func bandGain(g *granule, i int) float32 {
	q := g.globalGain - 210
	b := g.bands
	shift := uint(1 + g.sfScale) // scalefactor steps of 2 or 4 quarters
	if w := b.window[i]; w >= 0 {
		q -= 8*g.subGain[w] + int(g.scf[i])<<shift
	} else {
		sf := int(g.scf[i])
		if g.preflag {
			sf += pretab[b.sfb[i]]
		}
		q -= sf << shift
	}
	return gainOf(q)
}

// huffman decodes the granule's big_values and count1 regions and
// requantises them into xr: xr = sign·|v|^(4/3)·gain of the band.
func (d *Decoder) huffman(g *granule, xr *[576]float32, end int) error {
	r := &d.bits
	big := g.bigValues * 2
	band := 0
	bandEnd := int(g.bands.width[0])
	gain := bandGain(g, 0)
	i := 0
	for region := range 3 {
		regionEnd := big
		switch region {
		case 0:
			regionEnd = min(g.region1, big)
		case 1:
			regionEnd = min(g.region2, big)
		}
		if i >= regionEnd {
			continue
		}
		t := &huffTables[g.tableSelect[region]]
		if t.lut == nil { // table 0: all zeros
			for ; i < regionEnd; i++ {
				xr[i] = 0
			}
			for bandEnd <= i && band+1 < g.bands.n {
				band++
				bandEnd += int(g.bands.width[band])
			}
			gain = bandGain(g, band)
			continue
		}
		lin := t.linbits
		for i < regionEnd {
			if i >= bandEnd {
				for bandEnd <= i && band+1 < g.bands.n {
					band++
					bandEnd += int(g.bands.width[band])
				}
				gain = bandGain(g, band)
			}
			// A run of pairs in one band and one region.
			run := min(regionEnd, bandEnd)
			if run <= i { // (the last band ends short of 576)
				run = regionEnd
			}
			pos := r.pos
			buf := r.buf
			for ; i < run; i += 2 {
				v := uint64(0)
				if k := pos >> 3; k+8 <= len(buf) {
					v = binary.BigEndian.Uint64(buf[k:]) << (pos & 7)
				}
				val, n := t.decode(v)
				if n == 0 {
					r.pos = pos
					return fmt.Errorf("%w: bad Huffman code", ErrCorrupt)
				}
				used := n
				v <<= n
				x, y := val>>4, val&15
				if x == 15 && lin > 0 {
					x += uint(v >> (64 - lin))
					v <<= lin
					used += lin
				}
				// A sign bit follows each non-zero value; no branches on
				// it (they are unpredictable).
				var bx uint
				if x != 0 {
					bx = 1
				}
				sx := uint32(v>>63) & uint32(bx)
				v <<= bx
				used += bx
				if y == 15 && lin > 0 {
					y += uint(v >> (64 - lin))
					v <<= lin
					used += lin
				}
				var by uint
				if y != 0 {
					by = 1
				}
				sy := uint32(v>>63) & uint32(by)
				used += by
				xr[i] = math.Float32frombits(math.Float32bits(pow43[x]*gain) ^ sx<<31)
				xr[i+1] = math.Float32frombits(math.Float32bits(pow43[y]*gain) ^ sy<<31)
				pos += int(used)
			}
			r.pos = pos
		}
	}
	// count1: quadruples of 0 or ±1 until the part ends.
	for i+4 <= 576 && r.pos < end {
		v := r.peek()
		var q, n uint
		if g.count1Table == 0 {
			q, n = count1A.decode(v)
		} else {
			q, n = uint(^(v>>60))&15, 4
		}
		v <<= n
		used := n
		var vals [4]float32
		for k := range 4 {
			if q&(8>>k) != 0 {
				if v>>63 != 0 {
					vals[k] = -1
				} else {
					vals[k] = 1
				}
				v <<= 1
				used++
			}
		}
		r.pos += int(used)
		if r.pos > end {
			// The last quadruple ran past the part: it is not data.
			r.pos = end
			break
		}
		for k := 0; k < 4; k += 2 {
			if i >= bandEnd {
				for bandEnd <= i && band+1 < g.bands.n {
					band++
					bandEnd += int(g.bands.width[band])
				}
				gain = bandGain(g, band)
			}
			xr[i], xr[i+1] = vals[k]*gain, vals[k+1]*gain
			i += 2
		}
	}
	g.limit = i
	clear(xr[i:])
	return nil
}
