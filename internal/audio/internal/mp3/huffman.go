package mp3

// Huffman decoding by table lookup: the first huffPrimary bits of the
// input index a table whose entry is either a whole code word (its value
// and length) or a pointer to a second-level table indexed by the bits
// after them. No code word is longer than 19 bits, so two levels always
// suffice.

const huffPrimary = 8

// A huffEntry is a code word: len<<8 | value, or, with huffSub set, a
// second-level table: offset<<8 | bits.
type huffEntry uint32

const huffSub huffEntry = 1 << 31

type huffTable struct {
	lut     []huffEntry
	bits    uint // primary index width
	linbits uint
}

var (
	huffTables [32]huffTable // big_values tables
	count1A    huffTable     // count1 table A (table B is 4 bits inverted)
)

func init() {
	for n := range huffSpec {
		s := huffSpec[n]
		if s.n == 0 {
			continue
		}
		t := buildHuff(huffTrees[s.start : s.start+s.n])
		t.linbits = uint(s.linbits)
		if n < 32 {
			huffTables[n] = t
		} else if n == 32 {
			count1A = t
		}
	}
}

type huffCode struct {
	code uint32 // left-aligned in 32 bits
	len  uint
	val  uint8
}

// walkTree lists the code words of a tree: the same walk as go-mp3's
// bit-by-bit decoder, one bit at a time, to every leaf.
func walkTree(tree []uint16, point int, code uint32, n uint, out []huffCode) []huffCode {
	if point >= len(tree) || n > 24 {
		return out
	}
	if tree[point]&0xff00 == 0 {
		return append(out, huffCode{code: code, len: n, val: uint8(tree[point])})
	}
	// Child for a 0 bit.
	p := point
	for tree[p]>>8 >= 250 {
		p += int(tree[p]) >> 8
	}
	p += int(tree[p]) >> 8
	out = walkTree(tree, p, code, n+1, out)
	// Child for a 1 bit.
	p = point
	for tree[p]&0xff >= 250 {
		p += int(tree[p]) & 0xff
	}
	p += int(tree[p]) & 0xff
	return walkTree(tree, p, code|1<<(31-n), n+1, out)
}

func buildHuff(tree []uint16) huffTable {
	codes := walkTree(tree, 0, 0, 0, nil)
	maxLen := uint(0)
	for _, c := range codes {
		maxLen = max(maxLen, c.len)
	}
	pb := min(maxLen, huffPrimary)
	lut := make([]huffEntry, 1<<pb)
	// Short codes fill every primary slot they prefix.
	for _, c := range codes {
		if c.len > pb {
			continue
		}
		first := c.code >> (32 - pb)
		for i := range uint32(1) << (pb - c.len) {
			lut[first+i] = huffEntry(c.len)<<8 | huffEntry(c.val)
		}
	}
	// Long codes: one second-level table per primary prefix, as wide as
	// its longest code needs.
	sub := map[uint32]uint{}
	for _, c := range codes {
		if c.len > pb {
			p := c.code >> (32 - pb)
			sub[p] = max(sub[p], c.len-pb)
		}
	}
	for p := range uint32(1) << pb {
		bits, ok := sub[p]
		if !ok {
			continue
		}
		off := len(lut)
		lut[p] = huffSub | huffEntry(off)<<8 | huffEntry(bits)
		lut = append(lut, make([]huffEntry, 1<<bits)...)
		for _, c := range codes {
			if c.len <= pb || c.code>>(32-pb) != p {
				continue
			}
			first := (c.code << pb) >> (32 - bits)
			for i := range uint32(1) << (bits - (c.len - pb)) {
				lut[off+int(first+i)] = huffEntry(c.len)<<8 | huffEntry(c.val)
			}
		}
	}
	return huffTable{lut: lut, bits: pb}
}

// decode looks up the code word at the top of v (the next input bits,
// left-aligned) and returns its value and length.
func (t *huffTable) decode(v uint64) (val, n uint) {
	e := t.lut[v>>(64-t.bits)]
	if e&huffSub != 0 {
		bits := uint(e & 0xff)
		e = t.lut[uint(e&^huffSub)>>8+uint((v<<t.bits)>>(64-bits))]
	}
	return uint(e & 0xff), uint(e>>8) & 0xff
}
