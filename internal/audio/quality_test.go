package audio

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
)

// The quality figures in docs/audio.md come from these tests: run
// go test -run 'Quality|Passband|AliasRejection|TransitionBand' -v ./internal/audio/.

var sourceRates = []int{11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}

// toneGain is the level of the resampler's output, relative to the input,
// for a sine at freq (computed in float32, not rounded to int16, so that
// levels near -100 dB are not lost in rounding noise), measured away from
// the edges.
func toneGain(t *testing.T, rate int, freq float64) float64 {
	t.Helper()
	const amp = 20000
	x := make([]float32, rate/4)
	for i := range x {
		x[i] = float32(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)+0.3))
	}
	y := f32to64(resampleAll(t, x, rate, 0, 4096))
	edge := 400 // 50 ms, well past the filter's length
	return dB(rms(y[edge:len(y)-edge]) / (amp / math.Sqrt2))
}

// TestPassband: flat to ±0.1 dB from 50 Hz to 3400 Hz, every source rate.
func TestPassband(t *testing.T) {
	for _, rate := range sourceRates {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			worst := 0.0
			for f := 50.0; f <= 3400; f += 50 {
				g := toneGain(t, rate, f)
				if math.Abs(g) > math.Abs(worst) {
					worst = g
				}
				if math.Abs(g) > 0.1 {
					t.Errorf("%g Hz: gain %.3f dB, want within ±0.1 dB", f, g)
				}
			}
			t.Logf("%d Hz: pass band 50–3400 Hz: worst %+.4f dB", rate, worst)
		})
	}
}

// TestAliasRejection: every tone from 4 kHz (the output's Nyquist
// frequency: anything above folds back into the band) to the source's
// Nyquist frequency comes out at least 90 dB down, every source rate.
func TestAliasRejection(t *testing.T) {
	for _, rate := range sourceRates {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			worst, at := -300.0, 0.0
			// Finely near the edge, where the filter is weakest.
			for f := 4000.0; f < float64(rate)/2; f += max(25, (f-4000)/8) {
				g := toneGain(t, rate, f)
				if g > worst {
					worst, at = g, f
				}
				if g > -90 {
					t.Errorf("%g Hz: gain %.1f dB, want ≤ -90 dB", f, g)
				}
			}
			t.Logf("%d Hz: 4 kHz–Nyquist: worst %.1f dB (at %g Hz)", rate, worst, at)
		})
	}
}

// TestTransitionBand logs the filter's edge beside soxr's (made by
// testdata/soxr.sh), 22050 → 8000 Hz, and checks it follows soxr's
// within 5 dB down to -50 dB: the speech SNR depends on it.
func TestTransitionBand(t *testing.T) {
	for _, line := range strings.Split(strings.TrimSpace(string(fixture(t, "soxr-response.txt"))), "\n") {
		var f, soxr float64
		if _, err := fmt.Sscan(line, &f, &soxr); err != nil {
			t.Fatalf("soxr-response.txt: %q: %v", line, err)
		}
		g := toneGain(t, 22050, f)
		t.Logf("%4.0f Hz: %8.2f dB (soxr %8.2f dB)", f, g, soxr)
		if soxr > -50 && math.Abs(g-soxr) > 5 {
			t.Errorf("%g Hz: %.2f dB, soxr %.2f dB: want within 5 dB", f, g, soxr)
		}
	}
}

// TestQualityAliasing is the case linear interpolation gets wrong: a 6 kHz
// tone at 48 kHz folds to 2 kHz without a low-pass filter. The tones fade
// in and out over 20 ms (switching a tone on abruptly is a click, with
// energy in every band) and start at an odd phase, so that no tone samples
// to exact zeros on the way down.
func TestQualityAliasing(t *testing.T) {
	tests := []struct {
		name string
		rate int
		freq float64
	}{
		{"6 kHz at 48 kHz", 48000, 6000},
		{"6 kHz at 44.1 kHz", 44100, 6000},
		{"4.5 kHz at 48 kHz", 48000, 4500},
		{"5 kHz at 22.05 kHz", 22050, 5000},
		{"7 kHz at 16 kHz", 16000, 7000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const amp = 30000
			in := make([]int16, tt.rate)
			for i := range in {
				in[i] = int16(math.Round(amp * math.Sin(2*math.Pi*tt.freq*float64(i)/float64(tt.rate)+0.7)))
			}
			in = fade(in, tt.rate)
			out, _, err := transcodeAll(t, makeWAV(tt.rate, 1, in))
			if err != nil {
				t.Fatal(err)
			}
			level := dB(rms(ulawToFloat(out)) / (amp / math.Sqrt2))
			lin := dB(rms(f32to64(resampleAll(t, toFloat32(in), tt.rate, 0, 4096))) / (amp / math.Sqrt2))
			naive := dB(rms(linearInterp(in, tt.rate)) / (amp / math.Sqrt2))
			t.Logf("%s: %.1f dB through μ-law, %.1f dB linear (linear interpolation without a filter: %.1f dB)", tt.name, level, lin, naive)
			if level > -60 || lin > -60 {
				t.Errorf("output level %.1f dB (μ-law), %.1f dB (linear), want ≤ -60 dB", level, lin)
			}
		})
	}
}

// TestQualitySweep44k sweeps 20 Hz–20 kHz exponentially over 4 s at
// 44.1 kHz and measures what comes out while the sweep is above 4 kHz.
func TestQualitySweep44k(t *testing.T) {
	const (
		rate = 44100
		amp  = 30000
		dur  = 4.0
		f0   = 20.0
		f1   = 20000.0
	)
	n := int(dur * rate)
	in := make([]int16, n)
	k := math.Log(f1 / f0)
	for i := range in {
		tt := float64(i) / rate
		phase := 2 * math.Pi * f0 * dur / k * (math.Exp(tt/dur*k) - 1)
		in[i] = int16(math.Round(amp * math.Sin(phase)))
	}
	in = fade(in, rate)
	// The sweep passes 4 kHz at t = dur·ln(4000/f0)/k; leave 10 ms for the
	// filter (the sweep moves 40 Hz in that time).
	t4k := dur*math.Log(4000/f0)/k + 0.010
	from := int(t4k * SampleRate)
	out, _, err := transcodeAll(t, makeWAV(rate, 1, in))
	if err != nil {
		t.Fatal(err)
	}
	y := ulawToFloat(out)
	level := dB(rms(y[from:]) / (amp / math.Sqrt2))
	lin := f32to64(resampleAll(t, toFloat32(in), rate, 0, 4096))
	linLevel := dB(rms(lin[from:]) / (amp / math.Sqrt2))
	below := dB(rms(y[:from-160]) / (amp / math.Sqrt2))
	t.Logf("sweep above 4 kHz: %.1f dB through μ-law, %.1f dB linear (below 4 kHz: %.2f dB)", level, linLevel, below)
	if level > -60 || linLevel > -60 {
		t.Errorf("sweep above 4 kHz at %.1f dB (μ-law), %.1f dB (linear), want ≤ -60 dB", level, linLevel)
	}
}

// checkSNR compares the pipeline's output for a PCM input against the
// float64 reference, both linear (before μ-law) and through μ-law.
func checkSNR(t *testing.T, name string, rate int, in []int16, minSNR float64) {
	t.Helper()
	ref := refResample(f32to64(toFloat32(in)), rate)
	lin := f32to64(resampleAll(t, toFloat32(in), rate, 0, 4096))
	out, _, err := transcodeAll(t, makeWAV(rate, 1, in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(ref) || len(lin) != len(ref) {
		t.Fatalf("%s: length %d (μ-law), %d (linear), want %d", name, len(out), len(lin), len(ref))
	}
	linSNR := snr(lin, ref)
	ulawSNR := snr(ulawToFloat(out), ref)
	// G.711's own ceiling: the reference itself through μ-law.
	refU := make([]float64, len(ref))
	for i, v := range ref {
		refU[i] = float64(DecodeMulaw(EncodeMulaw(int16(max(-32768, min(32767, math.Round(v)))))))
	}
	ceiling := snr(refU, ref)
	t.Logf("%s: SNR %.1f dB linear, %.1f dB through μ-law (μ-law alone: %.1f dB)", name, linSNR, ulawSNR, ceiling)
	if ulawSNR < minSNR {
		t.Errorf("%s: SNR through μ-law %.1f dB, want ≥ %.0f dB", name, ulawSNR, minSNR)
	}
}

func TestQualitySine1k(t *testing.T) {
	for _, rate := range []int{16000, 22050, 44100, 48000} {
		checkSNR(t, fmt.Sprintf("1 kHz sine at %d Hz", rate), rate, sineSamples(rate, 1000, 16000, rate/4), 35)
	}
}

// TestQualitySpeech compares the transcoded speech fixtures (the WAV and
// its MP3) with soxr's resampling at its very high quality, made by
// testdata/soxr.sh with ffmpeg's aresample=resampler=soxr:precision=28:
// the SNR through μ-law must be within 0.25 dB of what μ-law itself
// allows (soxr's output through μ-law), and at least 37 dB.
func TestQualitySpeech(t *testing.T) {
	for _, tt := range []struct{ name, ref string }{
		{"speech-22k.wav", "speech-22k.soxr.f32"},
		{"speech-22k-mono-vbr.mp3", "speech-22k-mono-vbr.soxr.f32"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw := fixture(t, tt.ref)
			ref := make([]float64, len(raw)/4)
			for i := range ref {
				ref[i] = 32768 * float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
			}
			out, _, err := transcodeAll(t, fixture(t, tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if d := len(out) - len(ref); d < -1 || d > 1 {
				t.Fatalf("%d samples, soxr %d", len(out), len(ref))
			}
			refU := make([]float64, len(ref))
			for i, v := range ref {
				refU[i] = float64(DecodeMulaw(EncodeMulaw(int16(max(-32768, min(32767, math.Round(v)))))))
			}
			ceiling := snr(refU, ref)
			got := snr(ulawToFloat(out), ref)
			linear := ""
			if strings.HasSuffix(tt.name, ".wav") {
				// The resampler alone, before μ-law.
				linear = fmt.Sprintf(", %.1f dB before μ-law", snr(f32to64(resampleAll(t, wavMono(t, fixture(t, tt.name)), 22050, 0, 4096)), ref))
			}
			t.Logf("%s: SNR against soxr %.2f dB through μ-law (μ-law alone: %.2f dB)%s", tt.name, got, ceiling, linear)
			if got < 37 || got < ceiling-0.25 {
				t.Errorf("SNR %.2f dB, want ≥ 37 dB and within 0.25 dB of %.2f dB", got, ceiling)
			}
		})
	}
}

// wavMono is a WAV file's samples, channels averaged, as the resampler
// receives them.
func wavMono(t *testing.T, data []byte) []float32 {
	t.Helper()
	tr, err := NewTranscoder(bytesReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out []float32
	buf := make([]float32, 4096)
	for {
		n, err := tr.src.readMono(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// fade applies a 20 ms raised-cosine fade-in and fade-out.
func fade(s []int16, rate int) []int16 {
	n := rate / 50
	for i := range min(n, len(s)/2) {
		g := 0.5 - 0.5*math.Cos(math.Pi*float64(i)/float64(n))
		s[i] = int16(math.Round(float64(s[i]) * g))
		s[len(s)-1-i] = int16(math.Round(float64(s[len(s)-1-i]) * g))
	}
	return s
}

// linearInterp is the approach this package replaces: linear interpolation
// between neighbouring samples, no low-pass filter. Only for comparison.
func linearInterp(in []int16, rate int) []float64 {
	n := len(in) * SampleRate / rate
	out := make([]float64, n)
	for i := range out {
		t := float64(i) * float64(rate) / SampleRate
		j := int(t)
		f := t - float64(j)
		next := in[min(j+1, len(in)-1)]
		out[i] = float64(in[j])*(1-f) + float64(next)*f
	}
	return out
}
