package mp3

import "math"

// Scalefactor band boundaries (ISO/IEC 11172-3 Table B.8, 13818-3 Table
// B.2, and the MPEG-2.5 extension), indexed by rateIndex: MPEG-1 44.1,
// 48, 32 kHz; MPEG-2 22.05, 24, 16 kHz; MPEG-2.5 11.025, 12, 8 kHz.
var sfbLong = [9][23]int{
	{0, 4, 8, 12, 16, 20, 24, 30, 36, 44, 52, 62, 74, 90, 110, 134, 162, 196, 238, 288, 342, 418, 576},
	{0, 4, 8, 12, 16, 20, 24, 30, 36, 42, 50, 60, 72, 88, 106, 128, 156, 190, 230, 276, 330, 384, 576},
	{0, 4, 8, 12, 16, 20, 24, 30, 36, 44, 54, 66, 82, 102, 126, 156, 194, 240, 296, 364, 448, 550, 576},
	{0, 6, 12, 18, 24, 30, 36, 44, 54, 66, 80, 96, 116, 140, 168, 200, 238, 284, 336, 396, 464, 522, 576},
	{0, 6, 12, 18, 24, 30, 36, 44, 54, 66, 80, 96, 114, 136, 162, 194, 232, 278, 332, 394, 464, 540, 576},
	{0, 6, 12, 18, 24, 30, 36, 44, 54, 66, 80, 96, 116, 140, 168, 200, 238, 284, 336, 396, 464, 522, 576},
	{0, 6, 12, 18, 24, 30, 36, 44, 54, 66, 80, 96, 116, 140, 168, 200, 238, 284, 336, 396, 464, 522, 576},
	{0, 6, 12, 18, 24, 30, 36, 44, 54, 66, 80, 96, 116, 140, 168, 200, 238, 284, 336, 396, 464, 522, 576},
	{0, 12, 24, 36, 48, 60, 72, 88, 108, 132, 160, 192, 232, 280, 336, 400, 476, 566, 568, 570, 572, 574, 576},
}

var sfbShort = [9][14]int{
	{0, 4, 8, 12, 16, 22, 30, 40, 52, 66, 84, 106, 136, 192},
	{0, 4, 8, 12, 16, 22, 28, 38, 50, 64, 80, 100, 126, 192},
	{0, 4, 8, 12, 16, 22, 30, 42, 58, 78, 104, 138, 180, 192},
	{0, 4, 8, 12, 18, 24, 32, 42, 56, 74, 100, 132, 174, 192},
	{0, 4, 8, 12, 18, 26, 36, 48, 62, 80, 104, 136, 180, 192},
	{0, 4, 8, 12, 18, 26, 36, 48, 62, 80, 104, 134, 174, 192},
	{0, 4, 8, 12, 18, 26, 36, 48, 62, 80, 104, 134, 174, 192},
	{0, 4, 8, 12, 18, 26, 36, 48, 62, 80, 104, 134, 174, 192},
	{0, 8, 16, 24, 36, 52, 72, 96, 124, 160, 162, 164, 166, 192},
}

// A bandList is a granule's scalefactor bands in the order its
// coefficients are coded: long bands, or each short band three times (one
// per window), or for mixed blocks the long bands below line 36 and then
// the short bands from 3.
type bandList struct {
	width  [40]uint16
	sfb    [40]uint8 // long or short band number
	window [40]int8  // -1 for a long band, else 0..2
	n      int
	nLong  int // long bands at the start
}

// bandLists[rate][kind], kind 0 long, 1 short, 2 mixed.
var bandLists [9][3]bandList

func init() {
	for r := range 9 {
		l := &bandLists[r][0]
		for s := range 22 {
			l.add(sfbLong[r][s+1]-sfbLong[r][s], s, -1)
		}
		l.nLong = 22
		sh := &bandLists[r][1]
		for s := range 13 {
			for w := range 3 {
				sh.add(sfbShort[r][s+1]-sfbShort[r][s], s, w)
			}
		}
		// Mixed blocks: long bands up to line 36, short bands from 3. (The
		// 8 kHz tables do not split at 36: use 16 kHz's, as LAME writes
		// no mixed blocks anyway.)
		mr := r
		if r == 8 {
			mr = 5
		}
		m := &bandLists[r][2]
		for s := 0; sfbLong[mr][s] < 36; s++ {
			m.add(sfbLong[mr][s+1]-sfbLong[mr][s], s, -1)
			m.nLong++
		}
		for s := 3; s < 13; s++ {
			for w := range 3 {
				m.add(sfbShort[mr][s+1]-sfbShort[mr][s], s, w)
			}
		}
	}
}

func (b *bandList) add(width, sfb, window int) {
	b.width[b.n] = uint16(width)
	b.sfb[b.n] = uint8(sfb)
	b.window[b.n] = int8(window)
	b.n++
}

var pretab = [22]int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3, 2, 0}

// slen1/slen2 of MPEG-1 scalefac_compress.
var slenMPEG1 = [16][2]int{
	{0, 0}, {0, 1}, {0, 2}, {0, 3}, {3, 0}, {1, 1}, {1, 2}, {1, 3},
	{2, 1}, {2, 2}, {2, 3}, {3, 1}, {3, 2}, {3, 3}, {4, 2}, {4, 3},
}

// nrOfSfb is MPEG-2's nr_of_sfb_block[table][block kind][partition]
// (ISO/IEC 13818-3 Table B.5? 2.4.3.2), block kind 0 long, 1 short, 2 mixed.
var nrOfSfb = [6][3][4]int{
	{{6, 5, 5, 5}, {9, 9, 9, 9}, {6, 9, 9, 9}},
	{{6, 5, 7, 3}, {9, 9, 12, 6}, {6, 9, 12, 6}},
	{{11, 10, 0, 0}, {18, 18, 0, 0}, {15, 18, 0, 0}},
	{{7, 7, 7, 0}, {12, 12, 12, 0}, {6, 15, 12, 0}},
	{{6, 6, 6, 3}, {12, 9, 9, 6}, {6, 12, 9, 6}},
	{{8, 8, 5, 0}, {15, 12, 9, 0}, {6, 18, 9, 0}},
}

// pow43[n] = n^(4/3), for every quantised magnitude (15 + 13 linbits).
var pow43 [8207]float32

// pow2q[q-pow2qMin] = 2^(q/4): the gain of a band, q in quarter steps.
const pow2qMin = -400

var pow2q [464]float32

func init() {
	for i := range pow43 {
		pow43[i] = float32(math.Pow(float64(i), 4.0/3))
	}
	for i := range pow2q {
		pow2q[i] = float32(math.Pow(2, float64(i+pow2qMin)/4))
	}
}

// gainOf returns 2^(q/4), 0 below the table.
func gainOf(q int) float32 {
	i := q - pow2qMin
	if i < 0 {
		return 0
	}
	if i >= len(pow2q) {
		i = len(pow2q) - 1
	}
	return pow2q[i]
}
