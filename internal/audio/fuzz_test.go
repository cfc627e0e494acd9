package audio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"
)

// FuzzTranscode feeds arbitrary bytes to the whole pipeline: it must never
// panic or hang, and every error must be one of the documented ones.
func FuzzTranscode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.*")
	for _, name := range files {
		if filepath.Ext(name) == ".golden" || filepath.Ext(name) == ".ulaw" {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		// Small seeds mutate faster: the start of a big file is enough.
		f.Add(b[:min(len(b), 8<<10)])
	}
	f.Add([]byte{})
	f.Add(id3Tag(64))
	f.Add(makeWAV(44100, 2, sineSamples(44100, 440, 1000, 200)))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a failure too: crash with every goroutine's stack.
		watchdog := time.AfterFunc(30*time.Second, func() {
			debug.SetTraceback("all")
			panic("FuzzTranscode: input took over 30 s")
		})
		defer watchdog.Stop()
		tr, err := NewTranscoder(bytes.NewReader(data), Options{})
		if err != nil {
			if !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("NewTranscoder: undocumented error %v", err)
			}
			return
		}
		info := tr.Info()
		switch info.Format {
		case "mp3", "wav-pcm16", "wav-mulaw":
		default:
			t.Fatalf("Info().Format = %q", info.Format)
		}
		if info.SampleRate <= 0 || info.Channels <= 0 || info.Duration < 0 {
			t.Fatalf("Info() = %+v", info)
		}
		buf := make([]byte, 1000)
		total := 0
		for {
			n, err := tr.Read(buf)
			total += n
			if n < 0 || n > len(buf) {
				t.Fatalf("Read returned %d", n)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrBadInput) && !errors.Is(err, ErrTruncated) {
					t.Fatalf("Read: undocumented error %v", err)
				}
				break
			}
			// The longest output per input byte: MPEG-2.5 8 kHz frames of
			// 24 bytes hold 576 samples; WAV at 1000 Hz is upsampled 8×.
			if total > 64*len(data)+SampleRate {
				t.Fatalf("%d bytes out of %d in", total, len(data))
			}
		}
	})
}

// FuzzFrameHeader checks the MPEG header and Xing/LAME/VBRI parsers alone.
func FuzzFrameHeader(f *testing.F) {
	for _, name := range []string{"onset-44k-stereo-vbr.mp3", "onset-16k-mono-cbr.mp3", "mpeg25-8k.mp3"} {
		b, _ := os.ReadFile(filepath.Join("testdata", name))
		f.Add(b[:min(len(b), 2000)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, ok := parseHeader(data)
		if !ok {
			return
		}
		if h.size <= 4+h.sideInfo || h.size > maxFrameLen || h.rate < 8000 || h.rate > 48000 {
			t.Fatalf("header %+v", h)
		}
		tag := parseVBRTag(data[:min(len(data), h.size)], h)
		if tag.delay > 4095 || tag.padding > 4095 || tag.frames < 0 {
			t.Fatalf("tag %+v", tag)
		}
		confirmFrame(data, true, 2)
	})
}
