package audio

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
)

// The quality figures in docs/audio.md come from these tests: run
// go test -run 'Quality|Passband|Stopband' -v ./internal/audio/.

var sourceRates = []int{11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}

// toneGain is the level of the resampler's output, relative to the input,
// for a full-scale-ish sine at freq, measured away from the edges.
func toneGain(t *testing.T, rate int, freq float64) float64 {
	t.Helper()
	const amp = 20000
	x := toFloat32(sineSamples(rate, freq, amp, rate/4))
	y := f32to64(resampleAll(t, x, rate, 0, 4096))
	edge := 400 // 50 ms, well past the filter's length
	return dB(rms(y[edge:len(y)-edge]) / (amp / math.Sqrt2))
}

func TestPassband(t *testing.T) {
	for _, rate := range sourceRates {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			worst := 0.0
			for _, f := range []float64{50, 100, 300, 1000, 2000, 3000, 3300, 3400} {
				g := toneGain(t, rate, f)
				if math.Abs(g) > math.Abs(worst) {
					worst = g
				}
				if math.Abs(g) > 0.5 {
					t.Errorf("%g Hz: gain %.2f dB, want within ±0.5 dB", f, g)
				}
			}
			t.Logf("%d Hz: passband 50–3400 Hz: worst %.3f dB", rate, worst)
		})
	}
}

func TestStopband(t *testing.T) {
	for _, rate := range sourceRates {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			worst := -200.0
			// Finely near the edge, where the filter is weakest.
			for f := 4000.0; f < float64(rate)/2; f += max(125, (f-4000)/4) {
				g := toneGain(t, rate, f)
				worst = max(worst, g)
				if g > -60 {
					t.Errorf("%g Hz: gain %.1f dB, want ≤ -60 dB", f, g)
				}
			}
			t.Logf("%d Hz: stopband 4 kHz–Nyquist: worst %.1f dB", rate, worst)
		})
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

func TestQualitySpeech(t *testing.T) {
	data := fixture(t, "speech-22k.wav")
	tr, err := NewTranscoder(bytesReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	pcm := tr.src.(*wavReader)
	raw := make([]byte, pcm.left)
	if _, err := pcm.readBytes(raw); err != nil {
		t.Fatal(err)
	}
	in := make([]int16, len(raw)/2)
	for i := range in {
		in[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	checkSNR(t, "speech at 22050 Hz", 22050, in, 35)
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
