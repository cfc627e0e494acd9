package audio

// G.711 μ-law, as specified by ITU-T Recommendation G.711 (11/1988) and
// implemented bit for bit by the ITU-T Software Tool Library (G.191, g711.c,
// ulaw_compress and ulaw_expand).
//
// Linear samples are 16-bit two's complement; G.711 μ-law quantises the top
// 14 bits. Negative inputs are taken in one's complement before quantising,
// as the reference does, so x and -1-x give codes that differ only in the
// sign bit. Codes are transmitted inverted (all bits complemented), so
// silence is 0xFF and the loudest positive sample is 0x80.

// EncodeMulaw returns the G.711 μ-law code for the 16-bit linear sample s.
func EncodeMulaw(s int16) byte {
	return mulawEncTable[uint16(s)>>2]
}

// DecodeMulaw returns the 16-bit linear value of the G.711 μ-law code b:
// the midpoint of the code's quantisation interval, in [-32124, 32124].
func DecodeMulaw(b byte) int16 {
	return mulawDecTable[b]
}

// encodeMulawRef is ulaw_compress from the ITU-T G.191 Software Tool
// Library, for one sample. It builds the lookup table and is the reference
// the tests check the table against.
func encodeMulawRef(s int16) byte {
	var absno int
	if s < 0 {
		absno = int(^s)>>2 + 33
	} else {
		absno = int(s)>>2 + 33
	}
	if absno > 0x1FFF {
		absno = 0x1FFF
	}
	segno := 1
	for i := absno >> 6; i != 0; i >>= 1 {
		segno++
	}
	high := 8 - segno
	low := 0xF - (absno>>segno)&0xF
	code := byte(high<<4 | low)
	if s >= 0 {
		code |= 0x80
	}
	return code
}

// decodeMulawRef is ulaw_expand from the ITU-T G.191 Software Tool Library,
// for one code.
func decodeMulawRef(b byte) int16 {
	sign := -1
	if b >= 0x80 {
		sign = 1
	}
	m := int(^b)
	exponent := (m >> 4) & 7
	segment := exponent + 1
	mantissa := m & 0xF
	step := 4 << segment
	return int16(sign * ((0x80 << exponent) + step*mantissa + step/2 - 4*33))
}

var (
	// mulawEncTable maps the top 14 bits of a sample (as uint16(s)>>2) to
	// its code: the reference algorithm only ever looks at those bits.
	mulawEncTable [1 << 14]byte
	mulawDecTable [256]int16
)

func init() {
	for i := range mulawEncTable {
		mulawEncTable[i] = encodeMulawRef(int16(uint16(i << 2)))
	}
	for i := range mulawDecTable {
		mulawDecTable[i] = decodeMulawRef(byte(i))
	}
}
