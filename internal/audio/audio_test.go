package audio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// onset is the index of the first sample louder than -24 dBFS.
func onset(b []byte) int {
	for i, c := range b {
		if v := DecodeMulaw(c); v > 2000 || v < -2000 {
			return i
		}
	}
	return -1
}

// offset is the index of the last sample louder than -24 dBFS.
func offset(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if v := DecodeMulaw(b[i]); v > 2000 || v < -2000 {
			return i
		}
	}
	return -1
}

// The onset fixtures are 0.25 s of silence, 0.5 s of 1 kHz at -6 dBFS and
// 0.25 s of silence: 8000 samples out, the tone's first loud sample at 2001
// and its last at 5999.
const (
	onsetLen = 8000
	onsetAt  = 2001
	onsetOff = 5999
)

func TestFixtures(t *testing.T) {
	tests := []struct {
		file    string
		info    Info
		frame   int // samples per MP3 frame at the source rate; 0 for an exact length
		wantLen int // output samples; 0 to skip
		wantOn  int // onset; 0 to skip
		wantErr error
	}{
		{file: "onset-16k-mono-cbr.mp3", info: Info{"mp3", 16000, 1, 0}, frame: 576, wantLen: onsetLen, wantOn: onsetAt},
		{file: "onset-22k-mono-noxing.mp3", info: Info{"mp3", 22050, 1, 0}, frame: 576, wantLen: onsetLen, wantOn: onsetAt},
		{file: "onset-24k-stereo-vbr.mp3", info: Info{"mp3", 24000, 2, time.Second}, wantLen: onsetLen, wantOn: onsetAt},
		{file: "onset-32k-mono-cbr.mp3", info: Info{"mp3", 32000, 1, time.Second}, wantLen: onsetLen, wantOn: onsetAt},
		{file: "onset-44k-stereo-vbr.mp3", info: Info{"mp3", 44100, 2, time.Second}, wantLen: onsetLen, wantOn: onsetAt},
		{file: "onset-48k-stereo-cbr.mp3", info: Info{"mp3", 48000, 2, time.Second}, wantLen: onsetLen, wantOn: onsetAt},
		{file: "id3-cover.mp3", info: Info{"mp3", 44100, 2, time.Second}, wantLen: onsetLen, wantOn: onsetAt},
		{file: "onset-44k-stereo-crc.mp3", info: Info{"mp3", 44100, 2, time.Second}, wantLen: onsetLen, wantOn: onsetAt},
		{file: "music-44k-stereo-cbr128.mp3", info: Info{"mp3", 44100, 2, 3 * time.Second}, wantLen: 3 * SampleRate},
		{file: "speech-22k-mono-vbr.mp3", info: Info{"mp3", 22050, 1, 2636507936}, wantLen: 21093, wantOn: 1054},
		{file: "speech-22k.wav", info: Info{"wav-pcm16", 22050, 1, 2636507936}, wantLen: 21093, wantOn: 1054},
		{file: "mpeg25-8k.mp3", info: Info{"mp3", 8000, 1, 2636500000}, wantLen: 21092, wantOn: 1054},
		{file: "mpeg25-11k.mp3", info: Info{"mp3", 11025, 1, 2636553287}, wantLen: 21093, wantOn: 1054},
		{file: "mulaw-8k.wav", info: Info{"wav-mulaw", 8000, 1, 2636500000}, wantLen: 21092, wantOn: 1054},
		{file: "mulaw-16k-stereo.wav", info: Info{"wav-mulaw", 16000, 2, 250 * time.Millisecond}, wantLen: 2000},
		{file: "pcm16-16k-stereo.wav", info: Info{"wav-pcm16", 16000, 2, 250 * time.Millisecond}, wantLen: 2000},
		{file: "extensible-12k-3ch.wav", info: Info{"wav-pcm16", 12000, 3, 250 * time.Millisecond}, wantLen: 2000},
		{file: "truncated.mp3", info: Info{"mp3", 44100, 2, time.Second}, wantOn: onsetAt, wantErr: ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			out, info, err := transcodeAll(t, fixture(t, tt.file))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if info != tt.info {
				t.Errorf("Info() = %+v, want %+v", info, tt.info)
			}
			if tt.wantLen > 0 {
				// Exact where the file records its length; otherwise within
				// one MP3 frame (the encoder's end padding is unknown).
				tol := 0
				if tt.frame > 0 {
					tol = tt.frame * SampleRate / tt.info.SampleRate
				}
				if d := len(out) - tt.wantLen; d < 0 || d > tol {
					t.Errorf("%d samples out, want %d (+%d)", len(out), tt.wantLen, tol)
				}
			}
			if info.Duration > 0 && tt.wantErr == nil {
				got := time.Duration(len(out)) * time.Second / SampleRate
				if d := got - info.Duration; d < -time.Millisecond || d > time.Millisecond {
					t.Errorf("output lasts %v, Info().Duration %v: differ by more than 1 ms", got, info.Duration)
				}
			}
			if tt.wantOn > 0 {
				// ±2 samples = ±0.25 ms: no encoder delay left in front.
				if on := onset(out); on < tt.wantOn-2 || on > tt.wantOn+2 {
					t.Errorf("first sound at sample %d, want %d", on, tt.wantOn)
				}
			}
			if tt.wantOn == onsetAt && tt.wantErr == nil {
				// The tone ends at 0.75 s; the rest is the clip's own
				// silence, so queued clips keep their timing.
				if off := offset(out); off < onsetOff-2 || off > onsetOff+2 {
					t.Errorf("last sound at sample %d, want %d", off, onsetOff)
				}
			}
		})
	}
}

// TestVBRIFrame turns the Info frame of a LAME file into a Fraunhofer
// VBRI frame: it is not played either, and its frame count gives the
// duration, less LAME's usual delay (none is recorded), which is trimmed.
func TestVBRIFrame(t *testing.T) {
	data := bytes.Clone(fixture(t, "onset-32k-mono-cbr.mp3"))
	h, ok := parseHeader(data)
	if !ok || h.version != mpeg1 {
		t.Fatal("fixture does not start with an MPEG-1 frame")
	}
	tag := parseVBRTag(data[:h.size], h)
	frame := data[4:h.size]
	clear(frame)
	vbri := frame[32:]
	copy(vbri, "VBRI\x00\x01\x00\x00\x00\x50")
	vbri[14], vbri[15], vbri[16], vbri[17] = byte(tag.frames>>24), byte(tag.frames>>16), byte(tag.frames>>8), byte(tag.frames)
	out, info, err := transcodeAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Duration(tag.frames*1152-lameDelay-decoderDelay) * time.Second / 32000
	if info.Duration != want {
		t.Errorf("Duration %v, want %v", info.Duration, want)
	}
	// The first frame after the tag starts the audio; the end padding is
	// played (the tag does not record it).
	if on := onset(out); on < onsetAt-2 || on > onsetAt+2 {
		t.Errorf("first sound at %d, want %d", on, onsetAt)
	}
	if d := len(out) - onsetLen; d < 0 || d > 1152*SampleRate/32000 {
		t.Errorf("%d samples, want %d and up to a frame more", len(out), onsetLen)
	}
}

// TestMPEG25MatchesFFmpeg compares the MPEG-2.5 decode (8 kHz, so no
// resampling) with ffmpeg's decoding of the same file.
func TestMPEG25MatchesFFmpeg(t *testing.T) {
	out, _, err := transcodeAll(t, fixture(t, "mpeg25-8k.mp3"))
	if err != nil {
		t.Fatal(err)
	}
	ref := ulawToFloat(fixture(t, "mpeg25-8k.ffmpeg.ulaw"))
	if len(out) != len(ref) {
		t.Fatalf("%d samples, ffmpeg %d", len(out), len(ref))
	}
	if s := snr(ulawToFloat(out), ref); s < 35 {
		t.Errorf("SNR against ffmpeg %.1f dB, want ≥ 35 dB", s)
	} else {
		t.Logf("SNR against ffmpeg: %.1f dB", s)
	}
}

// TestSpeechMP3MatchesWAV checks the MPEG-2 VBR speech against the WAV it
// was encoded from, through the same pipeline.
func TestSpeechMP3MatchesWAV(t *testing.T) {
	mp3Out, _, err := transcodeAll(t, fixture(t, "speech-22k-mono-vbr.mp3"))
	if err != nil {
		t.Fatal(err)
	}
	wavOut, _, err := transcodeAll(t, fixture(t, "speech-22k.wav"))
	if err != nil {
		t.Fatal(err)
	}
	s := snr(ulawToFloat(mp3Out), ulawToFloat(wavOut))
	t.Logf("MP3 against WAV: %.1f dB", s)
	if s < 20 { // lame -V 6 on synthetic speech, then μ-law twice
		t.Errorf("MP3 against WAV: %.1f dB, want ≥ 20 dB (same timing, no noise)", s)
	}
}

func TestMulawWAVPassThrough(t *testing.T) {
	data := fixture(t, "mulaw-8k.wav")
	out, _, err := transcodeAll(t, data)
	if err != nil {
		t.Fatal(err)
	}
	// ffmpeg's header is 92 bytes (fmt, fact, LIST, data).
	if !bytes.Equal(out, data[92:]) {
		t.Error("8 kHz mono μ-law WAV not passed through byte for byte")
	}
}

// TestLargeCoverArt puts an ID3v2 tag with 4 MB of cover art in front of
// an MP3: it is skipped without being held in memory.
func TestLargeCoverArt(t *testing.T) {
	audio := fixture(t, "onset-44k-stereo-vbr.mp3")
	const art = 4 << 20
	tag := id3Tag(art)
	r := io.MultiReader(bytes.NewReader(tag), bytes.NewReader(audio))
	tr, err := NewTranscoder(r, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != onsetLen || onset(out) != onsetAt {
		t.Errorf("%d samples, onset %d; want %d, %d", len(out), onset(out), onsetLen, onsetAt)
	}
}

// id3Tag returns an ID3v2.3 tag holding an APIC frame of n bytes.
func id3Tag(n int) []byte {
	frame := append([]byte("\x00image/jpeg\x00\x03\x00"), bytes.Repeat([]byte{0xFF, 0xD8, 0xFF, 0xFB}, n/4)...)
	var b bytes.Buffer
	b.WriteString("APIC")
	b.Write([]byte{byte(len(frame) >> 24), byte(len(frame) >> 16), byte(len(frame) >> 8), byte(len(frame))})
	b.Write([]byte{0, 0})
	b.Write(frame)
	size := b.Len()
	hdr := []byte{'I', 'D', '3', 3, 0, 0, byte(size >> 21 & 0x7F), byte(size >> 14 & 0x7F), byte(size >> 7 & 0x7F), byte(size & 0x7F)}
	return append(hdr, b.Bytes()...)
}

func TestErrors(t *testing.T) {
	rnd := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(rng.Uint32())
	}
	mp3 := fixture(t, "onset-44k-stereo-vbr.mp3")
	tests := []struct {
		name    string
		data    []byte
		wantErr error
		wantMsg string
	}{
		{"empty", nil, ErrBadInput, "empty input"},
		{"random bytes", rnd, ErrBadInput, "no MPEG audio frames"},
		{"text", fixture(t, "not-audio.txt"), ErrBadInput, ""},
		{"ID3 tag only", id3Tag(1000), ErrBadInput, ""},
		{"ID3 tag cut short", id3Tag(1000)[:500], ErrBadInput, "ID3v2"},
		{"layer II", fixture(t, "layer2.mp2"), ErrUnsupported, "Layer II"},
		{"ogg", []byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00"), ErrUnsupported, "Ogg"},
		{"flac", []byte("fLaC\x00\x00\x00\x22"), ErrUnsupported, "FLAC"},
		{"m4a", []byte("\x00\x00\x00\x20ftypM4A \x00\x00"), ErrUnsupported, "MP4"},
		{"aac", []byte{0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC}, ErrUnsupported, "AAC"},
		{"wav float", wavHeader(3, 1, 8000, 32), ErrUnsupported, "IEEE float"},
		{"wav 24-bit", wavHeader(1, 1, 8000, 24), ErrUnsupported, "24-bit"},
		{"wav no data", wavHeader(1, 1, 8000, 16)[:36], ErrBadInput, "no data chunk"},
		{"wav zero channels", wavHeader(1, 0, 8000, 16), ErrBadInput, "channels"},
		{"wav header only", []byte("RIFF\x00\x00\x00\x00WAVE"), ErrBadInput, ""},
		{"mp3 cut in the first frame", mp3[:300], ErrBadInput, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := transcodeAll(t, tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

// TestSmallRandomInputs: short random inputs, which fit in the look-ahead
// whole, are not taken for MP3 (a lone frame-shaped header in them would
// decode to noise).
func TestSmallRandomInputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	taken := 0
	for i := range 2000 {
		b := make([]byte, 100+rng.IntN(6000))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		_, err := NewTranscoder(bytes.NewReader(b), Options{})
		if err == nil {
			taken++
			t.Logf("input %d (%d bytes) taken for audio", i, len(b))
		} else if !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("input %d: %v", i, err)
		}
	}
	if taken > 0 {
		t.Errorf("%d of 2000 random inputs taken for audio", taken)
	}
}

// wavHeader is a WAV header with the given format and an empty data chunk.
func wavHeader(tag, channels, rate, bits int) []byte {
	b := makeWAV(rate, 1, nil)
	b[20], b[21] = byte(tag), 0
	b[22], b[23] = byte(channels), 0
	align := channels * bits / 8
	b[32], b[33] = byte(align), 0
	b[34], b[35] = byte(bits), 0
	return b
}

func TestTruncatedWAV(t *testing.T) {
	data := makeWAV(16000, 1, sineSamples(16000, 1000, 10000, 16000))
	out, _, err := transcodeAll(t, data[:len(data)/2+1])
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
	if want := (len(data)/2 - 44) / 2 * SampleRate / 16000; len(out) < want-1 || len(out) > want+1 {
		t.Errorf("%d samples before the error, want %d", len(out), want)
	}
}

// TestTruncatedAtFrameBoundary cuts an MP3 between frames: only the LAME
// tag's frame count shows that audio is missing.
func TestTruncatedAtFrameBoundary(t *testing.T) {
	data := fixture(t, "onset-48k-stereo-cbr.mp3")
	// CBR 96 kb/s at 48 kHz: 288-byte frames after the tag frame.
	_, _, err := transcodeAll(t, data[:288*20])
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
}

// TestChunking feeds the same inputs through readers that return a few
// bytes at a time and reads the output in odd sizes: the bytes out must be
// identical to reading everything at once.
func TestChunking(t *testing.T) {
	inputs := map[string][]byte{
		"sine 44.1k wav": makeWAV(44100, 2, sineSamples(44100, 997, 20000, 44100/2)),
		"sine 11025 wav": makeWAV(11025, 1, sineSamples(11025, 1500, 20000, 11025)),
		"speech mp3":     fixture(t, "speech-22k-mono-vbr.mp3"),
		"music mp3":      fixture(t, "music-44k-stereo-cbr128.mp3"),
		"mulaw wav":      fixture(t, "mulaw-16k-stereo.wav"),
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			want, _, err := transcodeAll(t, data)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			for _, mode := range []string{"one byte", "half", "random"} {
				var r io.Reader = bytes.NewReader(data)
				switch mode {
				case "one byte":
					r = iotest.OneByteReader(r)
				case "half":
					r = iotest.HalfReader(r)
				case "random":
					r = &randomReader{r: r, rng: rng}
				}
				tr, err := NewTranscoder(r, Options{})
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				buf := make([]byte, 1000)
				for {
					n, err := tr.Read(buf[:1+rng.IntN(len(buf))])
					got = append(got, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: output differs from reading at once (%d vs %d bytes)", mode, len(got), len(want))
				}
			}
		})
	}
}

type randomReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (r *randomReader) Read(p []byte) (int, error) {
	return r.r.Read(p[:min(len(p), 1+r.rng.IntN(4000))])
}

// TestResamplerChunks drives the resampler alone with source chunks and
// output blocks of many sizes: every sample equals the all-at-once result.
func TestResamplerChunks(t *testing.T) {
	for _, rate := range sourceRates {
		x := toFloat32(sineSamples(rate, 1234.5, 20000, rate/3))
		want := resampleAll(t, x, rate, 0, 1<<16)
		for _, c := range []struct{ chunk, block int }{{1, 1}, {7, 13}, {441, 80}, {1000, 1}, {3, 4096}} {
			got := resampleAll(t, x, rate, c.chunk, c.block)
			if len(got) != len(want) {
				t.Fatalf("%d Hz, chunks %v: %d samples, want %d", rate, c, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%d Hz, chunks %v: sample %d = %v, want %v", rate, c, i, got[i], want[i])
				}
			}
		}
	}
}

// TestOutputLength checks ceil(n·8000/rate) samples for every rate and many
// lengths, including odd rates and rates below 8000 Hz.
func TestOutputLength(t *testing.T) {
	for _, rate := range append([]int{6000, 8000, 44056, 96000, 7350}, sourceRates...) {
		for _, n := range []int{0, 1, 2, 5, 100, 4410, 12345} {
			out, _, err := transcodeAll(t, makeWAV(rate, 1, sineSamples(rate, 440, 1000, n)))
			if err != nil {
				t.Fatalf("%d Hz, %d samples: %v", rate, n, err)
			}
			if want := (n*SampleRate + rate - 1) / rate; len(out) != want {
				t.Errorf("%d Hz, %d samples: %d out, want %d", rate, n, len(out), want)
			}
		}
	}
}

// TestOddRate resamples rates whose ratios need more than maxPhases phases
// (44056 Hz: 1000/1377 after two half-bands; 47999 Hz: 8000/47999), and
// rates below 8000 Hz.
func TestOddRate(t *testing.T) {
	for _, rate := range []int{44056, 47999, 6000, 7350} {
		in := sineSamples(rate, min(1000, float64(rate)/3), 16000, rate/2)
		start := time.Now()
		newResampler(&sliceReader{}, rate)
		design := time.Since(start)
		ref := refResample(f32to64(toFloat32(in)), rate)
		lin := f32to64(resampleAll(t, toFloat32(in), rate, 0, 4096))
		s := snr(lin, ref)
		t.Logf("%d Hz: SNR %.1f dB; filter designed in %v", rate, s, design)
		if s < 50 {
			t.Errorf("%d Hz: SNR %.1f dB, want ≥ 50 dB", rate, s)
		}
	}
}

// TestUnsupportedRates refuses WAV rates that would need huge filters.
func TestUnsupportedRates(t *testing.T) {
	for _, rate := range []int{999, 192002, 48001, 96002} {
		_, _, err := transcodeAll(t, makeWAV(rate, 1, make([]int16, 100)))
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%d Hz: err = %v, want ErrUnsupported", rate, err)
		}
	}
	for _, rate := range []int{1000, 192000, 176400, 96000, 47999, 64000} {
		if _, _, err := transcodeAll(t, makeWAV(rate, 1, make([]int16, 100))); err != nil {
			t.Errorf("%d Hz: %v", rate, err)
		}
	}
}

func TestFramer(t *testing.T) {
	data := make([]byte, 3*FrameSize+7)
	for i := range data {
		data[i] = byte(i)
	}
	f := NewFramer(bytes.NewReader(data))
	var sizes []int
	var payload []byte
	for {
		var err error
		payload, err = f.AppendNext(payload[:0])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(payload))
	}
	if want := []int{216, 216, 216, 12}; !equalInts(sizes, want) {
		t.Errorf("base64 frame sizes %v, want %v", sizes, want)
	}
	// One frame's base64, into a reused buffer: no allocation.
	long := NewFramer(zeroReader{})
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := long.AppendNext(buf[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendNext: %v allocations, want 0", allocs)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestShortEndPadding lowers the end padding a LAME tag records below the
// decoder delay: the file is complete, so its recorded length comes out,
// the last samples as silence, and no truncation is reported.
func TestShortEndPadding(t *testing.T) {
	data := bytes.Clone(fixture(t, "onset-32k-mono-cbr.mp3"))
	i := bytes.Index(data[:300], []byte("LAME"))
	if i < 0 {
		t.Fatal("no LAME tag")
	}
	v := uint32(data[i+21])<<16 | uint32(data[i+22])<<8 | uint32(data[i+23])
	delay, padding := v>>12, v&0xFFF
	const newPadding = 100
	v = delay<<12 | newPadding
	data[i+21], data[i+22], data[i+23] = byte(v>>16), byte(v>>8), byte(v)
	out, info, err := transcodeAll(t, data)
	if err != nil {
		t.Fatalf("err = %v, want none", err)
	}
	wantDur := time.Second + time.Duration(padding-newPadding)*time.Second/32000
	if d := info.Duration - wantDur; d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("Duration %v, want %v", info.Duration, wantDur)
	}
	if got := time.Duration(len(out)) * time.Second / SampleRate; got-info.Duration > time.Millisecond || info.Duration-got > time.Millisecond {
		t.Errorf("%v out, want %v", got, info.Duration)
	}
}

// TestCorruptFrame damages the side information of frames in the middle
// of an MP3 so that they cannot be decoded: each becomes a frame of
// silence, the rest plays, and the length is kept. A file that stays
// corrupt is given up with ErrBadInput.
func TestCorruptFrame(t *testing.T) {
	clean := fixture(t, "onset-32k-mono-cbr.mp3")
	// The offset of every frame (CBR, no ID3 tag: frame 0 is the tag).
	var offsets []int
	for off := 0; off+4 <= len(clean); {
		h, ok := parseHeader(clean[off:])
		if !ok {
			t.Fatalf("no frame header at %d", off)
		}
		offsets = append(offsets, off)
		off += h.size
	}
	damage := func(frames ...int) []byte {
		b := bytes.Clone(clean)
		for _, f := range frames {
			// MPEG-1 mono side information: main_data_begin (9 bits),
			// private (5), scfsi (4), then part2_3_length (12) and
			// big_values (9) of granule 0: make big_values 511 (over the
			// 288 a granule holds).
			si := b[offsets[f]+4:]
			si[2] |= 0x3F
			si[3] = 0xFF
			si[4] = 0xFF
		}
		return b
	}
	want, _, err := transcodeAll(t, clean)
	if err != nil {
		t.Fatal(err)
	}

	out, _, err := transcodeAll(t, damage(10, 20, 21))
	if err != nil {
		t.Fatalf("err = %v, want none", err)
	}
	if len(out) != len(want) {
		t.Fatalf("%d samples, want %d", len(out), len(want))
	}
	// A bad frame and the one after it (decoded without the bit
	// reservoir) turn to silence; elsewhere the output is the same.
	frameOut := 1152 * SampleRate / 32000
	same := 0
	for i := range out {
		if out[i] == want[i] {
			same++
		}
	}
	if same < len(out)-8*frameOut {
		t.Errorf("%d of %d samples changed, want at most about eight frames' worth", len(out)-same, len(out))
	}

	var rest []int
	for f := 10; f < len(offsets); f++ {
		rest = append(rest, f)
	}
	_, _, err = transcodeAll(t, damage(rest...))
	if !errors.Is(err, ErrBadInput) {
		t.Errorf("every frame from the 10th bad: err = %v, want ErrBadInput", err)
	}
}

// TestReadErrors: an error from the underlying reader, at the start or in
// the middle, ends the stream with ErrBadInput wrapping it, never a quiet
// io.EOF.
func TestReadErrors(t *testing.T) {
	errBoom := errors.New("boom")
	inputs := map[string][]byte{
		"mp3":          fixture(t, "onset-44k-stereo-vbr.mp3"),
		"mp3 with ID3": fixture(t, "id3-cover.mp3"),
		"wav":          fixture(t, "speech-22k.wav"),
	}
	for name, data := range inputs {
		for _, at := range []int{5, 14, 30, 100, len(data) / 2} {
			r := io.MultiReader(bytes.NewReader(data[:at]), iotest.ErrReader(errBoom))
			tr, err := NewTranscoder(r, Options{})
			if err == nil {
				_, err = io.ReadAll(tr)
			}
			if !errors.Is(err, errBoom) || !errors.Is(err, ErrBadInput) {
				t.Errorf("%s, error after %d bytes: err = %v, want ErrBadInput wrapping the reader's", name, at, err)
			}
		}
	}
}
