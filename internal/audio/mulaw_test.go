package audio

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// g711Intervals returns, for the 128 magnitudes of G.711 μ-law (code index
// k = 0x7F - (code & 0x7F)), the interval [lo, hi) of 14-bit magnitudes
// that encode to it, built from Table 2a of ITU-T G.711: 8 segments of 16
// steps, 2, 4, … 256 units wide, the first decision value at 1, and the
// segments ending at 31, 95, 223, 479, 991, 2015, 4063 and 8159.
func g711Intervals() (lo, hi [128]int) {
	ends := [8]int{31, 95, 223, 479, 991, 2015, 4063, 8159}
	start := -1 // code 0 covers [-1, 1): magnitude 0
	for seg := range 8 {
		step := 2 << seg
		for q := range 16 {
			k := seg*16 + q
			lo[k] = start + q*step
			hi[k] = lo[k] + step
		}
		start = ends[seg]
		if hi[seg*16+15] != ends[seg] {
			panic("segment table")
		}
	}
	return lo, hi
}

// g711Magnitude is the 14-bit magnitude G.711 quantises for a 16-bit
// sample: the top 14 bits, negatives in one's complement (ITU-T G.191).
func g711Magnitude(s int16) int {
	if s < 0 {
		return int(^s) >> 2
	}
	return int(s) >> 2
}

func TestMulawEncodeAllSamples(t *testing.T) {
	lo, hi := g711Intervals()
	for i := range 1 << 16 {
		s := int16(i - 32768)
		m := min(g711Magnitude(s), hi[127]-1)
		k := 0
		for k < 127 && m >= hi[k] {
			k++
		}
		if m < lo[k] {
			t.Fatalf("table gap at %d", m)
		}
		want := byte(0x7F - k)
		if s >= 0 {
			want |= 0x80
		}
		if got := EncodeMulaw(s); got != want {
			t.Fatalf("EncodeMulaw(%d) = %#02x, want %#02x", s, got, want)
		}
	}
}

func TestMulawDecodeMidpoints(t *testing.T) {
	lo, hi := g711Intervals()
	for k := range 128 {
		mid := 4 * (lo[k] + hi[k]) / 2 // back on the 16-bit scale
		if k == 0 {
			mid = 0
		}
		pos, neg := byte(0xFF-k), byte(0x7F-k)
		if got := DecodeMulaw(pos); int(got) != mid {
			t.Errorf("DecodeMulaw(%#02x) = %d, want %d", pos, got, mid)
		}
		if got := DecodeMulaw(neg); int(got) != -mid {
			t.Errorf("DecodeMulaw(%#02x) = %d, want %d", neg, got, -mid)
		}
	}
}

// TestMulawVectors are hand-checked pairs at segment edges and extremes.
func TestMulawVectors(t *testing.T) {
	tests := []struct {
		in   int16
		code byte
	}{
		{0, 0xFF}, {3, 0xFF}, {4, 0xFE}, {-1, 0x7F}, {-4, 0x7F}, {-5, 0x7E},
		{123, 0xF0}, {124, 0xEF}, {-124, 0x70}, {-125, 0x6F}, // 1st/2nd segment: 14-bit 30 | 31
		{379, 0xE0}, {380, 0xDF}, // 95: 2nd/3rd segment
		{16251, 0x90}, {16252, 0x8F}, // 4063: 7th/8th segment
		{31611, 0x81}, {31612, 0x80}, {-31612, 0x01}, {-31613, 0x00},
		{32767, 0x80}, {-32768, 0x00},
	}
	for _, tt := range tests {
		if got := EncodeMulaw(tt.in); got != tt.code {
			t.Errorf("EncodeMulaw(%d) = %#02x, want %#02x", tt.in, got, tt.code)
		}
	}
}

func TestMulawRoundTrip(t *testing.T) {
	for c := range 256 {
		code := byte(c)
		got := EncodeMulaw(DecodeMulaw(code))
		want := code
		if code == 0x7F { // negative zero decodes to 0, which encodes as 0xFF
			want = 0xFF
		}
		if got != want {
			t.Errorf("EncodeMulaw(DecodeMulaw(%#02x)) = %#02x, want %#02x", code, got, want)
		}
	}
}

// TestMulawDecodeGolden pins all 256 decoded values (refresh with -update).
func TestMulawDecodeGolden(t *testing.T) {
	var b strings.Builder
	for c := range 256 {
		fmt.Fprintf(&b, "%#02x %d\n", c, DecodeMulaw(byte(c)))
	}
	path := filepath.Join("testdata", "mulaw-decode.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Error("decode table differs from testdata/mulaw-decode.golden")
	}
}

// TestMulawAgainstFFmpeg compares every 16-bit sample with ffmpeg's μ-law
// encoder. ffmpeg is not G.711-exact: it picks the nearest reconstruction
// value, so its decision values sit halfway between output levels, which
// differs from G.711's where the step size changes between segments (4095
// instead of 4063, for one), and it rounds negatives like Sun's g711.c.
// Where the two differ it is by one code, never more.
func TestMulawAgainstFFmpeg(t *testing.T) {
	ff := fixture(t, "ramp-ffmpeg.ulaw")
	var pos, neg int
	for i, c := range ff {
		s := int16(i - 32768)
		got := EncodeMulaw(s)
		if got == c {
			continue
		}
		if s >= 0 {
			pos++
		} else {
			neg++
		}
		if got^c >= 0x80 || (got != c+1 && got != c-1) {
			t.Fatalf("EncodeMulaw(%d) = %#02x, ffmpeg %#02x", s, got, c)
		}
	}
	t.Logf("%d non-negative and %d negative of 65536 samples differ from ffmpeg, each by one code", pos, neg)
}
