package mp3

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// conformanceDir finds ../shared/mp3-conformance beside the module root:
// the ISO/IEC 11172-4 and 13818-4 Layer III compliance bitstreams with the
// reference decoder's output (not the project's files, so not committed).
func conformanceDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the test: cannot find ../shared/mp3-conformance")
		}
		dir = parent
	}
	c := filepath.Join(dir, "..", "shared", "mp3-conformance")
	if _, err := os.Stat(filepath.Join(c, "l3-compl.bit")); err != nil {
		t.Skipf("ISO compliance bitstreams not found at %s (../shared/mp3-conformance beside the module): %v", c, err)
	}
	return c
}

// accuracy is the difference between a decoding and the reference, in
// LSB of 16-bit full scale.
type accuracy struct {
	rms, max float64
	n        int // samples compared (all channels)
	offset   int // reference starts this many samples per channel into ours
}

// ISO/IEC 11172-4 accuracy classes, in LSB (2^-15 of full scale).
const (
	fullRMSLSB = 0.28867513459481287 // 2^-15/sqrt(12) of full scale
	fullMaxLSB = 2                   // 2^-14
	limitedLSB = 4.618802153517006   // 2^-11/sqrt(12)
)

// compare aligns ref against got (the reference may lack the first frames,
// which have no bit reservoir, and the last one), trying offsets of whole
// granules, and measures the difference over the common length.
func compare(got, ref []int16, channels, granule int) accuracy {
	best := accuracy{rms: math.Inf(1)}
	for g := 0; g <= 8; g++ {
		off := g * granule * channels
		if off >= len(got) {
			break
		}
		n := min(len(got)-off, len(ref))
		var sum, mx float64
		for i := range n {
			d := math.Abs(float64(got[off+i]) - float64(ref[i]))
			sum += d * d
			mx = max(mx, d)
		}
		a := accuracy{rms: math.Sqrt(sum / float64(max(n, 1))), max: mx, n: n, offset: g * granule}
		if a.rms < best.rms {
			best = a
		}
	}
	return best
}

func readPCM(t *testing.T, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := make([]int16, len(b)/2)
	for i := range s {
		s[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return s
}

// firstHeader returns the channel count, sample rate and samples per
// granule from the stream's first frame header.
func firstHeader(b []byte) (channels, rate, granule int) {
	for i := 0; i+4 <= len(b); i++ {
		if b[i] != 0xFF || b[i+1]&0xE0 != 0xE0 {
			continue
		}
		v := (b[i+1] >> 3) & 3
		ri := int(b[i+2]>>2) & 3
		if v == 1 || ri == 3 {
			continue
		}
		rate = [3]int{44100, 48000, 32000}[ri]
		granule = 576
		switch v {
		case 2:
			rate /= 2
		case 0:
			rate /= 4
		}
		channels = 2
		if b[i+3]>>6 == 3 {
			channels = 1
		}
		return channels, rate, granule
	}
	return 0, 0, 0
}

// decodeStream decodes a whole bitstream to s16, each frame in its own
// channel count (interleaved when stereo), as the reference decodings are.
func decodeStream(t testing.TB, data []byte) ([]int16, error) {
	t.Helper()
	var d Decoder
	var pcm [2 * 1152]int16
	var out []int16
	for i := 0; i+4 <= len(data); {
		h, ok := ParseHeader(data[i:])
		if !ok || i+h.Size > len(data) {
			i++
			continue
		}
		if _, err := d.DecodeFrame(data[i:i+h.Size], pcm[:]); err != nil {
			return out, fmt.Errorf("frame at byte %d: %w", i, err)
		}
		i += h.Size
		out = append(out, pcm[:h.Samples*h.Channels]...)
	}
	return out, nil
}

// TestConformance decodes the ISO compliance bitstreams and checks every
// one the decoder accepts against the reference decoding at ISO/IEC
// 11172-4 "full accuracy": RMS error under 2^-15/sqrt(12) of full scale
// and no sample off by more than 2^-14.
func TestConformance(t *testing.T) {
	dir := conformanceDir(t)
	tests := []struct {
		name string
		// limited: only limited accuracy is asserted, with why.
		limited string
	}{
		{name: "l3-compl"},
		{name: "l3-he_32khz"},
		{name: "l3-he_48khz"},
		{name: "l3-si"},
		{name: "l3-si_block"},
		{name: "l3-si_huff"},
		{name: "M2L3_bitrate_16_all"},
		{name: "M2L3_bitrate_24_all"},
		{name: "M2L3_noise"},
		{name: "l3-test45"},
		{name: "l3-he_mode"},
		{name: "l3-nonstandard-id3v1"},
		{name: "l3-nonstandard-apetag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, tt.name+".bit"))
			if err != nil {
				t.Fatal(err)
			}
			channels, rate, granule := firstHeader(data)
			got, err := decodeStream(t, data)
			if err != nil {
				t.Fatal(err)
			}
			ref := readPCM(t, filepath.Join(dir, tt.name+".pcm"))
			a := compare(got, ref, channels, granule)
			t.Logf("%d Hz, %d ch: %d of %d reference samples compared (offset %d): RMS %.4f LSB, max %.0f LSB",
				rate, channels, a.n, len(ref), a.offset, a.rms, a.max)
			if a.n < len(ref)*9/10 {
				t.Errorf("compared %d of %d reference samples: decoding is short", a.n, len(ref))
			}
			if tt.limited != "" {
				if a.rms >= limitedLSB {
					t.Errorf("RMS %.4f LSB: not even limited accuracy (< %.2f)", a.rms, limitedLSB)
				}
				return
			}
			if a.rms >= fullRMSLSB || a.max > fullMaxLSB {
				t.Errorf("RMS %.4f LSB, max %.0f LSB: not ISO full accuracy (RMS < %.3f, max <= %d)", a.rms, a.max, fullRMSLSB, fullMaxLSB)
			}
		})
	}
}

// TestMonoMix: DecodeFrameMono, which mixes the channels before the
// filter banks, is the average of DecodeFrame's channels (up to their
// rounding to 16 bits).
func TestMonoMix(t *testing.T) {
	dir := conformanceDir(t)
	for _, name := range []string{"M2L3_noise", "l3-test45", "l3-he_mode", "l3-compl"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, name+".bit"))
			if err != nil {
				t.Fatal(err)
			}
			var st, mo Decoder
			var pcm [2 * 1152]int16
			var mono [1152]float32
			worst, mismatched, prevCh := 0.0, 0, 0
			for i := 0; i+4 <= len(data); {
				h, ok := ParseHeader(data[i:])
				if !ok || i+h.Size > len(data) {
					i++
					continue
				}
				frame := data[i : i+h.Size]
				i += h.Size
				if _, err := st.DecodeFrame(frame, pcm[:]); err != nil {
					t.Fatal(err)
				}
				if _, err := mo.DecodeFrameMono(frame, mono[:]); err != nil {
					t.Fatal(err)
				}
				for gr := range h.granules() {
					if h.Channels == 2 && st.si[gr][0].blockType != st.si[gr][1].blockType {
						mismatched++
					}
				}
				switched := prevCh != 0 && prevCh != h.Channels
				prevCh = h.Channels
				if switched {
					// DecodeFrame picks up the right channel where it was
					// left (as the reference decoder does); the mix goes on
					// from the mix.
					continue
				}
				for k := range h.Samples {
					want := float64(pcm[k])
					if h.Channels == 2 {
						want = 0.5 * (float64(pcm[2*k]) + float64(pcm[2*k+1]))
					}
					v := min(max(float64(mono[k]), -32768), 32767)
					worst = max(worst, math.Abs(v-want))
				}
			}
			t.Logf("largest difference %.3f LSB; %d granules with different block types in the two channels", worst, mismatched)
			if worst > 1 {
				t.Errorf("mono mix differs from the channels' average by %.3f LSB", worst)
			}
		})
	}
}
