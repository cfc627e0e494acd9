package audio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Streams that change format midway, tags after a single frame, and
// damaged frames: nothing is cut short, nothing plays as noise.

// decodeMono runs the MP3 source stage alone: mono samples at the source
// rate, following rate changes.
func decodeMono(tb testing.TB, data []byte) ([]float32, error) {
	tb.Helper()
	m, _, err := parseMP3(bufio.NewReaderSize(bytes.NewReader(data), readerSize))
	if err != nil {
		return nil, err
	}
	var out []float32
	buf := make([]float32, 700)
	for {
		n, err := m.readMono(buf)
		out = append(out, buf[:n]...)
		var rc *rateChange
		if errors.As(err, &rc) {
			continue
		}
		if err == io.EOF || errors.Is(err, ErrTruncated) {
			return out, nil // (l3-compl ends in a cut-off frame)
		}
		if err != nil {
			return out, err
		}
	}
}

// sharedStream reads a compliance bitstream from ../shared/mp3-conformance,
// or skips the test.
func sharedStream(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "mp3-conformance", name))
	if err != nil {
		t.Skipf("ISO compliance bitstreams not found (../shared/mp3-conformance beside the module): %v", err)
	}
	return b
}

// countFrames counts the Layer III frames of a clean stream.
func countFrames(data []byte) (frames, samples int) {
	for i := 0; i+4 <= len(data); {
		h, ok := parseHeader(data[i:])
		if !ok || i+h.size > len(data) {
			i++
			continue
		}
		frames++
		samples += h.samples
		i += h.size
	}
	return frames, samples
}

// tonePower is the power of x at freq (Goertzel), relative to a full
// sine of amplitude 1.
func tonePower(x []float64, freq, rate float64) float64 {
	w := 2 * math.Pi * freq / rate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = v+c*s1-s2, s1
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	return 4 * p / float64(len(x)*len(x))
}

func TestRateChange(t *testing.T) {
	out, info, err := transcodeAll(t, fixture(t, "concat-44k-48k.mp3"))
	if err != nil {
		t.Fatal(err)
	}
	if info.SampleRate != 44100 {
		t.Errorf("Info().SampleRate = %d, want the first frame's 44100", info.SampleRate)
	}
	// 0.5 s at 44.1 kHz, then 0.5 s at 48 kHz, each trimmed by its tag.
	if len(out) != 8000 {
		t.Fatalf("%d samples out, want 8000 (0.5 s + 0.5 s)", len(out))
	}
	x := ulawToFloat(out)
	for _, c := range []struct {
		from, to  int
		want, not float64
		name      string
	}{
		{200, 3800, 1000, 500, "first file"},
		{4200, 7800, 500, 1000, "second file"},
	} {
		p, q := tonePower(x[c.from:c.to], c.want, 8000), tonePower(x[c.from:c.to], c.not, 8000)
		t.Logf("%s: %.0f Hz at %.1f dB FS, %.0f Hz at %.1f dB FS", c.name, c.want, 10*math.Log10(p/(32768*32768)), c.not, 10*math.Log10(q/(32768*32768)))
		if p < 0.2*16384*16384 || q > p/1000 {
			t.Errorf("%s: not a %.0f Hz tone", c.name, c.want)
		}
	}
	peak := 0.0
	for _, v := range x {
		peak = max(peak, math.Abs(v))
	}
	if peak > 1.1*16384 {
		t.Errorf("peak %.0f, over the tones' 16384: a click at the seam", peak)
	}
}

func TestModeSwitch(t *testing.T) {
	tests := []struct {
		name string
		data func(t *testing.T) []byte
	}{
		{"mode-switch-44k.mp3", func(t *testing.T) []byte { return fixture(t, "mode-switch-44k.mp3") }},
		{"l3-he_mode", func(t *testing.T) []byte { return sharedStream(t, "l3-he_mode.bit") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data(t)
			frames, samples := countFrames(data)
			mono, err := decodeMono(t, data)
			if err != nil {
				t.Fatal(err)
			}
			// No tag: LAME's delay is trimmed at the start, nothing else.
			if want := samples - lameDelay - decoderDelay; len(mono) != want {
				t.Errorf("%d samples decoded from %d frames, want %d", len(mono), frames, want)
			}
			out, _, err := transcodeAll(t, data)
			if err != nil {
				t.Fatal(err)
			}
			want := (int64(samples-lameDelay-decoderDelay)*SampleRate + 44099) / 44100
			if int64(len(out)) != want {
				t.Errorf("%d μ-law samples, want %d", len(out), want)
			}
		})
	}
}

// The mode-switching fixture's stereo part is the average of its two
// tones, at the level of each.
func TestModeSwitchStereoPart(t *testing.T) {
	mono, err := decodeMono(t, fixture(t, "mode-switch-44k.mp3"))
	if err != nil {
		t.Fatal(err)
	}
	x := f32to64(mono)
	mid := x[len(x)/2-8000 : len(x)/2+8000]
	for _, f := range []float64{700, 1300} {
		p := tonePower(mid, f, 44100)
		t.Logf("%.0f Hz: %.1f dB FS", f, 10*math.Log10(p/(32768*32768)))
		if p < 0.15*(8192*8192) {
			t.Errorf("%.0f Hz missing from the stereo part", f)
		}
	}
}

func TestOneFrameAndTag(t *testing.T) {
	// An audio frame of a fixture (the one after its Info frame), then a
	// tag.
	data := fixture(t, "onset-32k-mono-cbr.mp3")
	h, _ := parseHeader(data)
	next, _ := parseHeader(data[h.size:])
	frame := data[h.size : h.size+next.size]
	id3v1 := append([]byte("TAG"), make([]byte, 125)...)
	ape := append([]byte("APETAGEX"), make([]byte, 24)...)
	tests := []struct {
		name string
		data func(t *testing.T) []byte
	}{
		{"frame+ID3v1", func(*testing.T) []byte { return append(bytes.Clone(frame), id3v1...) }},
		{"frame+APE", func(*testing.T) []byte { return append(bytes.Clone(frame), ape...) }},
		{"l3-nonstandard-id3v1", func(t *testing.T) []byte { return sharedStream(t, "l3-nonstandard-id3v1.bit") }},
		{"l3-nonstandard-apetag", func(t *testing.T) []byte { return sharedStream(t, "l3-nonstandard-apetag.bit") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data(t)
			out, info, err := transcodeAll(t, data)
			if err != nil {
				t.Fatal(err)
			}
			_, samples := countFrames(data)
			want := (int64(samples-lameDelay-decoderDelay)*SampleRate + int64(info.SampleRate) - 1) / int64(info.SampleRate)
			if int64(len(out)) != want {
				t.Errorf("%d samples out, want %d", len(out), want)
			}
		})
	}
}

// TestCorruptSideInfo: a frame whose side information is damaged becomes
// exactly a frame of silence, and the frames after it are the clean
// decoding or quieter than it, never noise.
func TestCorruptSideInfo(t *testing.T) {
	tests := []struct {
		name         string
		clean, dirty func(t *testing.T) []byte
	}{
		{"sideinfo-corrupt.mp3",
			func(t *testing.T) []byte { return fixture(t, "sideinfo-clean.mp3") },
			func(t *testing.T) []byte { return fixture(t, "sideinfo-corrupt.mp3") }},
		{"l3-nonstandard-compl-sideinfo-size",
			func(t *testing.T) []byte { return sharedStream(t, "l3-compl.bit") },
			func(t *testing.T) []byte { return sharedStream(t, "l3-nonstandard-compl-sideinfo-size.bit") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clean, err := decodeMono(t, tt.clean(t))
			if err != nil {
				t.Fatal(err)
			}
			dirty, err := decodeMono(t, tt.dirty(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(dirty) != len(clean) {
				t.Fatalf("%d samples, the clean stream %d", len(dirty), len(clean))
			}
			const block = 576
			differ := 0
			for i := 0; i < len(clean); i += block {
				c, d := clean[i:min(i+block, len(clean))], dirty[i:min(i+block, len(clean))]
				var pc, pd, diff float64
				for k := range c {
					pc = max(pc, math.Abs(float64(c[k])))
					pd = max(pd, math.Abs(float64(d[k])))
					diff = max(diff, math.Abs(float64(c[k]-d[k])))
				}
				if diff <= 1 {
					continue
				}
				differ++
				t.Logf("samples %d-%d: peak %.0f, clean %.0f", i, i+len(c), pd, pc)
				if pd > 1.12*pc+2 {
					t.Errorf("samples %d-%d: peak %.0f over the clean stream's %.0f", i, i+len(c), pd, pc)
				}
			}
			if differ == 0 || differ > 16 {
				t.Errorf("%d blocks of %d samples differ from the clean decoding, want 1 to 16", differ, block)
			}
		})
	}
}

// TestUndecodableEndsWithError: Layer II frames after Layer III ones end
// the transcode with an error that says where and why, after all of the
// Layer III audio.
func TestUndecodableEndsWithError(t *testing.T) {
	mp3 := fixture(t, "onset-48k-stereo-cbr.mp3")
	whole, _, err := transcodeAll(t, mp3)
	if err != nil {
		t.Fatal(err)
	}
	data := append(bytes.Clone(mp3), fixture(t, "layer2.mp2")...)
	out, _, err := transcodeAll(t, data)
	if !errors.Is(err, ErrBadInput) {
		t.Fatalf("error %v, want ErrBadInput", err)
	}
	for _, want := range []string{"Layer II", fmt.Sprintf("byte %d", len(mp3))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if len(out) != len(whole) {
		t.Errorf("%d samples before the error, want all %d of the MP3", len(out), len(whole))
	}
}

// TestIntensityStereoThroughPipeline: l3-test45 (MPEG-2 intensity stereo)
// through the pipeline's decoding (channels mixed before the filter
// banks) and resampling, against its ISO reference decoding mixed and
// resampled alike.
func TestIntensityStereoThroughPipeline(t *testing.T) {
	data := sharedStream(t, "l3-test45.bit")
	raw := sharedStream(t, "l3-test45.pcm")
	got, err := decodeMono(t, data)
	if err != nil {
		t.Fatal(err)
	}
	// The reference is stereo, untrimmed; the pipeline trims LAME's delay.
	var ref []float32
	for i := 0; i+4 <= len(raw); i += 4 {
		l := int16(uint16(raw[i]) | uint16(raw[i+1])<<8)
		r := int16(uint16(raw[i+2]) | uint16(raw[i+3])<<8)
		ref = append(ref, 0.5*(float32(l)+float32(r)))
	}
	ref = ref[lameDelay+decoderDelay:]
	n := min(len(got), len(ref))
	at := snr(f32to64(got[:n]), f32to64(ref[:n]))
	g8 := resampleAll(t, got[:n], 22050, 4096, 1000)
	r8 := resampleAll(t, ref[:n], 22050, 4096, 1000)
	after := snr(f32to64(g8), f32to64(r8))
	t.Logf("against the ISO reference: %.1f dB at 22.05 kHz, %.1f dB at 8 kHz", at, after)
	if at < 60 || after < 60 {
		t.Errorf("SNR %.1f / %.1f dB, want at least 60", at, after)
	}
}
